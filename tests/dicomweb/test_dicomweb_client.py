"""dicomweb-client (the Python DICOMweb client) against a real node: every transaction
it has, answers compared with what C-FIND and C-GET give for the same data."""

from __future__ import annotations

import io

from dicom_samples import SeriesSpec, write_series
from peers import storescu
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import generate_uid

from dicomweb.support import c_find, c_get, dicomweb_url, parts, value, with_client
from node.nodes import counts, peer, running_node
from web.client import get

STUDY_KEYS = ("00100010", "00100020", "00080020", "00080050", "0020000D", "00201206", "00201208", "00080061")


async def test_search_retrieve_metadata_frames_and_store(tmp_path):
    async with running_node(tmp_path) as node:
        mr = write_series(tmp_path / "in", SeriesSpec(count=3, modality="MR", patient_name="MÜLLER^JÖRG", patient_id="P1"))
        ct = write_series(tmp_path / "in2", SeriesSpec(count=2, modality="CT", patient_name="DOE^JOHN", patient_id="P2",
                                                       study_date="20230301", accession_number="ACC2", series_number=2))
        (await storescu(peer(node), [tmp_path / "in", tmp_path / "in2"])).check(expected=5)
        study = mr.study_instance_uid

        # QIDO-RS, checked against C-FIND of the same keys.
        studies = await with_client(node, lambda c: c.search_for_studies(search_filters={"PatientName": "mül*"}))
        query = Dataset()
        for keyword in ("PatientName", "PatientID", "StudyDate", "AccessionNumber", "StudyInstanceUID",
                        "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances", "ModalitiesInStudy"):
            setattr(query, keyword, "mül*" if keyword == "PatientName" else "")
        found = await c_find(node, query, "STUDY")
        assert len(studies) == len(found) == 1
        dimse = found[0].to_json_dict()  # pydicom's own DICOM JSON: an independent conversion
        for tag in STUDY_KEYS:
            assert studies[0][tag] == dimse[tag], tag
        assert value(studies[0], "00100010") == {"Alphabetic": "MÜLLER^JÖRG"}
        assert value(studies[0], "00081190") == f"{dicomweb_url(node)}/studies/{study}"

        by_date = await with_client(node, lambda c: c.search_for_studies(search_filters={"StudyDate": "20230101-20231231"}))
        assert [value(s, "0020000D") for s in by_date] == [ct.study_instance_uid]
        by_uids = await with_client(node, lambda c: c.search_for_studies(
            search_filters={"StudyInstanceUID": f"{study},{ct.study_instance_uid}".replace(",", "\\")}))
        assert len(by_uids) == 2
        page = await with_client(node, lambda c: c.search_for_studies(limit=1, offset=1))
        assert len(page) == 1
        series = await with_client(node, lambda c: c.search_for_series(study_instance_uid=study))
        assert [value(s, "0020000E") for s in series] == [mr.series_instance_uid]
        all_series = await with_client(node, lambda c: c.search_for_series(search_filters={"Modality": "CT"}))
        assert [value(s, "0020000E") for s in all_series] == [ct.series_instance_uid]
        instances = await with_client(node, lambda c: c.search_for_instances(study_instance_uid=study, fields=["all"]))
        assert len(instances) == 3 and all("00280010" in i for i in instances)  # Rows: only with includefield=all
        nothing = await get(node, "/dicom-web/studies", params={"PatientID": "NOBODY"})
        assert nothing.status_code == 204

        # WADO-RS, checked against C-GET.
        retrieved = await with_client(node, lambda c: c.retrieve_study(study))
        got = await c_get(node, _study_key(study), "STUDY", tmp_path / "cget")
        assert sorted(d.SOPInstanceUID for d in retrieved) == sorted(d.SOPInstanceUID for d in got)
        for ours in retrieved:
            [theirs] = [d for d in got if d.SOPInstanceUID == ours.SOPInstanceUID]
            assert ours.PixelData == theirs.PixelData and ours.PatientName == theirs.PatientName
        one = retrieved[0]
        series_back = await with_client(node, lambda c: c.retrieve_series(study, one.SeriesInstanceUID))
        assert len(series_back) == 3
        instance = await with_client(node, lambda c: c.retrieve_instance(study, one.SeriesInstanceUID, one.SOPInstanceUID))
        assert instance.SOPInstanceUID == one.SOPInstanceUID and instance.PixelData == one.PixelData

        metadata = await with_client(node, lambda c: c.retrieve_study_metadata(study))
        assert len(metadata) == 3
        first = [m for m in metadata if value(m, "00080018") == one.SOPInstanceUID][0]
        assert value(first, "00100010") == {"Alphabetic": "MÜLLER^JÖRG"} and value(first, "00280010") == one.Rows
        pixel_uri = first["7FE00010"]["BulkDataURI"]
        [bulk] = await with_client(node, lambda c: c.retrieve_bulkdata(pixel_uri))
        assert bulk == one.PixelData

        frame_size = one.Rows * one.Columns * one.BitsAllocated // 8
        [frame] = await with_client(node, lambda c: c.retrieve_instance_frames(study, one.SeriesInstanceUID, one.SOPInstanceUID, [1]))
        assert frame == one.PixelData[:frame_size]

        # STOW-RS: the study again under new UIDs, then found by C-FIND and by QIDO-RS.
        new_study, new_series = generate_uid(), generate_uid()
        copies = []
        for ds in retrieved:
            ds.StudyInstanceUID, ds.SeriesInstanceUID = new_study, new_series
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            copies.append(ds)
        before = (await counts(node)).instances
        answer = await with_client(node, lambda c: c.store_instances(copies, study_instance_uid=new_study))
        assert len(answer.ReferencedSOPSequence) == 3 and "FailedSOPSequence" not in answer or not answer.FailedSOPSequence
        assert (await counts(node)).instances == before + 3
        found = await c_find(node, _study_key(new_study, NumberOfStudyRelatedInstances=""), "STUDY")
        assert [str(f.NumberOfStudyRelatedInstances) for f in found] == ["3"]
        stored = await with_client(node, lambda c: c.retrieve_study(new_study))
        assert sorted(d.SOPInstanceUID for d in stored) == sorted(d.SOPInstanceUID for d in copies)


async def test_transfer_syntax_as_stored_and_converted(tmp_path):
    """transfer-syntax=* gives the file as stored; an Accept naming none gets explicit VR
    little endian (PS3.18 8.7.3.5.2), converted from the stored implicit VR."""
    async with running_node(tmp_path) as node:
        ds = dcmread(get_testdata_file("MR_small_implicit.dcm"))
        await with_client(node, lambda c: c.store_instances([ds]))
        stored = await with_client(node, lambda c: c.retrieve_instance(
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, media_types=(("application/dicom", "*"),)))
        assert stored.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
        answer = await get(node, f"/dicom-web/studies/{ds.StudyInstanceUID}", headers={"Accept": 'multipart/related; type="application/dicom"'})
        [part] = parts(answer)
        converted = dcmread(io.BytesIO(part))
        assert converted.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1" and not converted.is_implicit_VR
        assert converted.PixelData == ds.PixelData and converted.PatientName == ds.PatientName


def _study_key(study: str, **more) -> Dataset:
    key = Dataset()
    key.StudyInstanceUID = study
    for name, text in more.items():
        setattr(key, name, text)
    return key


async def test_frames_of_compressed_instances_come_as_stored(tmp_path):
    """Encapsulated pixel data: each frame is the stored bitstream, typed by its syntax;
    an Accept that takes only raw bytes is 406 (the node does not decompress frames)."""
    async with running_node(tmp_path) as node:
        for name, media in (("SC_rgb_jpeg_dcmtk.dcm", "image/jpeg"), ("JPEG2000.dcm", "image/jp2"), ("MR_small_RLE.dcm", "image/dicom-rle")):
            ds = dcmread(get_testdata_file(name))
            await with_client(node, lambda c: c.store_instances([ds]))
            path = f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}/frames/1"
            answer = await get(node, path, headers={"Accept": 'multipart/related; type="*/*"'})
            assert answer.status_code == 200 and f'type="{media}"' in answer.headers["content-type"], name
            [frame] = parts(answer)
            assert frame == next(generate_frames(ds.PixelData, number_of_frames=1)), name
            [by_client] = await with_client(node, lambda c: c.retrieve_instance_frames(
                ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, [1]))
            assert by_client == frame
            raw_only = await get(node, path, headers={"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1'})
            assert raw_only.status_code == 406, name


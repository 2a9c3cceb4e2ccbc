"""The SCU client against a pynetdicom SCP (tests/peers/pynetdicom_scp.py): echo, store of
files and datasets, find, get, move, and a new request cancelling an unfinished one."""

import pydicom
from dicom_samples import SeriesSpec, write_series
from peers.dicom_servers import pynetdicom_scp, storescp
from pydicom.data import get_testdata_file

from triopacs.client.contexts import default_contexts, storage_contexts_for

from .helpers import assert_same_datasets, by_instance_uid, client_for, query


async def test_echo_store_find_get_and_move(tmp_path):
    series = write_series(tmp_path / "series", SeriesSpec(count=3, modality="MR"))
    dataset = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    contexts = [*default_contexts(), *storage_contexts_for([*series.paths, dataset])]
    async with storescp(extra_args=["+B"], parent_dir=tmp_path) as destination:
        async with pynetdicom_scp(move_destinations=[destination.as_remote()], parent_dir=tmp_path) as peer:
            async with client_for(peer, contexts=contexts) as association:
                await association.echo()
                stored = [await association.store(path) for path in series.paths]
                stored.append(await association.store(dataset))
                found = [m async for m in association.find(query(StudyInstanceUID=series.study_instance_uid, SOPInstanceUID=""), level="IMAGE")]
                got = [p async for p in association.get(query(SeriesInstanceUID=series.series_instance_uid), tmp_path / "got", level="SERIES")]
                moved = [p async for p in association.move(query(StudyInstanceUID=dataset.StudyInstanceUID), destination.ae_title, level="STUDY")]
            sent = {**by_instance_uid(series.paths), dataset.SOPInstanceUID: dataset}
            assert_same_datasets(sent, by_instance_uid(peer.stored_files()))
            assert_same_datasets({dataset.SOPInstanceUID: dataset}, by_instance_uid(destination.stored_files()))
    assert all(result.ok for result in stored)
    assert {m.SOPInstanceUID for m in found} == set(series.sop_instance_uids)
    assert got[-1].ok and got[-1].received == 3
    assert_same_datasets(by_instance_uid(series.paths), by_instance_uid((tmp_path / "got").iterdir()))
    assert moved[-1].ok and moved[-1].completed == 1


async def test_a_new_request_cancels_the_unfinished_find_first(tmp_path):
    series = write_series(tmp_path / "series", SeriesSpec(count=40, modality="MR"))
    all_images = query(SeriesInstanceUID=series.series_instance_uid, SOPInstanceUID="")
    async with pynetdicom_scp(parent_dir=tmp_path) as peer:
        async with client_for(peer, contexts=[*default_contexts(), *storage_contexts_for(series.paths[:1])]) as association:
            for path in series.paths:
                assert (await association.store(path)).ok
            first = association.find(all_images, level="IMAGE")
            async for _ in first:
                break
            assert first.final_status is None  # still running on the peer's side
            second = [m async for m in association.find(all_images, level="IMAGE")]
    # The second find began only once the first was cancelled and wound up.
    assert first.cancel_sent and first.final_status in (0x0000, 0xFE00)
    assert {m.SOPInstanceUID for m in second} == set(series.sop_instance_uids)

"""The SCU client against Orthanc: store a mixed folder, find at study/series/image level,
get, move to a DCMTK storescp; an AE Orthanc does not know is aborted."""

import contextlib

import pytest
from dicom_samples import build_mixed_folder, write_population
from peers.dicom_servers import RemoteAE, orthanc, storescp

from triopacs.client.connection import AssociationAborted

from .helpers import assert_same_datasets, by_instance_uid, client_for, query, store_files

CLIENT_AE = "TRIOPACS"  # our default calling AE title


@contextlib.asynccontextmanager
async def orthanc_with_destination(tmp_path):
    async with storescp(parent_dir=tmp_path) as destination:
        known = [RemoteAE(CLIENT_AE, 104), destination.as_remote()]
        async with orthanc(known_peers=known, parent_dir=tmp_path) as peer:
            yield peer, destination


async def test_store_a_mixed_folder_then_find_at_study_series_and_image_level(tmp_path):
    samples = build_mixed_folder(tmp_path / "mixed")
    population = write_population(tmp_path / "population", patients=(("TRIO0001", "DOE^JANE"),))
    files = [s.path for s in samples] + [path for series in population for path in series.paths]
    first = population[0]
    async with orthanc_with_destination(tmp_path) as (peer, _destination):
        results = await store_files(peer, files)
        assert await peer.instance_count() == len(files)
        async with client_for(peer) as association:
            studies = [m async for m in association.find(query(PatientID="TRIO0001", StudyInstanceUID="", StudyDate=""), level="STUDY")]
            series = [m async for m in association.find(query(StudyInstanceUID=first.study_instance_uid, SeriesInstanceUID="", Modality=""), level="SERIES")]
            images = [
                m async for m in association.find(
                    query(StudyInstanceUID=first.study_instance_uid, SeriesInstanceUID=first.series_instance_uid, SOPInstanceUID=""),
                    level="IMAGE",
                )
            ]
    assert all(result.ok and not result.converted for result in results)
    assert {(m.StudyInstanceUID, m.StudyDate) for m in studies} == {(s.study_instance_uid, s.spec.study_date) for s in population}
    assert {(m.SeriesInstanceUID, m.Modality) for m in series} == {
        (s.series_instance_uid, s.spec.modality) for s in population if s.study_instance_uid == first.study_instance_uid
    }
    assert {m.SOPInstanceUID for m in images} == set(first.sop_instance_uids)


async def test_get_and_move_a_study(tmp_path):
    population = write_population(tmp_path / "population", patients=(("TRIO0001", "DOE^JANE"),))
    study = [s for s in population if s.study_instance_uid == population[0].study_instance_uid]
    sent = by_instance_uid(path for s in study for path in s.paths)
    key = query(StudyInstanceUID=study[0].study_instance_uid)
    async with orthanc_with_destination(tmp_path) as (peer, destination):
        await store_files(peer, [path for series in population for path in series.paths])
        async with client_for(peer) as association:
            got = [p async for p in association.get(key, tmp_path / "got", level="STUDY")]
            moved = [p async for p in association.move(key, destination.ae_title, level="STUDY")]
        assert_same_datasets(sent, by_instance_uid(destination.stored_files()))
    assert_same_datasets(sent, by_instance_uid((tmp_path / "got").iterdir()))
    assert got[-1].ok and got[-1].received == len(sent)
    assert moved[-1].ok and moved[-1].completed == len(sent)


async def test_a_query_from_an_unknown_ae_is_aborted(orthanc_peer):
    with pytest.raises(AssociationAborted) as caught:
        async with client_for(orthanc_peer, calling_ae_title="STRANGER") as association:
            async for _ in association.find(query(StudyInstanceUID=""), level="STUDY"):
                pass
    assert caught.value.by_peer


async def test_move_from_orthanc_to_a_triopacs_node(tmp_path):
    from triopacs import open_node
    from triopacs.config import Config, HttpSettings, NodeSettings

    population = write_population(tmp_path / "population", patients=(("TRIO0001", "DOE^JANE"),))
    study = [s for s in population if s.study_instance_uid == population[0].study_instance_uid]
    sent = by_instance_uid(path for s in study for path in s.paths)
    config = Config(http=HttpSettings(port=0, events_port=0), node=NodeSettings(ae_title="TRIONODE", port=0, data_dir=str(tmp_path / "node")))
    async with open_node(config) as node:
        known = [RemoteAE(CLIENT_AE, 104), RemoteAE("TRIONODE", node.address.port)]
        async with orthanc(known_peers=known, parent_dir=tmp_path) as peer:
            await store_files(peer, [path for series in population for path in series.paths])
            async with client_for(peer) as association:
                moved = [p async for p in association.move(query(StudyInstanceUID=study[0].study_instance_uid), "TRIONODE", level="STUDY")]
        assert_same_datasets(sent, by_instance_uid((tmp_path / "node").rglob("*.dcm")))
    assert moved[-1].ok and moved[-1].completed == len(sent)

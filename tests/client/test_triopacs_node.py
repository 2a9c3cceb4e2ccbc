"""The SCU client against a triopacs node in the same Trio program: echo and store."""

from dicom_samples import build_mixed_folder

from triopacs import connect, open_node
from triopacs.client.contexts import storage_contexts_for, verification_contexts
from triopacs.config import Config, HttpSettings, NodeSettings

from .helpers import LOOPBACK, assert_same_datasets, by_instance_uid


async def test_echo_and_store_a_mixed_folder_into_a_node(tmp_path):
    files = [sample.path for sample in build_mixed_folder(tmp_path / "mixed")]
    config = Config(http=HttpSettings(port=0, events_port=0), node=NodeSettings(ae_title="TRIONODE", port=0, data_dir=str(tmp_path / "node")))
    async with open_node(config) as node:
        contexts = [*verification_contexts(), *storage_contexts_for(files)]
        async with connect(LOOPBACK, node.address.port, called_ae_title="TRIONODE", contexts=contexts) as association:
            await association.echo()
            results = [await association.store(path) for path in files]
    assert [(result.status, result.converted) for result in results] == [(0, False)] * len(files)
    assert_same_datasets(by_instance_uid(files), by_instance_uid((tmp_path / "node").rglob("*.dcm")))


async def test_find_get_and_move_against_a_node(tmp_path):
    from dicom_samples import write_population
    from peers.dicom_servers import storescp

    from triopacs.actors.node.ae_registry import RemoteAE
    from triopacs.client.contexts import default_contexts

    from .helpers import query

    population = write_population(tmp_path / "population", patients=(("TRIO0001", "DOE^JANE"),))
    first = population[0]
    files = [path for series in population for path in series.paths]
    async with storescp(extra_args=["+B"], parent_dir=tmp_path) as destination:
        config = Config(
            http=HttpSettings(port=0, events_port=0),
            node=NodeSettings(ae_title="TRIONODE", port=0, data_dir=str(tmp_path / "node")),
            remote=(RemoteAE(ae_title=destination.ae_title, host=LOOPBACK, port=destination.port),),
        )
        async with open_node(config) as node:
            contexts = [*default_contexts(), *storage_contexts_for(files)]
            async with connect(LOOPBACK, node.address.port, called_ae_title="TRIONODE", contexts=contexts) as association:
                assert all([(await association.store(path)).ok for path in files])
                studies = [m async for m in association.find(query(PatientID="TRIO0001", StudyInstanceUID=""), level="STUDY")]
                images = [
                    m async for m in association.find(
                        query(StudyInstanceUID=first.study_instance_uid, SeriesInstanceUID=first.series_instance_uid, SOPInstanceUID=""),
                        level="IMAGE",
                    )
                ]
                key = query(StudyInstanceUID=first.study_instance_uid, SeriesInstanceUID=first.series_instance_uid)
                got = [p async for p in association.get(key, tmp_path / "got", level="SERIES")]
                moved = [p async for p in association.move(key, destination.ae_title, level="SERIES")]
        assert_same_datasets(by_instance_uid(first.paths), by_instance_uid(destination.stored_files()))
    assert {m.StudyInstanceUID for m in studies} == {s.study_instance_uid for s in population}
    assert {m.SOPInstanceUID for m in images} == set(first.sop_instance_uids)
    assert got[-1].ok and got[-1].received == len(first.paths)
    assert_same_datasets(by_instance_uid(first.paths), by_instance_uid((tmp_path / "got").iterdir()))
    assert moved[-1].ok and moved[-1].completed == len(first.paths)

"""The SCU client against a triopacs node in the same Trio program: echo and store."""

from dicom_samples import build_mixed_folder

from triopacs import connect, open_node
from triopacs.actors.client_contexts import storage_contexts_for, verification_contexts
from triopacs.config import Config, NodeSettings

from .helpers import LOOPBACK, assert_same_datasets, by_instance_uid


async def test_echo_and_store_a_mixed_folder_into_a_node(tmp_path):
    files = [sample.path for sample in build_mixed_folder(tmp_path / "mixed")]
    config = Config(node=NodeSettings(ae_title="TRIONODE", port=0, data_dir=str(tmp_path / "node")))
    async with open_node(config) as node:
        contexts = [*verification_contexts(), *storage_contexts_for(files)]
        async with connect(LOOPBACK, node.address.port, called_ae_title="TRIONODE", contexts=contexts) as association:
            await association.echo()
            results = [await association.store(path) for path in files]
    assert [(result.status, result.converted) for result in results] == [(0, False)] * len(files)
    assert_same_datasets(by_instance_uid(files), by_instance_uid((tmp_path / "node").rglob("*.dcm")))

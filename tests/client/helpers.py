"""Shared pieces of the SCU client tests: sending sample data to a peer and comparing
what arrived with what was sent."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import pydicom
import trio
from peers.dicom_servers import dcmqrscp, storescp
from pydicom.dataset import Dataset

from triopacs import connect
from triopacs.client.contexts import storage_contexts_for, verification_contexts
from triopacs.client.results import StoreResult

LOOPBACK = "127.0.0.1"


def client_for(peer, **options):
    """`connect` to a tests/peers server by its AE title and port."""
    return connect(LOOPBACK, peer.port, called_ae_title=peer.ae_title, **options)


async def store_files(peer, files: Sequence[Path], **options) -> list[StoreResult]:
    """C-STORE every file over one association proposing exactly what they need."""
    contexts = [*verification_contexts(), *storage_contexts_for(files)]
    async with client_for(peer, contexts=contexts, **options) as association:
        return [await association.store(path) for path in files]


def by_instance_uid(paths: Iterable[Path]) -> dict[str, Dataset]:
    """Each file's dataset (file meta left aside), keyed by its SOP Instance UID."""
    datasets = {}
    for path in paths:
        dataset = pydicom.dcmread(path)
        datasets[str(dataset.SOPInstanceUID)] = dataset
    return datasets


def assert_same_datasets(sent: dict[str, Dataset], received: dict[str, Dataset]) -> None:
    assert sorted(received) == sorted(sent)
    for uid, dataset in sent.items():
        # Dataset equality compares every element's value, file meta excluded.
        assert received[uid] == dataset, f"{uid} changed on the way"


def query(**keys: str) -> Dataset:
    dataset = Dataset()
    for keyword, value in keys.items():
        setattr(dataset, keyword, value)
    return dataset


@contextlib.asynccontextmanager
async def populated_qrscp(tmp_path, population):
    """dcmqrscp holding `population` (a list of GeneratedSeries), able to move to a storescp."""
    async with storescp(parent_dir=tmp_path) as destination:
        async with dcmqrscp(known_peers=[destination.as_remote()], extra_args=["-v"], parent_dir=tmp_path) as qr:
            results = await store_files(qr, [path for series in population for path in series.paths])
            assert all(result.ok for result in results)
            yield qr, destination


async def wait_for_log(peer, *texts: str, timeout: float = 10.0) -> str:
    """The peer's log once it contains one of `texts` (DCMTK writes it as it goes)."""
    with trio.fail_after(timeout):
        while not any(text in (log := peer.server.log_text()) for text in texts):
            await trio.sleep(0.01)
    return log

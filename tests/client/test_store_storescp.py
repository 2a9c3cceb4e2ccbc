"""The SCU client's C-ECHO and C-STORE against DCMTK storescp on loopback, and the
association failures it must report as typed errors."""

import os

import pydicom
import pytest
import trio
from dicom_samples import SeriesSpec, build_mixed_folder, write_series
from peers.dicom_servers import storescp
from pydicom.data import get_testdata_file

from triopacs.client.connection import (
    AssociationAborted,
    AssociationRejected,
    ConnectionFailed,
    DimseTimeout,
    NoPresentationContext,
)
from triopacs.client.contexts import storage_contexts_for, verification_contexts
from triopacs.client.datasets import READ_CHUNK
from triopacs.storage.part10 import locate_dataset

from .helpers import LOOPBACK, assert_same_datasets, by_instance_uid, client_for, store_files

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"


def dataset_bytes(path) -> bytes:
    stored = locate_dataset(path)
    with open(path, "rb") as file:
        file.seek(stored.offset)
        return file.read()


async def test_mixed_folder_arrives_byte_for_byte(tmp_path):
    samples = build_mixed_folder(tmp_path / "mixed")
    files = [sample.path for sample in samples]
    contexts = [*verification_contexts(), *storage_contexts_for(files)]
    # +B: storescp writes each dataset exactly as it came off the wire.
    async with storescp(extra_args=["+B"], parent_dir=tmp_path) as peer:
        async with client_for(peer, contexts=contexts) as association:
            await association.echo()
            results = [await association.store(path) for path in files]
        arrived = {pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID: path for path in peer.stored_files()}
        assert sorted(arrived) == sorted(s.sop_instance_uid for s in samples)
        for sample in samples:
            sent = dataset_bytes(sample.path)
            sent += b"\0" * (len(sent) % 2)  # a deflated dataset is padded to even length
            assert dataset_bytes(arrived[sample.sop_instance_uid]) == sent, sample.source
    assert [result.status for result in results] == [0] * len(files)
    # Every file went in its own transfer syntax, unconverted.
    assert [result.transfer_syntax_uid for result in results] == [s.transfer_syntax_uid for s in samples]
    assert not any(result.converted for result in results)
    assert [result.sop_instance_uid for result in results] == [s.sop_instance_uid for s in samples]


async def test_little_endian_file_is_converted_for_a_peer_taking_only_implicit(tmp_path):
    source = get_testdata_file("CT_small.dcm")  # explicit VR little endian
    async with storescp(accept_all_transfer_syntaxes=False, extra_args=["+xi", "+B"], parent_dir=tmp_path) as peer:
        [result] = await store_files(peer, [source])
        received = peer.stored_files()
        assert pydicom.dcmread(received[0]).file_meta.TransferSyntaxUID == IMPLICIT_VR_LITTLE_ENDIAN
        assert_same_datasets(by_instance_uid([source]), by_instance_uid(received))
    assert result.ok and result.converted
    assert result.transfer_syntax_uid == IMPLICIT_VR_LITTLE_ENDIAN


async def test_a_pydicom_dataset_is_encoded_in_an_accepted_syntax(tmp_path):
    dataset = pydicom.dcmread(get_testdata_file("MR_small_implicit.dcm"))
    async with storescp(extra_args=["+B"], parent_dir=tmp_path) as peer:
        async with client_for(peer, contexts=storage_contexts_for([dataset])) as association:
            result = await association.store(dataset)
        [received] = peer.stored_files()
        assert pydicom.dcmread(received) == dataset
    assert result.ok and result.sop_instance_uid == dataset.SOPInstanceUID


async def test_a_file_larger_than_a_read_chunk_is_streamed_whole(tmp_path):
    path = tmp_path / "large.dcm"
    dataset = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    dataset.Rows = dataset.Columns = 1200  # 2.9 MB of pixels: several read chunks
    dataset.PixelData = os.urandom(1200 * 1200 * 2)
    dataset.save_as(path)
    async with storescp(extra_args=["+B"], parent_dir=tmp_path) as peer:
        async with client_for(peer, contexts=storage_contexts_for([path]), max_pdu_length=16384) as association:
            result = await association.store(path)
        [received] = peer.stored_files()
        assert dataset_bytes(received) == dataset_bytes(path)
    assert result.ok and result.bytes_sent == len(dataset_bytes(path)) > 2 * READ_CHUNK


async def test_no_context_names_the_sop_class_and_leaves_the_association_usable(storescp_peer, tmp_path):
    [series] = [write_series(tmp_path, SeriesSpec(count=1))]
    async with client_for(storescp_peer, contexts=verification_contexts()) as association:
        with pytest.raises(NoPresentationContext) as caught:
            await association.store(series.paths[0])
        await association.echo()
    assert caught.value.sop_class_uid == CT_IMAGE_STORAGE
    assert "CT Image Storage" in str(caught.value) and "Explicit VR Little Endian" in str(caught.value)
    assert storescp_peer.stored_files() == []


async def test_a_peer_abort_is_raised_as_association_aborted(tmp_path):
    source = get_testdata_file("CT_small.dcm")
    async with storescp(extra_args=["--abort-after"], parent_dir=tmp_path) as peer:
        with pytest.raises(AssociationAborted) as caught:
            await store_files(peer, [source])
    assert caught.value.by_peer


async def test_a_peer_that_stops_answering_gives_dimse_timeout(tmp_path):
    source = get_testdata_file("CT_small.dcm")
    async with storescp(extra_args=["--sleep-during", "30"], parent_dir=tmp_path) as peer:
        with trio.fail_after(10):  # the timeout, not the peer's 30 s sleep, ends the wait
            with pytest.raises(DimseTimeout) as caught:
                await store_files(peer, [source], dimse_timeout=0.5)
    assert "C-STORE response" in str(caught.value)


async def test_a_refusing_peer_gives_association_rejected(tmp_path):
    async with storescp(extra_args=["--refuse"], parent_dir=tmp_path) as peer:
        with pytest.raises(AssociationRejected) as caught:
            async with client_for(peer, contexts=verification_contexts()):
                pass
    assert caught.value.permanent
    assert "rejected" in str(caught.value)


async def test_nothing_listening_gives_connection_failed():
    listeners = await trio.open_tcp_listeners(0, host=LOOPBACK)
    port = listeners[0].socket.getsockname()[1]
    await listeners[0].aclose()
    with pytest.raises(ConnectionFailed) as caught:
        async with client_for(type("Gone", (), {"port": port, "ae_title": "NOBODY"})()):
            pass
    assert str(port) in str(caught.value)


async def test_a_silent_peer_times_out_the_association_request(autojump_clock):
    listeners = await trio.open_tcp_listeners(0, host=LOOPBACK)
    port = listeners[0].socket.getsockname()[1]

    async def accept_and_say_nothing():
        stream = await listeners[0].accept()
        async with stream:
            while await stream.receive_some(65536):
                pass

    async with trio.open_nursery() as nursery:
        nursery.start_soon(accept_and_say_nothing)
        started = trio.current_time()
        with pytest.raises(DimseTimeout) as caught:
            async with client_for(type("Silent", (), {"port": port, "ae_title": "SILENT"})(), artim_timeout=30):
                pass
        assert trio.current_time() - started == pytest.approx(30)
        nursery.cancel_scope.cancel()
    assert "A-ASSOCIATE" in str(caught.value)


async def test_a_release_the_peer_never_answers_ends_in_an_abort(tmp_path):
    import structlog

    source = get_testdata_file("CT_small.dcm")
    async with storescp(extra_args=["--sleep-during", "30"], parent_dir=tmp_path) as peer:
        started = trio.current_time()
        with structlog.testing.capture_logs() as logs:
            with trio.move_on_after(0.5) as caller:
                async with client_for(peer, contexts=storage_contexts_for([source]), close_timeout=0.5) as association:
                    await association.store(source)  # the peer sleeps on it: we give up after 0.5 s
        elapsed = trio.current_time() - started
    assert caller.cancelled_caught and not association.is_established
    # 0.5 s waiting for the C-STORE response, 0.5 s for the A-RELEASE-RP, then the abort.
    assert 1.0 <= elapsed < 5
    events = [entry["event"] for entry in logs]
    assert events[-2:] == ["no clean end within the close timeout: aborting", "association aborted by us"]
    assert "association released" not in events

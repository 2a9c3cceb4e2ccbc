"""A 64 MiB instance stored by STOW-RS and retrieved by WADO-RS: the node's Python
allocations stay a fraction of it (traced with tracemalloc in this process, where the
node runs), so memory is bounded by the streaming, not by the body."""

from __future__ import annotations

import tracemalloc

import httpx
import trio
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from dicomweb.support import dicomweb_url
from node.nodes import counts, running_node
from triopacs.web.dicomweb.multipart import closing, part_head

SIZE = 64 * 1024 * 1024
BOUND = 24 * 1024 * 1024  # what the node may hold at once: a few write batches and read chunks


def big_instance(path) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = "BIG", "LARGE^BODY", "OT"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 4096, 8192, 1, 16, 16, 15
    ds.PixelRepresentation, ds.PhotometricInterpretation = 0, "MONOCHROME2"
    ds.PixelData = bytes(range(256)) * (SIZE // 256)
    ds.save_as(path, enforce_file_format=True)
    return ds


async def test_a_large_instance_streams_both_ways_in_bounded_memory(tmp_path):
    path = tmp_path / "big.dcm"
    ds = big_instance(path)
    boundary = "large-body"
    head, tail = part_head(boundary, "application/dicom"), b"\r\n" + closing(boundary)
    length = len(head) + path.stat().st_size + len(tail)

    def body():
        yield head
        with open(path, "rb") as file:
            while chunk := file.read(1024 * 1024):
                yield chunk
        yield tail

    async with running_node(tmp_path) as node:
        url = dicomweb_url(node)

        def post() -> int:
            headers = {"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}', "Content-Length": str(length)}
            with httpx.Client(timeout=120) as client:
                return client.post(f"{url}/studies", content=body(), headers=headers).status_code

        def fetch() -> int:
            received = 0
            accept = 'multipart/related; type="application/dicom"; transfer-syntax=*'
            with httpx.Client(timeout=120) as client, client.stream("GET", f"{url}/studies/{ds.StudyInstanceUID}",
                                                                   headers={"Accept": accept}) as response:
                for chunk in response.iter_raw(1024 * 1024):
                    received += len(chunk)
            return received

        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            assert await trio.to_thread.run_sync(post) == 200
            stored_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()
            assert await trio.to_thread.run_sync(fetch) > SIZE
            retrieved_peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert (await counts(node)).instances == 1
        assert stored_peak < BOUND, f"STOW-RS of {SIZE >> 20} MiB peaked at {stored_peak >> 20} MiB"
        assert retrieved_peak < BOUND, f"WADO-RS of {SIZE >> 20} MiB peaked at {retrieved_peak >> 20} MiB"

"""Part 10 files built around a streamed dataset, read back, and placed durably."""

import hashlib
import io
import os
import random

import pydicom
import pytest
from pydicom.data import get_testdata_file

from triopacs.protocol.uid import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from triopacs.storage import files, part10
from triopacs.storage.errors import InvalidPart10File
from triopacs.storage.part10 import (
    Part10Writer,
    file_meta_bytes,
    iter_dataset_bytes,
    locate_dataset,
    read_file_meta,
)

# One sample per way a dataset can be encoded on the wire: each is stored as received.
SAMPLES = [
    "CT_small.dcm",  # explicit VR little endian
    "MR_small_implicit.dcm",  # implicit VR little endian
    "MR_small_bigendian.dcm",  # explicit VR big endian
    "MR_small_RLE.dcm",  # encapsulated (RLE)
    "JPEG2000.dcm",  # encapsulated (JPEG 2000)
    "image_dfl.dcm",  # deflated
]


def received_stream(name):
    """What an association would hand over for this sample: the dataset bytes in the
    sample's transfer syntax (as the peer sent them), plus the command's UIDs."""
    stored = locate_dataset(get_testdata_file(name))
    data = b"".join(iter_dataset_bytes(stored))
    ds = pydicom.dcmread(get_testdata_file(name), stop_before_pixels=True)
    return data, stored.transfer_syntax_uid, str(ds.SOPClassUID), str(ds.SOPInstanceUID)


def read_meta(header):
    return pydicom.dcmread(io.BytesIO(header)).file_meta


def random_chunks(data, seed):
    rng = random.Random(seed)
    position = 0
    while position < len(data):
        size = rng.choice([1, 2, 3, 7, 128, 4096, 65536])
        yield data[position : position + size]
        position += size


class FsyncSpy:
    def __init__(self, monkeypatch):
        self.calls = []
        real = os.fsync

        def spy(fd):
            self.calls.append(fd)
            return real(fd)

        monkeypatch.setattr(part10.os, "fsync", spy)


def test_file_meta_is_what_pydicom_reads():
    header = file_meta_bytes(
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        sop_instance_uid="1.2.3.4",  # odd length: must be NUL padded
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        source_ae_title="MODALITY",
    )
    assert header[:128] == bytes(128) and header[128:132] == b"DICM"
    meta = read_meta(header)
    assert meta.FileMetaInformationVersion == b"\x00\x01"
    assert meta.MediaStorageSOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert meta.MediaStorageSOPInstanceUID == "1.2.3.4"
    assert meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert meta.ImplementationVersionName == IMPLEMENTATION_VERSION_NAME
    assert meta.SourceApplicationEntityTitle == "MODALITY"
    # The group length covers exactly the elements after it.
    assert meta.FileMetaInformationGroupLength == len(header) - 132 - 12
    assert len(header) % 2 == 0


def test_source_ae_title_is_optional():
    header = file_meta_bytes(sop_class_uid="1.2", sop_instance_uid="1.3", transfer_syntax_uid="1.2.840.10008.1.2")
    meta = read_meta(header)
    assert "SourceApplicationEntityTitle" not in meta


@pytest.mark.parametrize("name", SAMPLES)
def test_streamed_dataset_becomes_a_readable_part10_file(tmp_path, monkeypatch, name):
    data, transfer_syntax, sop_class, sop_instance = received_stream(name)
    header = file_meta_bytes(
        sop_class_uid=sop_class, sop_instance_uid=sop_instance, transfer_syntax_uid=transfer_syntax
    )
    spy = FsyncSpy(monkeypatch)
    path = tmp_path / "out.dcm"
    with open(path, "wb") as file:
        writer = Part10Writer(file, header)
        for chunk in random_chunks(data, seed=name):
            writer.write(chunk)
        written = writer.finish()
        assert spy.calls == [file.fileno()]
    on_disk = path.read_bytes()
    assert on_disk == header + data  # stored as received, never transcoded
    assert written.size == len(on_disk)
    assert written.sha256 == hashlib.sha256(on_disk).hexdigest()

    ours = pydicom.dcmread(path)
    original = pydicom.dcmread(get_testdata_file(name))
    assert ours.file_meta.TransferSyntaxUID == transfer_syntax
    assert ours.SOPInstanceUID == sop_instance
    assert ours.PixelData == original.PixelData
    assert [e.tag for e in ours] == [e.tag for e in original]


def test_writer_accepts_memoryview_and_bytearray_and_finish_is_idempotent(tmp_path, monkeypatch):
    spy = FsyncSpy(monkeypatch)
    with open(tmp_path / "f", "wb") as file:
        writer = Part10Writer(file, b"H" * 132)
        writer.write(memoryview(b"abc"))
        writer.write(bytearray(b"de"))
        first = writer.finish()
        assert writer.finish() == first
        with pytest.raises(ValueError):
            writer.write(b"late")
    assert len(spy.calls) == 1
    assert first.size == 137
    assert (tmp_path / "f").read_bytes() == b"H" * 132 + b"abcde"


def test_write_then_hash_lets_the_disk_start_before_hashing_and_hashes_everything(tmp_path):
    seen_on_disk = []
    with open(tmp_path / "f", "w+b") as file:
        writer = Part10Writer(file, b"HEAD")
        writer.write(b"first-")
        writer.write_then_hash(
            [memoryview(b"second-"), bytearray(b"third")],
            lambda fd: seen_on_disk.append(os.pread(fd, 64, 0)),
        )
        written = writer.finish(sync=False)
    expected = b"HEADfirst-second-third"
    assert seen_on_disk == [expected]  # flushed before the callback: the kernel has it all
    assert written.size == len(expected)
    assert written.sha256 == hashlib.sha256(expected).hexdigest()


def test_empty_dataset_still_gets_its_header(tmp_path):
    with open(tmp_path / "f", "wb") as file:
        written = Part10Writer(file, b"HEADER").finish()
    assert (tmp_path / "f").read_bytes() == b"HEADER"
    assert written.sha256 == hashlib.sha256(b"HEADER").hexdigest()


@pytest.mark.parametrize("name", SAMPLES)
def test_dataset_stream_of_a_stored_file_skips_preamble_and_meta(tmp_path, name):
    data, transfer_syntax, sop_class, sop_instance = received_stream(name)
    header = file_meta_bytes(
        sop_class_uid=sop_class, sop_instance_uid=sop_instance, transfer_syntax_uid=transfer_syntax, source_ae_title="X"
    )
    path = tmp_path / "stored.dcm"
    path.write_bytes(header + data)
    stored = locate_dataset(path)
    assert stored.offset == len(header)
    assert stored.length == len(data)
    assert stored.transfer_syntax_uid == transfer_syntax
    assert stored.meta.media_storage_sop_instance_uid == sop_instance
    assert stored.meta.source_ae_title == "X"
    assert b"".join(iter_dataset_bytes(stored, chunk_size=1000)) == data


def test_meta_without_group_length_is_still_located():
    stored = locate_dataset(get_testdata_file("no_meta_group_length.dcm"))
    ds = pydicom.dcmread(get_testdata_file("no_meta_group_length.dcm"))
    assert stored.transfer_syntax_uid == ds.file_meta.TransferSyntaxUID
    with open(stored.path, "rb") as file:
        file.seek(stored.offset)
        assert file.read(2) == b"\x08\x00"  # group 0008 starts the dataset


@pytest.mark.parametrize(
    "content",
    [b"", b"not dicom at all", bytes(128) + b"DICX" + bytes(20), bytes(128) + b"DICM" + b"\x02\x00\x10\x00UI\x40\x00"],
)
def test_unreadable_headers_are_typed_errors(tmp_path, content):
    path = tmp_path / "bad.dcm"
    path.write_bytes(content)
    with pytest.raises(InvalidPart10File):
        locate_dataset(path)


def test_read_file_meta_leaves_the_file_at_the_dataset(tmp_path):
    header = file_meta_bytes(sop_class_uid="1.2", sop_instance_uid="1.3", transfer_syntax_uid="1.2.840.10008.1.2")
    with io.BytesIO(header + b"DATASET") as file:
        meta, offset = read_file_meta(file)
        assert file.read() == b"DATASET"
    assert offset == len(header)
    assert meta.transfer_syntax_uid == "1.2.840.10008.1.2"


# -- durable placement (files.py) ------------------------------------------------------------


def test_temp_file_is_hidden_beside_the_destination_and_directories_are_created(tmp_path):
    dest = tmp_path / "a" / "b" / "x.dcm"
    tmp, file = files.open_temp_beside(dest)
    file.close()
    assert tmp.parent == dest.parent and tmp.name.startswith(".x.dcm.") and tmp.suffix == ".part"
    assert dest.parent.is_dir()


def test_publish_without_overwrite_never_clobbers(tmp_path):
    dest = tmp_path / "x.dcm"
    dest.write_bytes(b"old")
    tmp, file = files.open_temp_beside(dest)
    file.write(b"new")
    file.close()
    assert files.publish(tmp, dest, overwrite=False) is False
    assert dest.read_bytes() == b"old" and tmp.exists()
    assert files.publish(tmp, dest, overwrite=True) is True
    assert dest.read_bytes() == b"new" and not tmp.exists()


def test_publish_to_a_free_name_moves_the_file(tmp_path):
    dest = tmp_path / "x.dcm"
    tmp, file = files.open_temp_beside(dest)
    file.write(b"data")
    file.close()
    assert files.publish(tmp, dest, overwrite=False) is True
    assert dest.read_bytes() == b"data"
    assert [p.name for p in tmp_path.iterdir()] == ["x.dcm"]


def test_discard_is_quiet_about_missing_files(tmp_path):
    files.discard(tmp_path / "nope")
    files.discard(None)
    (tmp_path / "yes").write_bytes(b"")
    files.discard(tmp_path / "yes")
    assert not (tmp_path / "yes").exists()


def test_ensure_directory_fsyncs_each_parent_it_changes(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(files, "fsync_directory", lambda path: synced.append(path))
    files.ensure_directory(tmp_path / "a" / "b")
    assert synced == [tmp_path, tmp_path / "a"]
    synced.clear()
    files.ensure_directory(tmp_path / "a" / "b")
    assert synced == []

"""DICOM test data made offline: pydicom's bundled samples, and generated CT/MR series.

(a) `build_mixed_folder(dest)` copies a curated mix of SOP classes and transfer
    syntaxes from pydicom's test files. Samples that share a SOP Instance UID (the
    MR_small variants are one image in six encodings) get a fresh UID so that a
    store keeps all of them.
(b) `write_series(dest, SeriesSpec(...))` writes N realistic CT (512x512, 16-bit,
    ~514 KiB) or MR (256x256) instances as Part 10 files, with proper patient /
    study / series / instance attributes; `write_population` builds a known set of
    patients and studies for query tests. Pixel data is made once and reused, and
    only a small header is encoded per file, so 1000 CT images take about a second
    plus the disk writes.
"""

from __future__ import annotations

import functools
import hashlib
import io
import shutil
import struct
import uuid
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    PYDICOM_IMPLEMENTATION_UID,
)

# ---------------------------------------------------------------- (a) pydicom samples

# File name -> why it is in the mix. All carry patient/study/series/instance UIDs, and
# DCMTK storescu sends all of them when it proposes each file's own SOP class and
# transfer syntax (peers.storescu does, through an association config). With
# storescu's built-in proposal (uncompressed only, 64 SOP classes) the compressed ones
# and the Segmentation fail: DCMTK cannot decompress them and does not know SEG.
MIXED_SAMPLES: dict[str, str] = {
    "CT_small.dcm": "CT, explicit VR little endian, ISO_IR 100",
    "MR_small.dcm": "MR, explicit VR little endian",
    "MR_small_implicit.dcm": "MR, implicit VR little endian",
    "MR_small_bigendian.dcm": "MR, explicit VR big endian",
    "MR_small_RLE.dcm": "MR, RLE lossless",
    "MR_small_jpeg_ls_lossless.dcm": "MR, JPEG-LS lossless",
    "MR_small_jp2klossless.dcm": "MR, JPEG 2000 lossless",
    "rtdose.dcm": "RT Dose, multi-frame, implicit VR",
    "rtplan.dcm": "RT Plan (no pixels), implicit VR",
    "liver_1frame.dcm": "Segmentation",
    "test-SR.dcm": "Comprehensive SR",
    "reportsi.dcm": "Basic Text SR",
    "examples_palette.dcm": "US, palette color",
    "examples_ybr_color.dcm": "US multi-frame, JPEG baseline",
    "ExplVR_BigEnd.dcm": "US, explicit VR big endian",
    "waveform_ecg.dcm": "12-lead ECG waveform",
    "SC_rgb_jpeg_dcmtk.dcm": "Secondary capture, JPEG baseline, ISO_IR 192",
    "JPGExtended.dcm": "Secondary capture, JPEG extended (process 2 and 4)",
    "SC_rgb_jpeg_gdcm.dcm": "Secondary capture, JPEG lossless SV1",
    "JPEG2000.dcm": "Secondary capture, JPEG 2000",
    "image_dfl.dcm": "Secondary capture, deflated explicit VR little endian",
    "SC_rgb_rle.dcm": "Secondary capture, RGB RLE lossless",
}

# Bundled files left out, and why.
EXCLUDED_SAMPLES: dict[str, str] = {
    "JPEGLSNearLossless_08.dcm": "no Study/Series Instance UID",
    "JPEGLSNearLossless_16.dcm": "no Study/Series Instance UID",
    "SC_rgb_jls_lossy_line.dcm": "no Study/Series Instance UID",
    "SC_rgb_jls_lossy_sample.dcm": "no Study/Series Instance UID",
    "ExplVR_BigEndNoMeta.dcm": "no file meta information",
    "ExplVR_LitEndNoMeta.dcm": "no file meta information",
    "no_meta.dcm": "no file meta information",
    "rtstruct.dcm": "no file meta information",
    "UN_sequence.dcm": "no SOP Class/Instance UID",
    "empty_charset_LEI.dcm": "no SOP Class/Instance UID",
    "meta_missing_tsyntax.dcm": "no SOP UIDs, no transfer syntax",
    "priv_SQ.dcm": "no SOP Class/Instance UID",
    "nested_priv_SQ.dcm": "no SOP Class/Instance UID",
    "no_meta_group_length.dcm": "no SOP Class/Instance UID",
    "MR_truncated.dcm": "pixel data truncated on purpose",
    "rtplan_truncated.dcm": "truncated on purpose",
}

# Transfer syntaxes every DICOM SCP accepts (dcmqrscp accepts only these by default).
UNCOMPRESSED_SYNTAXES = frozenset(
    {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}
)


@dataclass(frozen=True)
class SampleFile:
    path: Path
    source: str  # pydicom test file name
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    patient_id: str
    study_instance_uid: str
    series_instance_uid: str


def uid_from(*parts: object) -> str:
    """A UID under 2.25 derived from `parts` (same parts, same UID)."""
    digest = hashlib.sha256("\0".join(map(str, parts)).encode()).digest()[:16]
    return f"2.25.{int.from_bytes(digest, 'big')}"


def new_uid() -> str:
    return f"2.25.{uuid.uuid4().int}"


def _describe(path: Path, source: str, dataset: Dataset) -> SampleFile:
    return SampleFile(
        path=path,
        source=source,
        sop_class_uid=str(dataset.SOPClassUID),
        sop_instance_uid=str(dataset.SOPInstanceUID),
        transfer_syntax_uid=str(dataset.file_meta.TransferSyntaxUID),
        patient_id=str(dataset.get("PatientID", "") or ""),
        study_instance_uid=str(dataset.StudyInstanceUID),
        series_instance_uid=str(dataset.SeriesInstanceUID),
    )


def build_mixed_folder(
    dest: Path,
    *,
    names: Iterable[str] = MIXED_SAMPLES,
    uncompressed_only: bool = False,
) -> list[SampleFile]:
    """Copy the mixed samples into dest (created) and describe them.

    uncompressed_only keeps the implicit/explicit little and big endian files, for
    peers that accept no compressed syntax (dcmqrscp in its default configuration).
    """
    dest.mkdir(parents=True, exist_ok=True)
    samples: list[SampleFile] = []
    seen_uids: set[str] = set()
    for name in names:
        source = Path(get_testdata_file(name))
        dataset = pydicom.dcmread(source)
        if uncompressed_only and str(dataset.file_meta.TransferSyntaxUID) not in UNCOMPRESSED_SYNTAXES:
            continue
        target = dest / name
        if str(dataset.SOPInstanceUID) in seen_uids:
            fresh = uid_from("triopacs-sample", name, dataset.SOPInstanceUID)
            dataset.SOPInstanceUID = fresh
            dataset.file_meta.MediaStorageSOPInstanceUID = fresh
            dataset.save_as(target, enforce_file_format=True)  # keeps its transfer syntax
        else:
            shutil.copyfile(source, target)
        seen_uids.add(str(dataset.SOPInstanceUID))
        samples.append(_describe(target, name, dataset))
    return samples


# ---------------------------------------------------------------- (b) generated series


@dataclass(frozen=True)
class SeriesSpec:
    """One series of a study of a patient. UIDs left None are made up (under 2.25)."""

    count: int = 10
    modality: str = "CT"  # "CT" (512x512) or "MR" (256x256)
    patient_id: str = "TRIO0001"
    patient_name: str = "DOE^JANE"
    patient_birth_date: str = "19700101"
    patient_sex: str = "F"
    study_instance_uid: str | None = None
    study_date: str = "20240115"
    study_time: str = "093000"
    study_id: str = "1"
    study_description: str = "CHEST"
    accession_number: str = "ACC0001"
    referring_physician_name: str = "HOUSE^GREGORY"
    series_instance_uid: str | None = None
    series_number: int = 1
    series_description: str = "AXIAL"
    body_part_examined: str = "CHEST"
    institution_name: str = "TRIOPACS TEST HOSPITAL"
    specific_character_set: str = "ISO_IR 100"
    first_instance_number: int = 1


@dataclass(frozen=True)
class GeneratedSeries:
    spec: SeriesSpec
    study_instance_uid: str
    series_instance_uid: str
    sop_class_uid: str
    sop_instance_uids: tuple[str, ...]
    paths: tuple[Path, ...] = field(repr=False)

    @property
    def folder(self) -> Path:
        return self.paths[0].parent


_GEOMETRY = {
    # modality: (SOP class, rows/columns, bits stored, slice spacing mm, pixel spacing mm)
    "CT": (CTImageStorage, 512, 12, 5.0, 0.7),
    "MR": (MRImageStorage, 256, 12, 4.0, 0.9),
}


@functools.cache
def _phantom_pixel_element(size: int, background: int, body: int, organ: int) -> bytes:
    """(7FE0,0010) OW element, explicit VR little endian, of a round phantom image."""
    pixels = array("H", [background]) * (size * size)
    centre = size / 2
    for row in range(size):
        dy = row - centre + 0.5
        for radius, value in ((size * 0.40, body), (size * 0.12, organ)):
            if abs(dy) < radius:
                half = int((radius * radius - dy * dy) ** 0.5)
                start, stop = int(centre) - half, int(centre) + half
                pixels[row * size + start : row * size + stop] = array("H", [value]) * (stop - start)
    if pixels.itemsize != 2:
        raise RuntimeError("array('H') is not 16-bit here")
    data = pixels.tobytes() if struct.pack("=H", 1) == b"\x01\x00" else _byteswapped(pixels)
    return b"\xe0\x7f\x10\x00OW\x00\x00" + struct.pack("<I", len(data)) + data


def _byteswapped(pixels: array) -> bytes:
    swapped = array("H", pixels)
    swapped.byteswap()
    return swapped.tobytes()


def _pixel_element(modality: str) -> bytes:
    size = _GEOMETRY[modality][1]
    if modality == "CT":  # stored = HU + 1024: air, soft tissue, contrast-filled organ
        return _phantom_pixel_element(size, 24, 1064, 1224)
    return _phantom_pixel_element(size, 0, 900, 1800)


def _series_template(spec: SeriesSpec, study_uid: str, series_uid: str) -> Dataset:
    sop_class, size, bits, _spacing, pixel_mm = _GEOMETRY[spec.modality]
    ds = Dataset()
    ds.SpecificCharacterSet = spec.specific_character_set
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL" if spec.modality == "CT" else "OTHER"]
    ds.SOPClassUID = sop_class
    ds.StudyDate = spec.study_date
    ds.SeriesDate = spec.study_date
    ds.ContentDate = spec.study_date
    ds.StudyTime = spec.study_time
    ds.SeriesTime = spec.study_time
    ds.AccessionNumber = spec.accession_number
    ds.Modality = spec.modality
    ds.Manufacturer = "triopacs"
    ds.InstitutionName = spec.institution_name
    ds.ReferringPhysicianName = spec.referring_physician_name
    ds.StudyDescription = spec.study_description
    ds.SeriesDescription = spec.series_description
    ds.PatientName = spec.patient_name
    ds.PatientID = spec.patient_id
    ds.PatientBirthDate = spec.patient_birth_date
    ds.PatientSex = spec.patient_sex
    ds.BodyPartExamined = spec.body_part_examined
    ds.SliceThickness = str(_spacing)
    if spec.modality == "CT":
        ds.KVP = "120"
    else:
        ds.MagneticFieldStrength = "1.5"
        ds.ScanningSequence = "SE"
        ds.SequenceVariant = "NONE"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "2D"
        ds.EchoTrainLength = "1"
        ds.EchoTime = "10"
        ds.RepetitionTime = "500"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = spec.study_id
    ds.SeriesNumber = spec.series_number
    ds.AcquisitionNumber = 1
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = uid_from("frame", series_uid)
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = size
    ds.Columns = size
    ds.PixelSpacing = [pixel_mm, pixel_mm]
    ds.BitsAllocated = 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if spec.modality == "CT":
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
    return ds


# Elements that change from one instance of a series to the next; everything else in a
# file's header is the same, so the header is encoded once with pydicom and these few
# elements are spliced in per instance.
_SOP_INSTANCE_UID_TAGS = {(0x0002, 0x0003), (0x0008, 0x0018)}
_PER_INSTANCE_TAGS = {*_SOP_INSTANCE_UID_TAGS, (0x0020, 0x0013), (0x0020, 0x0032), (0x0020, 0x1041)}
_LONG_LENGTH_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


def _element(tag: tuple[int, int], vr: str, value: str) -> bytes:
    """One short-VR element, explicit VR little endian."""
    raw = value.encode("ascii")
    if len(raw) % 2:
        raw += b"\0" if vr == "UI" else b" "
    return struct.pack("<HH", *tag) + vr.encode() + struct.pack("<H", len(raw)) + raw


def _split_header(encoded: bytes) -> list[bytes | tuple[int, int]]:
    """Cut an encoded Part 10 header into constant byte runs and per-instance tags."""
    pieces: list[bytes | tuple[int, int]] = []
    position = run_start = 132  # preamble + "DICM"
    while position < len(encoded):
        group, element = struct.unpack_from("<HH", encoded, position)
        vr = encoded[position + 4 : position + 6]
        if vr in _LONG_LENGTH_VRS:
            (length,) = struct.unpack_from("<I", encoded, position + 8)
            end = position + 12 + length
        else:
            (length,) = struct.unpack_from("<H", encoded, position + 6)
            end = position + 8 + length
        if (group, element) in _PER_INSTANCE_TAGS:
            pieces += [encoded[run_start:position], (group, element)]
            run_start = end
        position = end
    pieces.insert(0, encoded[:132])
    pieces.append(encoded[run_start:])
    return pieces


def _fixed_length_uid(*parts: object) -> str:
    # 39 digits after "2.25." (44 characters, even): the file meta group length then
    # stays the same for every instance.
    digest = int.from_bytes(hashlib.sha256("\0".join(map(str, parts)).encode()).digest()[:16], "big")
    return f"2.25.{10**38 + digest % (2 * 10**38)}"


def _instance_elements(spec: SeriesSpec, index: int, sop_uid: str) -> dict[tuple[int, int], bytes]:
    z = f"{0.0 - _GEOMETRY[spec.modality][3] * index:.1f}"  # 0.0 - x: never "-0.0"
    uid = _element((0x0008, 0x0018), "UI", sop_uid)
    return {
        (0x0002, 0x0003): struct.pack("<HH", 0x0002, 0x0003) + uid[4:],
        (0x0008, 0x0018): uid,
        (0x0020, 0x0013): _element((0x0020, 0x0013), "IS", str(spec.first_instance_number + index)),
        (0x0020, 0x0032): _element((0x0020, 0x0032), "DS", f"-180\\-180\\{z}"),
        (0x0020, 0x1041): _element((0x0020, 0x1041), "DS", z),
    }


def _encoded_template(template: Dataset, spec: SeriesSpec, sop_uid: str) -> bytes:
    template.SOPInstanceUID = sop_uid
    template.InstanceNumber = spec.first_instance_number
    template.ImagePositionPatient = [-180, -180, 0]
    template.SliceLocation = 0
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = template.SOPClassUID
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    template.file_meta = meta
    buffer = io.BytesIO()
    template.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def write_series(dest: Path, spec: SeriesSpec) -> GeneratedSeries:
    """Write spec.count instances into dest/<series UID>/IMG00001.dcm, ..."""
    if spec.modality not in _GEOMETRY:
        raise ValueError(f"modality must be one of {sorted(_GEOMETRY)}, not {spec.modality!r}")
    study_uid = spec.study_instance_uid or new_uid()
    series_uid = spec.series_instance_uid or new_uid()
    folder = dest / series_uid
    folder.mkdir(parents=True, exist_ok=True)
    template = _series_template(spec, study_uid, series_uid)
    pieces = _split_header(_encoded_template(template, spec, _fixed_length_uid("template")))
    # Pixel Data (7FE0,0010) is the dataset's last element: appended after the header.
    pixels = _pixel_element(spec.modality)
    uids, paths = [], []
    for index in range(spec.count):
        sop_uid = _fixed_length_uid("instance", series_uid, spec.first_instance_number + index)
        changed = _instance_elements(spec, index, sop_uid)
        header = b"".join(changed[piece] if isinstance(piece, tuple) else piece for piece in pieces)
        path = folder / f"IMG{spec.first_instance_number + index:05d}.dcm"
        with open(path, "wb") as file:
            file.write(header)
            file.write(pixels)
        uids.append(sop_uid)
        paths.append(path)
    return GeneratedSeries(
        spec, study_uid, series_uid, str(template.SOPClassUID), tuple(uids), tuple(paths)
    )


FIRST_STUDY_DATE = date(2024, 1, 1)


def write_population(
    dest: Path,
    *,
    patients: Sequence[tuple[str, str]] = (("TRIO0001", "DOE^JANE"), ("TRIO0002", "ROE^RICHARD")),
    studies_per_patient: int = 2,
    series_per_study: int = 2,
    images_per_series: int = 2,
    modalities: Sequence[str] = ("CT", "MR"),
) -> list[GeneratedSeries]:
    """A known population, for query tests.

    Patient p (from 0), study s (from 0) is dated 2024-01-01 + 30*p + s days, has
    accession number ACC<p+1><s+1>, StudyID s+1 and description "STUDY <s+1>";
    series n has modality modalities[n % len(modalities)] and number n+1. Attributes
    are deterministic; UIDs are fresh on each call.
    """
    written = []
    for p, (patient_id, patient_name) in enumerate(patients):
        for s in range(studies_per_patient):
            base = SeriesSpec(
                count=images_per_series,
                patient_id=patient_id,
                patient_name=patient_name,
                study_instance_uid=new_uid(),
                study_date=(FIRST_STUDY_DATE + timedelta(days=30 * p + s)).strftime("%Y%m%d"),
                study_id=str(s + 1),
                accession_number=f"ACC{p + 1}{s + 1}",
                study_description=f"STUDY {s + 1}",
            )
            for n in range(series_per_study):
                spec = replace(
                    base,
                    modality=modalities[n % len(modalities)],
                    series_number=n + 1,
                    series_description=f"SERIES {n + 1}",
                )
                written.append(write_series(dest, spec))
    return written

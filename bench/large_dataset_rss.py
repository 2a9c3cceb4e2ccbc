"""Peak memory of an SCP while it receives one very large dataset (default 1 GiB).

    .venv/bin/python bench/large_dataset_rss.py                 # triopacs vs DCMTK storescp
    .venv/bin/python bench/large_dataset_rss.py --gib 0.25      # a smaller one

A multi-frame CT of 512x512 16-bit frames is written once (header by pydicom, pixel data
streamed, so this script itself stays small), then DCMTK storescu sends it over one
association to each target in turn. Reported: seconds, MB/s and the server's peak
resident set size (VmHWM from /proc/PID/status: the high-water mark over the process's
life, start-up included). The node must stay under 200 MB: it streams the dataset to a
temp file and never holds it whole.
"""

import argparse
import os
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

import trio
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_throughput import TARGETS  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from peers import LOOPBACK, run_dcmtk  # noqa: E402

FRAME = 512 * 512 * 2
MB = 1_000_000


def write_large_ct(path: Path, frames: int) -> int:
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid(prefix="2.25.")
    ds.StudyInstanceUID = generate_uid(prefix="2.25.")
    ds.SeriesInstanceUID = generate_uid(prefix="2.25.")
    ds.PatientID, ds.PatientName, ds.Modality = "BIG1", "LARGE^DATASET", "CT"
    ds.Rows = ds.Columns = 512
    ds.NumberOfFrames = frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    frame = bytes(range(256)) * (FRAME // 256)
    with open(path, "ab") as file:  # (7FE0,0010) OW, explicit length, then the frames
        file.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, FRAME * frames))
        for _ in range(frames):
            file.write(frame)
    return path.stat().st_size


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / MB
    raise RuntimeError("no VmHWM in /proc status")


async def measure(target_name: str, path: Path, scratch: Path, timeout: float) -> tuple[float, float, int]:
    target = TARGETS[target_name]()
    async with target.start(scratch) as running:
        started = time.perf_counter()
        result = await run_dcmtk(
            "storescu", "-aet", "BENCH", "-aec", target.ae_title, LOOPBACK, str(running.port), str(path), timeout=timeout
        )
        elapsed = time.perf_counter() - started
        if result.returncode != 0 or result.errors():
            raise RuntimeError(f"{target_name}: storescu failed: {result.errors()[:2]}")
        stored = await target.stored_count(running)
        return elapsed, peak_rss_mb(running.pid), stored


async def main(options: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="triopacs-rss-", dir=options.work_dir))
    try:
        frames = max(1, round(options.gib * 2**30 / FRAME))
        path = work / "large.dcm"
        size = write_large_ct(path, frames)
        print(f"dataset: {frames} frames, {size / 2**30:.2f} GiB")
        scratch = work / "servers"
        scratch.mkdir()
        rows = []
        for name in options.targets:
            elapsed, rss, stored = await measure(name, path, scratch, options.timeout)
            rows.append((name, elapsed, size / elapsed / MB, rss, stored))
            print(f"  {name}: {elapsed:.1f} s, peak RSS {rss:.0f} MB", flush=True)
        print(f"\none {size / 2**30:.2f} GiB dataset over one association, DCMTK storescu, TCP_NODELAY=1")
        print(f"{'target':<18}{'seconds':>9}{'MB/s':>9}{'peak RSS MB':>13}{'stored':>8}")
        for name, elapsed, rate, rss, stored in rows:
            print(f"{name:<18}{elapsed:>9.1f}{rate:>9.1f}{rss:>13.0f}{stored:>8}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gib", type=float, default=1.0, help="dataset size in GiB (default 1)")
    parser.add_argument("--targets", default="triopacs,dcmtk-storescp")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--work-dir", type=Path, default=None)
    options = parser.parse_args()
    options.targets = [t.strip() for t in options.targets.split(",") if t.strip()]
    os.environ["TCP_NODELAY"] = "1"
    return options


if __name__ == "__main__":
    sys.exit(trio.run(main, parse()))

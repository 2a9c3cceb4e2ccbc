"""The load of a memory soak: stores, C-FINDs at every level, C-GETs and C-MOVEs.

Run as its own process, so that the node under test (in the caller's process, or a
`triopacs serve`) is the only thing whose memory is measured:

    python soak_client.py HOST PORT --ae TRIOPACS --move-to STORESCP [--patients 20 ...]

It reads commands on stdin, one a line, and answers each with one JSON line on stdout:

    populate      store the whole archive once (new instances)
    round N [OPERATION...]
                  N rounds; each stores every instance of one patient again (replacing
                  them: "store"), stores a new patient ("new", fresh UIDs, outside every
                  query), runs one C-FIND per level ("find": PATIENT and STUDY over every
                  patient, SERIES and IMAGE over every study), C-GETs one series ("get")
                  and C-MOVEs another to the --move-to AE ("move"). With OPERATIONs
                  named, only those.
    quit

The answer counts what happened (stores, matches per level, instances retrieved), so the
caller can check the work was really done. A parent process drives it with
`async with soak_client(host, port, ...) as load: await load.rounds(10)`. Every dataset is made in memory: a small CT
image (8x8 pixels) with real patient/study/series/instance attributes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from triopacs import connect
from triopacs.client.contexts import default_contexts, storage_contexts_for
from triopacs.log import configure_logging

OPERATIONS = frozenset({"store", "new", "find", "get", "move"})


def uid(*parts: object) -> str:
    """The same parts give the same UID, so a later round replaces what an earlier stored."""
    digest = hashlib.sha256("\0".join(map(str, parts)).encode()).digest()[:16]
    return f"2.25.{int.from_bytes(digest, 'big')}"


@dataclass(frozen=True)
class Archive:
    """patients x studies x series x images, all derived from `seed`."""

    seed: str
    patients: int
    studies: int
    series: int
    images: int

    def patient_id(self, p: int) -> str:
        return f"SOAK{p:07d}"

    def patient_name(self, p: int) -> str:
        # Patients past the archive's are new ones: outside every query's matches
        return f"SOAK^PATIENT{p}" if p < self.patients else f"NEW^PATIENT{p}"

    def study_uid(self, p: int, s: int) -> str:
        return uid(self.seed, p, s)

    def series_uid(self, p: int, s: int, n: int) -> str:
        return uid(self.seed, p, s, n)

    def study_uids(self) -> list[str]:
        return [self.study_uid(p, s) for p in range(self.patients) for s in range(self.studies)]

    def series_uids(self) -> list[str]:
        return [self.series_uid(p, s, n) for p in range(self.patients) for s in range(self.studies) for n in range(self.series)]

    def instances_of(self, p: int) -> list[Dataset]:
        return [
            self.instance(p, s, n, i) for s in range(self.studies) for n in range(self.series) for i in range(self.images)
        ]

    def instance(self, p: int, s: int, n: int, i: int) -> Dataset:
        ds = Dataset()
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = uid(self.seed, p, s, n, i)
        ds.StudyInstanceUID = self.study_uid(p, s)
        ds.SeriesInstanceUID = self.series_uid(p, s, n)
        ds.PatientID, ds.PatientName = self.patient_id(p), self.patient_name(p)
        ds.PatientBirthDate = "19700101"
        ds.PatientSex = "O"
        ds.StudyDate, ds.StudyTime = f"2024{1 + s % 12:02d}01", "120000"
        ds.StudyID, ds.AccessionNumber = str(s + 1), f"A{p}-{s}"
        ds.StudyDescription = f"SOAK STUDY {s + 1}"
        ds.Modality, ds.SeriesNumber, ds.SeriesDescription = "CT", n + 1, f"SOAK SERIES {n + 1}"
        ds.InstanceNumber = i + 1
        ds.Rows = ds.Columns = 8
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = bytes(range(128))
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        return ds


def queries(archive: Archive) -> list[tuple[str, str, Dataset]]:
    """(model, level, identifier): one query per level, each answered with many matches."""
    patient = Dataset()
    patient.PatientName, patient.PatientID, patient.PatientBirthDate = "SOAK*", "", ""
    study = Dataset()
    study.PatientName, study.PatientID, study.StudyInstanceUID, study.StudyDate = "SOAK*", "", "", ""
    study.StudyDescription, study.ModalitiesInStudy, study.NumberOfStudyRelatedInstances = "", "", ""
    series = Dataset()
    series.StudyInstanceUID = archive.study_uids()  # a UID list: every study at once
    series.SeriesInstanceUID, series.Modality, series.SeriesNumber, series.NumberOfSeriesRelatedInstances = "", "", "", ""
    image = Dataset()
    image.StudyInstanceUID = archive.study_uids()
    image.SeriesInstanceUID = archive.series_uids()
    image.SOPInstanceUID, image.SOPClassUID, image.InstanceNumber = "", "", ""
    return [("patient", "PATIENT", patient), ("study", "STUDY", study), ("study", "SERIES", series), ("study", "IMAGE", image)]


class SoakClient:
    def __init__(self, host: str, port: int, ae_title: str, move_to: str, archive: Archive) -> None:
        self.host, self.port, self.ae_title, self.move_to = host, port, ae_title, move_to
        self.archive = archive
        self.next_patient = 0
        self.next_new_patient = archive.patients
        self.contexts = [*default_contexts(), *storage_contexts_for(archive.instances_of(0)[:1])]

    def _connect(self):
        return connect(self.host, self.port, called_ae_title=self.ae_title, calling_ae_title="SOAKSCU", contexts=self.contexts)

    async def store_patient(self, association, p: int, done: Counter, counter: str = "stored") -> None:
        for dataset in self.archive.instances_of(p):
            result = await association.store(dataset)
            done[counter if result.ok else "store_failed"] += 1

    async def populate(self) -> Counter:
        done: Counter = Counter()
        async with self._connect() as association:
            for p in range(self.archive.patients):
                await self.store_patient(association, p, done)
        return done

    async def round(self, done: Counter, operations: frozenset[str] = OPERATIONS) -> None:
        a = self.archive
        p = self.next_patient
        self.next_patient = (p + 1) % a.patients
        async with self._connect() as association:
            if "store" in operations:
                await self.store_patient(association, p, done)
            if "new" in operations:
                await self.store_patient(association, self.next_new_patient, done, "stored_new")
                self.next_new_patient += 1
            if "find" in operations:
                for model, level, identifier in queries(a):
                    async for _ in association.find(identifier, level=level, model=model):
                        done[f"find_{level.lower()}"] += 1
            if "get" in operations:
                key = self.series_key(p, 0)
                async for progress in association.get(key, lambda instance: None, level="SERIES"):
                    if progress.final:
                        done["got"] += progress.completed or 0
            if "move" in operations:
                key = self.series_key(p, a.series - 1)
                async for progress in association.move(key, self.move_to, level="SERIES"):
                    if progress.final:
                        done["moved"] += progress.completed or 0

    def series_key(self, p: int, n: int) -> Dataset:
        key = Dataset()
        key.StudyInstanceUID, key.SeriesInstanceUID = self.archive.study_uid(p, 0), self.archive.series_uid(p, 0, n)
        return key


async def serve_commands(client: SoakClient) -> None:
    stdin = trio.wrap_file(sys.stdin)
    while line := (await stdin.readline()).split():
        match line:
            case ["populate"]:
                done = await client.populate()
            case ["round", count, *operations] if set(operations) <= OPERATIONS:
                done = Counter()
                for _ in range(int(count)):
                    await client.round(done, frozenset(operations) or OPERATIONS)
            case ["quit"]:
                return
            case _:
                done = Counter(error=1)
        print(json.dumps(dict(done)), flush=True)


# -- the other end: a parent process driving the load ----------------------------------


class SoakClientDied(RuntimeError):
    pass


class SoakClientProcess:
    """Sends commands to a running soak client and reads back what each one did."""

    def __init__(self, process: trio.Process, log: Path) -> None:
        self.process = process
        self.log = log
        self._buffer = b""

    async def run(self, command: str) -> Counter:
        assert self.process.stdin is not None and self.process.stdout is not None
        await self.process.stdin.send_all(command.encode() + b"\n")
        while b"\n" not in self._buffer:
            chunk = await self.process.stdout.receive_some()
            if not chunk:
                raise SoakClientDied(f"the soak client exited during {command!r}: {self.log.read_text()[-2000:]}")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        done = Counter(json.loads(line))
        if done["error"] or done["store_failed"]:
            raise SoakClientDied(f"{command!r} went wrong: {dict(done)}")
        return done

    async def rounds(self, count: int, *operations: str) -> Counter:
        return await self.run(" ".join(["round", str(count), *operations]))


@asynccontextmanager
async def soak_client(host: str, port: int, *, move_to: str, log: Path, options: Sequence[str] = ()) -> AsyncIterator[SoakClientProcess]:
    """Run this module as a process against the node at host:port until the block ends."""
    with open(log, "wb") as stderr:
        process = await trio.lowlevel.open_process(
            [sys.executable, __file__, host, str(port), "--move-to", move_to, *options],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
        )
    try:
        yield SoakClientProcess(process, log)
        assert process.stdin is not None
        await process.stdin.send_all(b"quit\n")
        with trio.move_on_after(30):
            await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--ae", default="TRIOPACS")
    parser.add_argument("--move-to", required=True)
    parser.add_argument("--seed", default="soak")
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--studies", type=int, default=2)
    parser.add_argument("--series", type=int, default=2)
    parser.add_argument("--images", type=int, default=5)
    args = parser.parse_args()
    configure_logging("warning")  # stdout carries the answers only
    archive = Archive(args.seed, args.patients, args.studies, args.series, args.images)
    trio.run(serve_commands, SoakClient(args.host, args.port, args.ae, args.move_to, archive))


if __name__ == "__main__":
    main()

"""Prior studies on real source PACS, worklist items, and a node whose prefetcher uses them.

Dates are relative to today (the lookback is counted from today), so the population is
made fresh by each test. A prefetch source must be a [[remote]] in the configuration;
the sources here start after the node (they need its port to move to it), so the node
is configured with a placeholder port and the real one is registered once known -
the prefetcher looks its sources up in the AE registry each time it uses one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import attrs
import trio
from dicom_samples import SeriesSpec, new_uid, write_series
from pydicom import Dataset

from triopacs import open_node
from triopacs.actors.node.ae_registry import RegisterAE
from triopacs.actors.node.index import FindMatches
from triopacs.config import PrefetchSourceSettings
from triopacs.storage.query import InformationModel
from triopacs.storage.worklist import item_from_dataset
from triopacs.supervisor import Node

from .nodes import LOOPBACK, node_config, remote

PLACEHOLDER_PORT = 1
TODAY = dt.date.today()


@dataclass(frozen=True)
class Prior:
    """One study on a source: its patient, modality, body part, age in days, series."""

    patient_id: str
    modality: str
    body_part: str
    days_ago: int
    series: int = 1
    images: int = 2
    study_instance_uid: str = ""

    @property
    def instances(self) -> int:
        return self.series * self.images


def write_priors(dest: Path, priors: Iterable[Prior]) -> list[Prior]:
    """The studies as Part 10 files under dest/<study UID>/; each Prior with its UID."""
    written = []
    for prior in priors:
        uid = new_uid()
        base = SeriesSpec(
            count=prior.images, modality=prior.modality, patient_id=prior.patient_id, patient_name=f"PATIENT^{prior.patient_id}",
            study_instance_uid=uid, study_date=(TODAY - dt.timedelta(days=prior.days_ago)).strftime("%Y%m%d"),
            body_part_examined=prior.body_part, accession_number=f"A{uid[-10:]}", study_description=f"{prior.modality} {prior.body_part}",
        )
        for n in range(prior.series):
            write_series(dest / uid, replace(base, series_number=n + 1, series_description=f"SERIES {n + 1}"))
        written.append(replace(prior, study_instance_uid=uid))
    return written


def worklist_item(step_id: str, patient_id: str, modality: str, body_part: str = "", hours_ahead: float = 2.0) -> Dataset:
    start = dt.datetime.now() + dt.timedelta(hours=hours_ahead)
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName, ds.PatientID = f"PATIENT^{patient_id}", patient_id
    ds.AccessionNumber = f"ACC{step_id}"
    ds.RequestedProcedureID = f"RP{step_id}"
    ds.StudyInstanceUID = new_uid()
    step = Dataset()
    step.Modality, step.ScheduledStationAETitle = modality, "CT1"
    step.ScheduledProcedureStepStartDate, step.ScheduledProcedureStepStartTime = start.strftime("%Y%m%d"), start.strftime("%H%M%S")
    step.ScheduledProcedureStepID = step_id
    if body_part:
        step.BodyPartExamined = body_part
    ds.ScheduledProcedureStepSequence = [step]
    return ds


def items(*datasets: Dataset) -> tuple:
    return tuple(item_from_dataset(ds) for ds in datasets)


def prefetch_config(data_dir: Path, sources: dict[str, str], *, ports: dict[str, int] | None = None, **settings: Any):
    """A node config with [prefetch] on and each source (AE title -> move/get) a [[remote]]
    (at its port in `ports`, else a placeholder to register later)."""
    settings.setdefault("cycle_interval", 0.0)  # no periodic cycle unless a test wants one
    settings.setdefault("retry_delay", 0.2)
    ports = ports or {}
    config = node_config(data_dir, remote=[remote(ae, ports.get(ae, PLACEHOLDER_PORT)) for ae in sources], **settings)
    section = attrs.evolve(
        config.prefetch, enabled=True, source=tuple(PrefetchSourceSettings(remote=ae, retrieve=via) for ae, via in sources.items())
    )
    return attrs.evolve(config, prefetch=section)


@asynccontextmanager
async def prefetch_node(tmp_path: Path, sources: dict[str, str], **settings: Any) -> AsyncIterator[Node]:
    async with open_node(prefetch_config(tmp_path / "node", sources, **settings)) as node:
        yield node


async def register(node: Node, ae_title: str, port: int) -> None:
    await node.aes.ask(RegisterAE(entry=remote(ae_title, port)))


async def local_instances(node: Node, study_uid: str) -> int:
    """Instances of the study in the node's index (0: none)."""
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study_uid
    query.NumberOfStudyRelatedInstances = ""
    page = await node.index.ask(FindMatches(identifier=query, model=InformationModel.STUDY_ROOT))
    return sum(int(m.NumberOfStudyRelatedInstances) for m in page.responses)


async def wait_for(events, kind: type, count: int, *, timeout: float = 120.0, seen: list | None = None) -> list:
    """The next `count` events of `kind`; every event read is also appended to `seen`."""
    found = []
    with trio.fail_after(timeout):
        while len(found) < count:
            event = await events.receive()
            if seen is not None:
                seen.append(event)
            if isinstance(event, kind):
                found.append(event)
    return found


def drain(events) -> list:
    """The events waiting in the subscription now."""
    found = []
    while True:
        try:
            found.append(events.receive_nowait())
        except trio.WouldBlock:
            return found


__all__ = ["LOOPBACK", "Prior", "drain", "items", "local_instances", "prefetch_node", "register", "wait_for", "worklist_item", "write_priors"]

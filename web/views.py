"""What the admin API answers, as attrs classes: the handlers build them, the JSON
comes from them (cattrs) and so does the OpenAPI document (openapi.py). A field's
docstring-like description sits in its metadata."""

from __future__ import annotations

import attrs


def field(description: str, **kwargs):
    return attrs.field(metadata={"description": description}, **kwargs)


@attrs.frozen(kw_only=True)
class Component:
    name: str = field("index, listener, scheduler, locks, or tier:<name>")
    status: str = field("ok or down")
    detail: str = field("why it is down, or a short summary when ok", default="")


@attrs.frozen(kw_only=True)
class Health:
    status: str = field("ok when every component is ok, else degraded")
    phase: str = field("starting, ready or stopping")
    components: tuple[Component, ...] = field("each component's own status")


@attrs.frozen(kw_only=True)
class Probe:
    status: str = field("ok, or why not")


@attrs.frozen(kw_only=True)
class Version:
    name: str = field("triopacs")
    version: str = field("the package version")
    api: str = field("the admin API version")


@attrs.frozen(kw_only=True)
class TokenView:
    token: str = field("send it as `Authorization: Bearer <token>`")
    username: str = field("whose token it is")
    expires_in: float = field("seconds it stays valid")


@attrs.frozen(kw_only=True)
class Endpoints:
    dicom: str = field("host:port of the DICOM listener")
    http: str = field("base URL of this API")
    events: str = field("WebSocket URL of the live event stream")


@attrs.frozen(kw_only=True)
class SystemStatus:
    ae_title: str = field("the node's AE title")
    phase: str = field("starting, ready or stopping")
    uptime: float = field("seconds since the HTTP service started")
    endpoints: Endpoints = field("where the node is reached")
    actors: int = field("actors running")
    associations_active: int = field("DICOM associations open now")


@attrs.frozen(kw_only=True)
class ConfigView:
    sections: dict[str, dict[str, object]] = field("the running configuration, secrets replaced by ***")


@attrs.frozen(kw_only=True)
class AssociationView:
    association_id: str = field("the association actor's name")
    peer: str = field("host:port of the peer")
    calling_ae_title: str = field("the peer's AE title")
    called_ae_title: str = field("the AE title the peer called")
    state: str = field("the PS3.8 state (Sta6: established)")
    contexts: tuple[str, ...] = field("abstract syntaxes accepted")
    bytes_received: int = field("bytes read from the peer")
    bytes_sent: int = field("bytes written to the peer")
    age: float = field("seconds since the connection was accepted")
    tls_subject: str = field("the peer certificate's subject over DICOM TLS (empty: plain TCP or no certificate)", default="")
    username: str = field("the user identity the peer proved (empty: none)", default="")


@attrs.frozen(kw_only=True)
class AssociationList:
    associations: tuple[AssociationView, ...] = field("open associations, oldest first")


@attrs.frozen(kw_only=True)
class RunView:
    execution_id: str = field("this run's id")
    task_id: str = field("the task run")
    trigger: str = field("scheduled, manual or retry")
    state: str = field("completed, failed or cancelled")
    started_at: str = field("ISO 8601")
    duration: float = field("seconds")
    error: str = field("why it failed", default="")


@attrs.frozen(kw_only=True)
class TaskView:
    id: str = field("the task's id")
    name: str = field("its name")
    kind: str = field("the registered kind it runs")
    schedule: str = field("the schedule, as text")
    state: str = field("pending, running, paused, cancelled, completed, failed or orphaned")
    enabled: bool = field("false: it keeps its schedule but does not run on it")
    next_run_at: str | None = field("ISO 8601, or null")
    last_run: RunView | None = field("its last run, or null")
    runs: int = field("runs so far")
    failures: int = field("failed runs so far")


@attrs.frozen(kw_only=True)
class TaskList:
    tasks: tuple[TaskView, ...] = field("every scheduled task")


@attrs.frozen(kw_only=True)
class TaskHistory:
    runs: tuple[RunView, ...] = field("runs of the task, newest first")


@attrs.frozen(kw_only=True)
class LockView:
    study_uid: str = field("the locked study")
    type: str = field("exclusive, shared or migration")
    holder: str = field("who holds it")
    reason: str = field("why")
    held_for: float = field("seconds held so far")
    expires_at: str | None = field("ISO 8601, or null: until released")


@attrs.frozen(kw_only=True)
class LockList:
    locks: tuple[LockView, ...] = field("every lock held now")
    waiting: int = field("lock requests waiting")
    contentions: int = field("requests that found their study locked, since start")


@attrs.frozen(kw_only=True)
class StudySummaryView:
    study_instance_uid: str = field("the study")
    patient_id: str = field("its patient")
    study_date: str = field("DA, may be empty")
    study_description: str = field("may be empty")
    modalities: tuple[str, ...] = field("modalities of its series")
    instances: int = field("instances indexed")
    bytes: int = field("their size")
    last_stored_at: float = field("epoch seconds of its newest instance")


@attrs.frozen(kw_only=True)
class StudyList:
    studies: tuple[StudySummaryView, ...] = field("one page, oldest stored first")
    next: str | None = field("cursor of the next page (pass as ?after=), or null at the end")


@attrs.frozen(kw_only=True)
class StudyDetail:
    study_instance_uid: str = field("the study")
    patient_id: str = field("its patient")
    patient_name: str = field("PN, may be empty")
    study_date: str = field("DA, may be empty")
    study_description: str = field("may be empty")
    accession_number: str = field("may be empty")
    modalities: tuple[str, ...] = field("modalities of its series")
    series: int = field("series indexed")
    instances: int = field("instances indexed")
    bytes: int = field("their size")
    tiers: dict[str, int] = field("instances per storage tier")
    first_stored_at: float = field("epoch seconds")
    last_stored_at: float = field("epoch seconds")


@attrs.frozen(kw_only=True)
class StudyRemoved:
    study_instance_uid: str = field("the study deleted")
    files_removed: int = field("files removed")
    files_failed: int = field("files whose removal failed (retried at the next start)")


@attrs.frozen(kw_only=True)
class TierView:
    name: str = field("the tier")
    kind: str = field("local, s3 or azure")
    healthy: bool = field("false while it fails")
    problem: str = field("why it fails")
    puts: int = field("objects written")
    bytes_in: int = field("bytes written")


@attrs.frozen(kw_only=True)
class Statistics:
    patients: int = field("patients indexed")
    studies: int = field("studies indexed")
    series: int = field("series indexed")
    instances: int = field("instances indexed")
    bytes: int = field("bytes indexed")
    instances_stored: int = field("C-STOREs accepted since start")
    bytes_stored: int = field("their bytes")
    queries: int = field("C-FINDs answered since start")
    retrieves: int = field("C-MOVEs and C-GETs finished since start")
    associations: int = field("associations accepted since start")
    associations_rejected: int = field("associations rejected since start")
    associations_aborted: int = field("associations aborted since start")
    tiers: tuple[TierView, ...] = field("each storage tier")


@attrs.frozen(kw_only=True)
class Problem:
    """RFC 9457 problem details."""

    type: str = field("a URI naming the kind of problem")
    title: str = field("what went wrong, in short")
    status: int = field("the HTTP status")
    detail: str = field("this occurrence, in words", default="")

"""The node's Prometheus metrics: the seed's DICOM names, fed by activity events, and
the runtime's own (mailboxes, restarts, scheduler runs, locks, tiers), read when a
scrape asks. A private registry per node: two nodes in one process never mix."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ..actors import ActorRestarted, MailboxStatistics, message
from ..actors.node.activity import (
    AssociationClosed,
    AssociationOpened,
    AssociationRejected,
    InstanceStored,
    QueryAnswered,
    RetrieveFinished,
    StoreRefusedEvent,
)
from ..actors.node.tiers.messages import TierStatistics
from ..protocol.catalog import name_of
from ..workflow.locks.types import LockManagerStats
from ..workflow.tasks.messages import TaskExecuted

# Short operations: stores and queries on loopback take milliseconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# One association actor per association: their paths are folded into one series.
_ASSOCIATION = re.compile(r"^(/node/associations)/a\d+$")


def actor_label(path: str) -> str:
    return _ASSOCIATION.sub(r"\1/*", path)


@message("web.activity")
class Activity:
    """The DICOM activity counted since start (for /api/v1/statistics and the page)."""

    instances_stored: int
    bytes_stored: int
    queries: int
    retrieves: int
    associations: int
    associations_rejected: int
    associations_aborted: int
    associations_active: int


class NodeMetrics:
    def __init__(self, ae_title: str) -> None:
        self.ae_title = ae_title
        self.registry = registry = CollectorRegistry()
        self.associations_active = Gauge("pacs_associations_active", "DICOM associations open now", ["ae_title"], registry=registry)
        self.associations_total = Counter("pacs_associations", "DICOM associations accepted", ["ae_title"], registry=registry)
        self.rejects = Counter("pacs_associations_rejected", "DICOM associations rejected", ["ae_title"], registry=registry)
        self.aborts = Counter("pacs_associations_aborted", "DICOM associations that ended in an abort", ["ae_title"], registry=registry)
        self.images_stored = Counter("pacs_images_stored", "Instances stored (C-STORE success)", ["sop_class"], registry=registry)
        self.storage_bytes = Counter("pacs_storage_bytes", "Bytes of the instances stored", ["sop_class"], registry=registry)
        self.storage_latency = Histogram(
            "pacs_storage_latency_seconds", "From a C-STORE's dataset received to its answer", buckets=LATENCY_BUCKETS, registry=registry
        )
        self.stores_refused = Counter("pacs_stores_refused", "C-STOREs answered with a failure status", ["status"], registry=registry)
        self.queries = Counter("pacs_queries", "C-FINDs answered", ["level"], registry=registry)
        self.query_latency = Histogram(
            "pacs_query_latency_seconds", "From a C-FIND's arrival to its final answer", buckets=LATENCY_BUCKETS, registry=registry
        )
        self.retrieves = Counter("pacs_retrieves", "C-MOVEs and C-GETs finished", ["kind"], registry=registry)
        self.retrieved = Counter("pacs_retrieved_instances", "Instances sent by C-MOVE/C-GET sub-operations", ["kind", "outcome"], registry=registry)
        self.retrieve_latency = Histogram(
            "pacs_retrieve_latency_seconds", "From a C-MOVE/C-GET's arrival to its final answer", buckets=LATENCY_BUCKETS, registry=registry
        )
        self.scheduler_runs = Counter("pacs_scheduler_runs", "Scheduled task runs finished", ["outcome"], registry=registry)
        self.actor_restarts = Counter("pacs_actor_restarts", "Actor restarts by their supervisor", ["actor"], registry=registry)
        self.mailbox_depth = Gauge("pacs_actor_mailbox_depth", "Messages waiting in an actor's mailbox", ["actor"], registry=registry)
        self.mailbox_capacity = Gauge("pacs_actor_mailbox_capacity", "An actor's mailbox size", ["actor"], registry=registry)
        self.lock_contentions = Gauge("pacs_lock_contentions", "Lock requests that found their study locked, since start", registry=registry)
        self.lock_waiting = Gauge("pacs_lock_waiting", "Lock requests waiting now", registry=registry)
        self.locks_active = Gauge("pacs_locks_active", "Study locks held now", registry=registry)
        self.lock_timeouts = Gauge("pacs_lock_timeouts", "Lock requests that gave up waiting, since start", registry=registry)
        self.tier_healthy = Gauge("pacs_tier_healthy", "1 while a storage tier works, 0 while it fails", ["tier"], registry=registry)
        self.tier_bytes = Gauge("pacs_tier_bytes_written", "Bytes written to a storage tier since start", ["tier"], registry=registry)
        self.events_dropped = Gauge("pacs_metrics_events_dropped", "Events the metrics missed (it fell behind)", registry=registry)
        # Counted here too, for the JSON statistics (a Counter's value is not public API).
        self._activity = dict(instances_stored=0, bytes_stored=0, queries=0, retrieves=0, associations=0,
                              associations_rejected=0, associations_aborted=0)
        self._open: set[str] = set()
        for series in (self.associations_total, self.rejects, self.aborts):
            series.labels(ae_title)  # shown as 0 before the first one
        self.associations_active.labels(ae_title).set(0)

    def observe(self, event: object) -> None:
        counts = self._activity
        match event:
            case InstanceStored(sop_class_uid=sop_class, bytes=size, seconds=seconds):
                label = name_of(sop_class)
                self.images_stored.labels(label).inc()
                self.storage_bytes.labels(label).inc(size)
                self.storage_latency.observe(seconds)
                counts["instances_stored"] += 1
                counts["bytes_stored"] += size
            case StoreRefusedEvent(status=status):
                self.stores_refused.labels(f"{status:04X}").inc()
            case QueryAnswered(level=level, seconds=seconds):
                self.queries.labels(level).inc()
                self.query_latency.observe(seconds)
                counts["queries"] += 1
            case RetrieveFinished(kind=kind, completed=completed, failed=failed, seconds=seconds):
                self.retrieves.labels(kind).inc()
                self.retrieved.labels(kind, "completed").inc(completed)
                self.retrieved.labels(kind, "failed").inc(failed)
                self.retrieve_latency.observe(seconds)
                counts["retrieves"] += 1
            case AssociationOpened(association_id=association_id):
                self._open.add(association_id)
                self.associations_total.labels(self.ae_title).inc()
                self.associations_active.labels(self.ae_title).set(len(self._open))
                counts["associations"] += 1
            case AssociationClosed(association_id=association_id, outcome=outcome):
                self._open.discard(association_id)
                self.associations_active.labels(self.ae_title).set(len(self._open))
                if outcome == "aborted":
                    self.aborts.labels(self.ae_title).inc()
                    counts["associations_aborted"] += 1
            case AssociationRejected():
                self.rejects.labels(self.ae_title).inc()
                counts["associations_rejected"] += 1
            case TaskExecuted(record=record):
                self.scheduler_runs.labels("timed_out" if record.timed_out else record.state.value).inc()
            case ActorRestarted(path=path):
                self.actor_restarts.labels(actor_label(path)).inc()

    def open_associations(self) -> tuple[str, ...]:
        return tuple(sorted(self._open))

    def activity(self) -> Activity:
        return Activity(**self._activity, associations_active=len(self._open))

    def set_runtime(
        self,
        mailboxes: list[MailboxStatistics],
        locks: LockManagerStats | None,
        tiers: list[TierStatistics],
        dropped: int,
    ) -> None:
        """The gauges read at scrape time."""
        depth: dict[str, int] = {}
        capacity: dict[str, int] = {}
        for stats in mailboxes:
            label = actor_label(stats.path)
            depth[label] = depth.get(label, 0) + stats.depth
            capacity[label] = capacity.get(label, 0) + stats.capacity
        self.mailbox_depth.clear()
        self.mailbox_capacity.clear()
        for label, value in depth.items():
            self.mailbox_depth.labels(label).set(value)
            self.mailbox_capacity.labels(label).set(capacity[label])
        if locks is not None:
            self.lock_contentions.set(locks.contention_count)
            self.lock_waiting.set(locks.waiting_requests)
            self.locks_active.set(locks.active_locks)
            self.lock_timeouts.set(locks.timeout_count)
        for tier in tiers:
            self.tier_healthy.labels(tier.name).set(1 if tier.healthy else 0)
            self.tier_bytes.labels(tier.name).set(tier.bytes_in)
        self.events_dropped.set(dropped)

    def render(self) -> bytes:
        return generate_latest(self.registry)

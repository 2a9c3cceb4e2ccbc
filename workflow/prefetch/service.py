"""The prefetcher: /node/services/prefetch fetches a patient's prior studies from remote
PACS before the patient arrives (seed DES-WKF-001/002; docs/workflow.md).

What queues a patient - each through the mailbox: a Modality Worklist query the node
answered (`WorklistQueried`, every patient in it), a worklist item added or replaced
(`WorklistChanged`), the periodic cycle (`RunPrefetchCycle`: the items scheduled in the
next `lookahead_hours`), and `PrefetchPriors` (`triopacs prefetch PATIENT_ID`).

A patient's job queries every source (C-FIND, remote.py), chooses (criteria.py), skips
what the index holds complete (local.py) and queues one job per study left; a study's
job retrieves it (C-MOVE to our AE, or C-GET) and checks the index holds it. Jobs run in
the actor's nursery, at most `max_concurrent_prefetches` at once, each association to a
source after a token of its rate limit (rate.py), and report back with `QueryDone` /
`StudyDone`. A failure that may pass is tried again after `retry_delay`, up to
`max_retry_attempts` times; others end the job. A patient already queued or under way
is not queued again.

Every change of the queue is written to `<data>/prefetch.sqlite` (persistence.py) before
it is acted on: a restart - of the actor after a crash, or of the node - loads the queue
and goes on. A study retrieved but not yet recorded is found complete in the index when
its job runs again, and is not retrieved twice.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import time
import uuid
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import attrs
import trio

from ...actors import Actor, ActorError, ActorStarted, AskTimeout, DatabaseThread, ReplyError
from ...actors.node.ae_registry import LookupAE, RemoteAE, UnknownAE
from ...actors.node.dimse_n_events import WorklistChanged, WorklistQueried
from ...actors.node.index_dimse_n import ListScheduledWorklist
from ...actors.node.listener import GetAddress
from .criteria import PrefetchCriteria, ScheduledStep, select_priors
from .jobs import PatientJob, PrefetchStats, StudyJob
from .local import complete, held, held_bytes
from .messages import (
    GetPrefetchStatus,
    JobsDue,
    PatientPrefetched,
    PrefetchCycleFinished,
    PrefetchCycleStarted,
    PrefetchPriors,
    PrefetchQueryFailed,
    PrefetchQueued,
    PrefetchRequestSent,
    PrefetchStatus,
    PrefetchStudyDone,
    PrefetchStudyFailed,
    QueryDone,
    RunPrefetchCycle,
    StudyDone,
    WorklistScanned,
)
from .persistence import CycleRecord, load_queue, open_prefetch_db, record_cycle, save_patients, settle_query, settle_study
from .rate import TokenBucket, take_token
from .remote import RemoteSettings, SourceFailure, find_priors, get_study, move_study
from .steps import step_from_item, unique_steps

PREFETCH_PATH = "/node/services/prefetch"
INDEX_PATH = "/node/services/index"
AES_PATH = "/node/services/aes"
LISTENER_PATH = "/node/associations/listener"
LOOKAHEAD_ITEMS = 1000  # worklist items one periodic cycle looks at, soonest first

INDEX_ERRORS = (ActorError, ReplyError, AskTimeout)
DUE_SLACK = 0.005
REPEATING_TRIGGERS = ("worklist-query", "schedule")
DONE_REMEMBERED = 10_000  # patients whose end time is kept before the old ones are dropped  # the timer wakes on Trio's clock, due times are on the wall clock


@attrs.frozen(kw_only=True)
class PrefetchSource:
    remote: str  # the AE title of a [[remote]]
    retrieve: str = "move"  # move: C-MOVE to our AE; get: C-GET


@attrs.frozen(kw_only=True)
class PrefetchPolicy:
    sources: tuple[PrefetchSource, ...]
    criteria: PrefetchCriteria = PrefetchCriteria()
    remote: RemoteSettings
    cycle_interval: float = 300.0  # seconds; 0: no periodic cycle
    lookahead_hours: float = 24.0
    max_concurrent_prefetches: int = 4
    rate_limit_per_minute: float = 0.0  # per source; 0: none
    max_retry_attempts: int = 3
    retry_delay: float = 60.0
    on_worklist_query: bool = True
    on_worklist_change: bool = True
    requeue_after: float = 3600.0  # seconds a patient done is not queued again by a worklist query or cycle


@attrs.define
class _Cycle:
    trigger: str
    started_at: float
    patients: set[str]
    stats: PrefetchStats = PrefetchStats()


class PrefetchService(Actor):
    accepts = (
        PrefetchPriors, RunPrefetchCycle, GetPrefetchStatus, QueryDone, StudyDone, JobsDue, WorklistScanned, WorklistQueried,
        WorklistChanged,
    )
    replayable = False  # it talks to remote PACS

    def __init__(self, policy: PrefetchPolicy, database: str, staging: str) -> None:
        """`database`: the prefetcher's SQLite file; `staging`: where C-GET puts files
        before storing them to the node."""
        self.policy = policy
        self.database = database
        self.staging = Path(staging)

    # -- life --------------------------------------------------------------------------------

    async def on_start(self) -> None:
        self._db = DatabaseThread(partial(open_prefetch_db, self.database), name="prefetch-db")
        await self._db.start()
        saved = await self._db.run(load_queue)
        self._patients: dict[str, PatientJob] = {job.patient_id: job for job in saved.patients}
        self._studies: dict[str, StudyJob] = {job.study_instance_uid: job for job in saved.studies}
        self._running: set[str] = set()  # "patient:<id>", "study:<uid>"
        self._waiting: dict[str, list] = {}  # patient id -> replies of PrefetchPriors(wait=True)
        self._patient_stats: dict[str, PrefetchStats] = {}
        self._done_at: dict[str, float] = {}  # patient id -> when its last run ended (this incarnation)
        self._totals, self._cycles_done, self._last_cycle = saved.totals, saved.cycles, saved.last_cycle
        self._cycles: dict[str, _Cycle] = {}
        for job in [*saved.patients, *saved.studies]:  # what a restart interrupted goes on as a cycle of its own
            cycle = self._cycles.setdefault(job.cycle, _Cycle(trigger="resumed", started_at=time.time(), patients=set()))
            cycle.patients.add(job.patient_id)
        self._scans: dict[str, object] = {}  # RunPrefetchCycle asks answered once its scan is queued
        now = trio.current_time()
        self._buckets = {s.remote: TokenBucket(self.policy.rate_limit_per_minute, now=now) for s in self.policy.sources}
        interval = self.policy.cycle_interval
        self._next_cycle_at = now + interval if interval > 0 else None
        self._rearm = trio.Event()
        self._exit_stack = ExitStack()
        wanted = [t for t, on in ((WorklistQueried, self.policy.on_worklist_query), (WorklistChanged, self.policy.on_worklist_change)) if on]
        if wanted:
            events = self._exit_stack.enter_context(self.ctx.system.bus.subscribe(*wanted, capacity=1024))
            self.ctx.nursery.start_soon(self._forward, events)
        self.ctx.nursery.start_soon(self._timer)
        if self._patients or self._studies:
            self.ctx.log.info("resuming the prefetch queue", patients=len(self._patients), studies=len(self._studies))
        # Nothing goes before the node listens: a source would find no one to move to.
        self._listening = False
        self.ctx.nursery.start_soon(self._wait_for_listener)

    async def on_stop(self) -> None:
        self._exit_stack.close()
        await self._db.aclose()

    async def _wait_for_listener(self) -> None:
        with self.ctx.system.bus.subscribe(ActorStarted) as started:
            try:
                self.ctx.lookup(LISTENER_PATH)
            except ActorError:  # the associations start after the services
                async for event in started:
                    if event.path == LISTENER_PATH:
                        break
        await self.ctx.ref.send(JobsDue(listening=True))

    async def _forward(self, events) -> None:
        """Events to the mailbox: they are handled one at a time, like any message."""
        async for event in events:
            await self.ctx.ref.send(event)

    # -- messages ----------------------------------------------------------------------------

    async def handle(self, message):
        match message:
            case PrefetchPriors(patient_id=patient_id):
                return await self._asked(message)
            case WorklistQueried(items=items):
                await self._enqueue(unique_steps(step_from_item(m.attributes) for m in items), "worklist-query")
            case WorklistChanged(items=items):
                await self._enqueue(unique_steps(step_from_item(i.attributes) for i in items), "worklist-change")
            case RunPrefetchCycle():
                self.ctx.nursery.start_soon(self._scan_worklist, self.ctx.defer_reply())
            case WorklistScanned(token=token, items=items):
                cycle_id, queued = await self._enqueue(unique_steps(step_from_item(i.attributes) for i in items), "schedule")
                reply = self._scans.pop(token, None)
                if reply is not None:
                    reply.send(PrefetchCycleStarted(cycle_id=cycle_id, patients=queued))
            case QueryDone():
                await self._query_done(message)
            case StudyDone():
                await self._study_done(message)
            case JobsDue(cycle=cycle, listening=listening):
                self._listening = self._listening or listening
                if cycle:
                    self._next_cycle_at = trio.current_time() + self.policy.cycle_interval
                    self.ctx.nursery.start_soon(self._scan_worklist, None)
            case GetPrefetchStatus():
                return self._status()
        self._dispatch()
        return None

    async def _asked(self, message: PrefetchPriors):
        step = ScheduledStep(
            patient_id=message.patient_id.strip(), modality=message.modality.upper(), body_part=message.body_part.upper(),
            lookback_days=message.lookback_days,
        )
        if not step.patient_id:
            raise ReplyError("a patient ID is needed")
        cycle_id, queued = await self._enqueue([step], "request")
        self._dispatch()
        if message.wait:
            self._waiting.setdefault(step.patient_id, []).append(self.ctx.defer_reply())
            return None
        return PrefetchQueued(patient_id=step.patient_id, queued=bool(queued), cycle_id=cycle_id)

    async def _scan_worklist(self, reply) -> None:
        """The periodic cycle: the patients of the items scheduled in the next lookahead_hours."""
        now = time.time()
        try:
            found = await self.ctx.lookup(INDEX_PATH).ask(
                ListScheduledWorklist(start=now, end=now + self.policy.lookahead_hours * 3600, limit=LOOKAHEAD_ITEMS)
            )
        except INDEX_ERRORS as error:
            self.ctx.log.error("prefetch cycle: the worklist could not be read", error=str(error))
            if reply is not None:
                reply.fail(ReplyError(f"the worklist could not be read: {error}"))
            return
        token = uuid.uuid4().hex
        if reply is not None:
            self._scans[token] = reply
        await self.ctx.ref.send(WorklistScanned(token=token, items=found.items))

    # -- the queue ---------------------------------------------------------------------------

    def _under_way(self, patient_id: str) -> bool:
        return patient_id in self._patients or any(job.patient_id == patient_id for job in self._studies.values())

    def _wanted(self, patient_id: str, trigger: str, now: float) -> bool:
        """Not queued or under way; and for the triggers that repeat by themselves (a
        modality polling the worklist, the periodic cycle) not done in the last
        `requeue_after` seconds either - asking the sources again so soon finds nothing new."""
        if self._under_way(patient_id):
            return False
        if trigger in REPEATING_TRIGGERS:
            return now - self._done_at.get(patient_id, -math.inf) >= self.policy.requeue_after
        return True

    async def _enqueue(self, steps: list[ScheduledStep], trigger: str) -> tuple[str, int]:
        """Queue the patients wanted, as one cycle; (cycle id, how many)."""
        now = time.time()
        cycle_id = f"{trigger}-{uuid.uuid4().hex[:12]}"
        sources = tuple(s.remote for s in self.policy.sources)
        jobs = [
            PatientJob(step=step, sources=sources, cycle=cycle_id, queued_at=now, next_attempt_at=now)
            for step in steps if self._wanted(step.patient_id, trigger, now)
        ]
        if not jobs:
            return "", 0
        await self._db.run(save_patients, jobs)
        for job in jobs:
            self._patients[job.patient_id] = job
        self._cycles[cycle_id] = _Cycle(trigger=trigger, started_at=now, patients={job.patient_id for job in jobs})
        self.ctx.log.info("prefetch queued", trigger=trigger, patients=len(jobs), cycle=cycle_id)
        return cycle_id, len(jobs)

    def _dispatch(self) -> None:
        """Start the jobs that are due, up to max_concurrent_prefetches; wake up for the next."""
        if not self._listening:
            return
        now = time.time() + DUE_SLACK
        free = self.policy.max_concurrent_prefetches - len(self._running)
        due = sorted(
            itertools.chain(
                ((job.next_attempt_at, 0, job.queued_at, f"study:{uid}") for uid, job in self._studies.items()),
                ((job.next_attempt_at, 1, job.queued_at, f"patient:{pid}") for pid, job in self._patients.items()),
            )
        )
        for at, _, _, key in due:
            if free <= 0 or at > now:
                break
            if key in self._running:
                continue
            self._running.add(key)
            free -= 1
            kind, _, name = key.partition(":")
            if kind == "study":
                self.ctx.nursery.start_soon(self._retrieve, self._studies[name])
            else:
                self.ctx.nursery.start_soon(self._query, self._patients[name])
        self._rearm.set()

    def _next_due(self) -> float:
        """The Trio time to look at the queue again: when the next retry falls due, or the
        next cycle. Jobs due already wait for a running one to end (that dispatches too),
        and nothing is due before the node listens."""
        now = time.time() + DUE_SLACK
        jobs = itertools.chain(self._studies.values(), self._patients.values())
        waiting = [job.next_attempt_at for job in jobs if job.next_attempt_at > now] if self._listening else []
        deadline = trio.current_time() + (min(waiting) - time.time()) if waiting else float("inf")
        if self._next_cycle_at is not None:
            deadline = min(deadline, self._next_cycle_at)
        return deadline

    async def _timer(self) -> None:
        while True:
            self._rearm = trio.Event()
            deadline = self._next_due()
            with trio.move_on_at(deadline) as scope:
                await self._rearm.wait()
            if scope.cancelled_caught:
                cycle = self._next_cycle_at is not None and trio.current_time() >= self._next_cycle_at
                if cycle:
                    self._next_cycle_at = None  # until the JobsDue sets the next one
                await self.ctx.ref.send(JobsDue(cycle=cycle))
                await self._rearm.wait()  # until the message has been handled

    # -- a patient's query -------------------------------------------------------------------

    async def _source(self, name: str) -> RemoteAE:
        return await self.ctx.lookup(AES_PATH).ask(LookupAE(ae_title=name))

    async def _token(self, source: str, purpose: str, subject: str) -> None:
        await take_token(self._buckets[source])
        self.ctx.record_effect("prefetch-request", {"source": source, "purpose": purpose, "subject": subject})
        self.ctx.publish(PrefetchRequestSent(source=source, purpose=purpose, subject=subject, at=trio.current_time()))

    async def _query(self, job: PatientJob) -> None:
        left = max(0, self.policy.criteria.max_studies_per_patient - job.chosen)  # chosen before a retry count
        criteria = attrs.evolve(self.policy.criteria, max_studies_per_patient=left)
        today = dt.date.today()
        found, answered, failures = [], [], []
        origin: dict[str, str] = {}
        for name in job.sources:
            try:
                source = await self._source(name)
                await self._token(name, "find", job.patient_id)
                studies = await find_priors(source, self.policy.remote, job.step, criteria, today)
            except SourceFailure as failure:
                failures.append((name, str(failure), failure.transient))
                continue
            except INDEX_ERRORS as error:  # not in the AE registry (permanent), or it is restarting
                failures.append((name, f"{name}: {error}", not isinstance(error, UnknownAE)))
                continue
            except Exception as error:  # a bug: this source fails for this patient, the queue goes on
                self.ctx.log.exception("prefetch query failed unexpectedly", patient_id=job.patient_id, source=name)
                failures.append((name, f"{name}: {type(error).__name__}: {error}", False))
                continue
            answered.append(name)
            for study in studies:
                origin.setdefault(study.study_instance_uid, name)
            found.extend(studies)
        chosen, present = [], 0
        try:
            for study in select_priors(found, job.step, criteria, today):
                if complete(study, await held(self.ctx.lookup, study)):
                    present += 1
                else:
                    chosen.append((origin[study.study.study_instance_uid], study))
        except INDEX_ERRORS as error:  # ask the sources again later
            chosen, present = [], 0
            failures += [(name, f"the index could not be read: {error}", True) for name in answered]
            answered = []
        await self.ctx.ref.send(
            QueryDone(patient_id=job.patient_id, chosen=tuple(chosen), present=present, answered=tuple(answered), failures=tuple(failures))
        )

    def _retry(self, attempts: int, transient: bool) -> bool:
        return transient and attempts <= self.policy.max_retry_attempts

    async def _query_done(self, done: QueryDone) -> None:
        pid = done.patient_id
        self._running.discard(f"patient:{pid}")
        job = self._patients.get(pid)
        if job is None:
            return
        now = time.time()
        attempts = job.attempts + 1 if done.failures else job.attempts
        again = tuple(source for source, _, transient in done.failures if self._retry(attempts, transient))
        given_up = len(done.failures) - len(again)
        studies = [
            StudyJob(chosen=chosen, patient_id=pid, source=source, cycle=job.cycle, queued_at=now, next_attempt_at=now)
            for source, chosen in done.chosen if chosen.study.study_instance_uid not in self._studies
        ]
        rest = None
        if again:
            rest = attrs.evolve(
                job, sources=again, attempts=attempts, chosen=job.chosen + len(done.chosen) + done.present,
                next_attempt_at=now + self.policy.retry_delay, last_error=done.failures[0][1],
            )
        stats = PrefetchStats(studies_already_present=done.present, queries_failed=given_up)
        finished = rest is None and not studies and not any(s.patient_id == pid for s in self._studies.values())
        if finished:
            stats += PrefetchStats(patients_processed=1)
        await self._db.run(settle_query, pid, rest, studies, stats)
        if rest is None:
            del self._patients[pid]
        else:
            self._patients[pid] = rest
        for study in studies:
            self._studies[study.study_instance_uid] = study
        for source, error, transient in done.failures:
            final = source not in again
            (self.ctx.log.error if final else self.ctx.log.warning)("prefetch query failed", patient_id=pid, error=error, final=final)
            self.ctx.publish(PrefetchQueryFailed(patient_id=pid, source=source, error=error, attempts=attempts, final=final))
        await self._count(pid, stats, finished)

    # -- a study's retrieval -----------------------------------------------------------------

    async def _retrieve(self, job: StudyJob) -> None:
        chosen, uid = job.chosen, job.study_instance_uid
        try:
            have = await held(self.ctx.lookup, chosen)
            if complete(chosen, have):  # here already (another source, or retrieved before a restart)
                await self.ctx.ref.send(StudyDone(study_instance_uid=uid, present=True, series=have.series, instances=have.instances))
                return
            try:
                source = await self._source(job.source)
            except UnknownAE as error:  # not configured: no retry will change that
                raise SourceFailure(f"{job.source}: {error}", transient=False) from None
            via = self._via(job.source)
            await self._token(job.source, via, uid)
            if via == "get":
                address = await self.ctx.lookup(LISTENER_PATH).ask(GetAddress())
                node = RemoteAE(ae_title=self.policy.remote.calling_ae_title, host=_reachable(address.host), port=address.port)
                got = await get_study(source, self.policy.remote, chosen, self.staging, node)
            else:
                got = await move_study(source, self.policy.remote, chosen, self.policy.remote.calling_ae_title)
            have = await held(self.ctx.lookup, chosen)
            if not complete(chosen, have):
                expected = chosen.expected_instances
                raise SourceFailure(
                    f"{job.source}: {have.instances} of {expected if expected is not None else 'some'} instances arrived"
                    f" ({got.completed} sent, {got.failed} failed)", transient=True,
                )
            size = await held_bytes(self.ctx.lookup, chosen)
            done = StudyDone(study_instance_uid=uid, series=have.series, instances=got.completed or have.instances, bytes=size)
        except SourceFailure as failure:
            done = StudyDone(study_instance_uid=uid, error=str(failure), transient=failure.transient)
        except INDEX_ERRORS as error:
            done = StudyDone(study_instance_uid=uid, error=f"{job.source}: {error}", transient=True)
        except Exception as error:  # a bug, a staging folder we cannot write: this study fails, the queue goes on
            self.ctx.log.exception("prefetch retrieval failed unexpectedly", study_instance_uid=uid)
            done = StudyDone(study_instance_uid=uid, error=f"{job.source}: {type(error).__name__}: {error}")
        await self.ctx.ref.send(done)

    def _via(self, source: str) -> str:
        return next(s.retrieve for s in self.policy.sources if s.remote == source)

    async def _study_done(self, done: StudyDone) -> None:
        uid = done.study_instance_uid
        self._running.discard(f"study:{uid}")
        job = self._studies.get(uid)
        if job is None:
            return
        rest = None
        if done.error:
            attempts = job.attempts + 1
            final = not self._retry(attempts, done.transient)
            stats = PrefetchStats(studies_failed=1) if final else PrefetchStats()
            if not final:
                rest = attrs.evolve(job, attempts=attempts, last_error=done.error, next_attempt_at=time.time() + self.policy.retry_delay)
        elif done.present:
            stats = PrefetchStats(studies_already_present=1)
        else:
            stats = PrefetchStats(
                studies_prefetched=1, series_prefetched=done.series, instances_prefetched=done.instances, bytes_downloaded=done.bytes,
            )
        pid = job.patient_id
        finished = rest is None and pid not in self._patients and not any(
            s.patient_id == pid for u, s in self._studies.items() if u != uid
        )
        if finished:
            stats += PrefetchStats(patients_processed=1)
        await self._db.run(settle_study, uid, rest, stats)
        if rest is None:
            del self._studies[uid]
        else:
            self._studies[uid] = rest
        if done.error:
            final = rest is None
            log = self.ctx.log.error if final else self.ctx.log.warning
            log("prefetch retrieval failed", study_instance_uid=uid, error=done.error, final=final)
            self.ctx.publish(PrefetchStudyFailed(
                patient_id=pid, study_instance_uid=uid, source=job.source, error=done.error, attempts=job.attempts + 1, final=final,
            ))
        else:
            what = "prior study present" if done.present else "prior study prefetched"
            self.ctx.log.info(what, study_instance_uid=uid, instances=done.instances)
            self.ctx.publish(PrefetchStudyDone(
                patient_id=pid, study_instance_uid=uid, source=job.source, series=done.series, instances=done.instances,
                bytes=done.bytes, present=done.present,
            ))
        await self._count(pid, stats, finished)

    # -- statistics --------------------------------------------------------------------------

    async def _count(self, patient_id: str, stats: PrefetchStats, finished: bool) -> None:
        self._totals += stats
        self._patient_stats[patient_id] = self._patient_stats.get(patient_id, PrefetchStats()) + stats
        if not finished:
            return
        result = self._patient_stats.pop(patient_id)
        now = time.time()
        if len(self._done_at) >= DONE_REMEMBERED:  # only those within requeue_after matter
            self._done_at = {p: at for p, at in self._done_at.items() if now - at < self.policy.requeue_after}
        self._done_at[patient_id] = now
        for cycle_id, cycle in list(self._cycles.items()):
            if patient_id in cycle.patients:
                cycle.patients.discard(patient_id)
                cycle.stats += result
                if not cycle.patients:  # recorded before anyone waiting hears of the patient
                    await self._finish_cycle(cycle_id, self._cycles.pop(cycle_id))
        for reply in self._waiting.pop(patient_id, []):
            reply.send(PatientPrefetched(patient_id=patient_id, stats=result))
        self.ctx.publish(PatientPrefetched(patient_id=patient_id, stats=result))

    async def _finish_cycle(self, cycle_id: str, cycle: _Cycle) -> None:
        finished = time.time()
        record = CycleRecord(
            cycle_id=cycle_id, trigger=cycle.trigger, started_at=cycle.started_at, finished_at=finished,
            stats=attrs.evolve(cycle.stats, duration=finished - cycle.started_at),
        )
        await self._db.run(record_cycle, record)
        self._totals += PrefetchStats(duration=record.stats.duration)
        self._cycles_done += 1
        self._last_cycle = record
        self.ctx.log.info("prefetch cycle finished", cycle=cycle_id, trigger=cycle.trigger, summary=record.stats.summary())
        self.ctx.publish(PrefetchCycleFinished(record=record))

    def _status(self) -> PrefetchStatus:
        return PrefetchStatus(
            queued_patients=tuple(sorted(self._patients)),
            queued_studies=len(self._studies),
            running=len(self._running),
            cumulative=self._totals,
            cycles_completed=self._cycles_done,
            last_cycle=self._last_cycle,
            next_cycle_in=None if self._next_cycle_at is None else max(0.0, self._next_cycle_at - trio.current_time()),
        )


def _reachable(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host

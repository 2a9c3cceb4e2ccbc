"""The node: its supervision tree, and the two ways to run it.

    /node                              root (one-for-one)
    ├── /node/web                      the operating face (triopacs.web), unless [http] is off (one-for-one)
    │   ├── /node/web/metrics          counts the node's events; renders /metrics
    │   ├── /node/web/events           the live event stream (WebSocket)
    │   └── /node/web/http             admin API, probes, /metrics, status page
    ├── /node/services                 the services the associations use (one-for-one)
    │   ├── /node/services/aes         remote AE registry
    │   ├── /node/services/commitment  storage commitment: checks referenced instances, sends the reports
    │   ├── /node/services/index       the SQLite index of what is stored
    │   ├── /node/services/locks       study locks
    │   ├── /node/services/tiers       storage tiers (one-for-one): local (the data directory) and each [[tier]]
    │   ├── /node/services/migration   HSM: moves instances between tiers by last access
    │   ├── /node/services/prefetch    fetches prior studies of worklist patients from remote PACS, if [prefetch] is on
    │   ├── /node/services/scheduler   scheduled tasks (cleanup, verification, migration), unless [scheduler] is off
    │   └── /node/services/builtin-tasks   keeps the built-in tasks in line with the configuration
    ├── /node/workers                  association worker processes, [node] workers of them (one-for-one)
    │   └── /node/workers/w1, w2, ...  each runs its process's associations (actors/node/workers.py)
    └── /node/associations             DICOM networking (one-for-one)
        ├── /node/associations/listener    accepts connections, hands them to the workers (if any)
        └── /node/associations/a1, a2, ... one temporary actor per association (in a worker's process, if any)

Instances arrive in the data directory (the hot tier `local`); the migration service
moves them to the configured tiers (local paths, S3, Azure Blob) by last access.

`open_node(config)` embeds a node in any Trio program; `run_node(config)` runs one until
cancelled. Both own the node's asyncio portal and trace file and close them on exit.
"""

import functools
import itertools
import ssl
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path

import attrs
import structlog
import trio

from .actors import (
    ActorRef,
    ActorSpec,
    ActorSystem,
    AsyncioPortal,
    MailboxStatistics,
    RestartPolicy,
    Subscription,
    Supervisor,
    SupervisorSpec,
    TraceRecorder,
    open_supervisor,
    open_trace_file,
)
from .actors.runtime.threads import run_sync_in_thread
from .actors.node.ae_registry import AERegistry
from .actors.node.association import AssociationActor, AssociationSettings, ServiceSet
from .actors.node.listener import GetAddress, Listener, ListeningOn, TlsListening
from .client.tls import client_context, server_context
from .actors.node.commitment import CommitmentActor, CommitmentSettings
from .actors.node.audit import AUDIT_PATH, AuditActor
from .actors.node.security import AccessPolicy, SecurityActor
from .actors.node.index import IndexActor
from .actors.node.services import VerificationService
from .actors.node.services.commitment import StorageCommitmentService
from .actors.node.services.mpps import PerformedStepService
from .actors.node.services.query import FindService
from .actors.node.services.retrieve import GetService, MoveService
from .actors.node.services.worklist import WorklistService
from .actors.node.services.storage import StorageService
from .actors.node.services.storage import StoreSettings
from .actors.node.tiers import TIERS_PATH, TierActor, check_tier
from .actors.node.workers import WorkerHost, WorkerRoutes
from .storage.objects import ObjectStoreError
from .storage.tier_settings import HOT, TierDefinition, hot_tier
from .config import Config, from_section
from .version import __version__
from .protocol.catalog import transfer_syntaxes
from .storage.index_db import DuplicatePolicy
from .storage.layout import Layout
from .storage.data_lock import DataDirectoryLock
from .workflow import (
    LockManagerConfig,
    LockType,
    SchedulerConfig,
    StudyLockManager,
    TaskScheduler,
    default_task_kinds,
    study_lock,
)
from .workflow.builtin_tasks import BuiltinTask, BuiltinTasks, register_builtin_kinds
from .workflow.tasks.legacy_index import move_out_of_index
from .workflow.cleanup import CleanupConfig
from .workflow.migration import MIGRATION_PATH, MigrationService, migration_policy
from .workflow.prefetch import PREFETCH_PATH, PrefetchCriteria, PrefetchPolicy, PrefetchService, PrefetchSource
from .workflow.prefetch.remote import RemoteSettings
from .workflow.verification import VerificationConfig

log = structlog.get_logger()

ROOT = "/node"
SERVICES = f"{ROOT}/services"
ASSOCIATIONS = f"{ROOT}/associations"


@attrs.frozen
class Node:
    """A running node, as an embedding program sees it."""

    config: Config
    system: ActorSystem
    root: Supervisor
    address: ListeningOn
    http: ListeningOn | None = None  # the admin API (triopacs.web), when it runs
    events: ListeningOn | None = None  # the live event stream (WebSocket), when it runs

    def ref(self, path: str) -> ActorRef:
        """The actor at `path`, absolute (/node/services/aes) or under services (aes)."""
        return self.system.lookup(path if path.startswith("/") else f"{SERVICES}/{path}")

    # The node's services by name: what an embedding program talks to.
    @property
    def index(self) -> ActorRef:
        """The index: CountIndex, FindMatches, GetReports, ... (triopacs.actors.node)."""
        return self.system.lookup(INDEX)

    @property
    def aes(self) -> ActorRef:
        """The remote AE registry: LookupAE, RegisterAE, ForgetAE, ListAEs."""
        return self.system.lookup(AES)

    @property
    def audit(self) -> ActorRef:
        """The audit trail's writer (triopacs.actors.node.audit); absent unless [audit] enabled."""
        return self.system.lookup(AUDIT_PATH)

    @property
    def security(self) -> ActorRef:
        """Users, roles and AE rules (triopacs.actors.node.security); absent unless [access] enabled."""
        return self.system.lookup(f"{SERVICES}/security")

    @property
    def locks(self) -> ActorRef:
        """The study lock manager (triopacs.workflow: Lock, Unlock, ...)."""
        return self.system.lookup(LOCKS)

    @property
    def scheduler(self) -> ActorRef:
        """The task scheduler (triopacs.workflow: ScheduleTask, ...); absent when
        [scheduler] enabled is false."""
        return self.system.lookup(SCHEDULER)

    @property
    def commitment(self) -> ActorRef:
        """The storage commitment actor (RequestCommitment)."""
        return self.system.lookup(COMMITMENT)

    @property
    def migration(self) -> ActorRef:
        """The HSM migration service: RunMigration (triopacs.workflow.migration)."""
        return self.system.lookup(MIGRATION_PATH)

    @property
    def prefetch(self) -> ActorRef:
        """The prefetcher: PrefetchPriors, RunPrefetchCycle, GetPrefetchStatus
        (triopacs.workflow.prefetch); absent unless [prefetch] enabled."""
        return self.system.lookup(PREFETCH_PATH)

    def tier(self, name: str) -> ActorRef:
        """A storage tier actor (triopacs.actors.node.tiers): local, or a [[tier]] name."""
        return self.system.lookup(f"{TIERS_PATH}/{name}")

    @property
    def listener(self) -> ActorRef:
        """The DICOM listener: GetAddress, CountConnections."""
        return self.system.lookup(f"{ASSOCIATIONS}/listener")

    @property
    def services(self) -> Supervisor:
        return self.root.children["services"]  # type: ignore[return-value]

    @property
    def associations(self) -> Supervisor:
        return self.root.children["associations"]  # type: ignore[return-value]

    def subscribe(self, *event_types: type, capacity: int = 256) -> "contextmanager[Subscription]":
        return self.system.bus.subscribe(*event_types, capacity=capacity)

    def statistics(self) -> list[MailboxStatistics]:
        return [self.system.mailbox(path).statistics() for path in self.system.paths()]

    def describe(self) -> str:
        return (
            f"{self.config.node.ae_title} dicom={self.address.host}:{self.address.port}"
            + (f" dicom-tls={self.address.host}:{self.address.tls_port}" if self.address.tls_port is not None else "")
            + f" data={self.config.data_dir.resolve()}"
            + (f" http=http://{self.http.host}:{self.http.port}/" if self.http is not None else "")
            + (f" events=ws://{self.events.host}:{self.events.port}/events" if self.events is not None else "")
        )


INDEX = f"{SERVICES}/index"
COMMITMENT = f"{SERVICES}/commitment"
AES = f"{SERVICES}/aes"


def index_database(config: Config) -> str:
    return str(config.data_dir / "index.sqlite")


SCHEDULER = f"{SERVICES}/scheduler"


def commitment_settings(config: Config) -> CommitmentSettings:
    return from_section(
        CommitmentSettings,
        config.commitment,
        ae_title=config.node.ae_title,
        connect_timeout=10.0,
        dimse_timeout=config.network.dimse_timeout,
        tls_client=tls_client_factory(config),
    )


def scheduler_database(config: Config) -> str:
    return str(config.data_dir / "scheduler.sqlite")


async def _move_tasks_out_of_index(config: Config) -> None:
    """Before any actor opens them: an older node kept its tasks in the index file."""
    index, scheduler = index_database(config), scheduler_database(config)
    moved = await run_sync_in_thread(move_out_of_index, index, scheduler)
    if moved:
        log.info("scheduled tasks moved out of the index file", tasks=moved, database=scheduler)


def prefetch_database(config: Config) -> str:
    return str(config.data_dir / "prefetch.sqlite")


def prefetch_policy(config: Config) -> PrefetchPolicy:
    section = config.prefetch
    return from_section(
        PrefetchPolicy,
        section,
        sources=tuple(PrefetchSource(remote=s.remote, retrieve=s.retrieve) for s in section.source),
        criteria=from_section(PrefetchCriteria, section),
        remote=from_section(
            RemoteSettings, section, calling_ae_title=config.node.ae_title, dimse_timeout=config.network.dimse_timeout,
            tls_client=tls_client_factory(config),
        ),
    )


def prefetch_spec(config: Config) -> list[ActorSpec]:
    if not config.prefetch.enabled:
        return []
    return [
        ActorSpec(
            name="prefetch",
            actor=PrefetchService,
            args={
                "policy": prefetch_policy(config),
                "database": prefetch_database(config),
                "staging": str(config.data_dir / "staging" / "prefetch"),
            },
        )
    ]


def lock_manager_config(config: Config) -> LockManagerConfig:
    return from_section(LockManagerConfig, config.locks)


def scheduler_config(config: Config) -> SchedulerConfig:
    return from_section(SchedulerConfig, config.scheduler)


def archive_params(config: Config) -> dict:
    archive = config.archive
    return {
        "destination": archive.destination, "archive_after": archive.archive_after,
        "max_archives_per_cycle": archive.max_archives_per_cycle, "delete_after_archive": archive.delete_after_archive,
        "staging": str(config.data_dir / "staging"),
    }


def builtin_tasks(config: Config) -> list[BuiltinTask]:
    """The built-in tasks as [cleanup], [verification], [worklist], [archive] and [hsm] describe them."""
    cleanup, verification, worklist = config.cleanup, config.verification, config.worklist
    return [
        BuiltinTask(
            task_id="builtin-cleanup",
            name="cleanup",
            kind="cleanup",
            description="delete studies whose retention has run out",
            schedule=cleanup.schedule,
            enabled=cleanup.enabled,
            params=from_section(CleanupConfig, cleanup).to_params(),
        ),
        BuiltinTask(
            task_id="builtin-verification",
            name="verification",
            kind="verification",
            description="check stored files against the index",
            schedule=verification.schedule,
            enabled=verification.enabled,
            params=from_section(VerificationConfig, verification).to_params(),
        ),
        BuiltinTask(
            task_id="builtin-worklist-expiry",
            name="worklist expiry",
            kind="worklist-expiry",
            description="delete worklist items past their time",
            schedule=worklist.expiry_schedule,
            enabled=worklist.expiry_enabled,
        ),
        BuiltinTask(
            task_id="builtin-archive",
            name="archive",
            kind="archive",
            description="copy old studies to an archive tier as packages",
            schedule=config.archive.schedule,
            enabled=config.archive.enabled,
            params=archive_params(config),
        ),
        BuiltinTask(
            task_id="builtin-migration",
            name="migration",
            kind="migration",
            description="move instances between storage tiers by last access",
            schedule=config.hsm.schedule,
            enabled=config.hsm.enabled,
            params={},
        ),
    ]


def index_spec(config: Config) -> ActorSpec:
    return ActorSpec(
        name="index",
        actor=IndexActor,
        args={
            "database": index_database(config),
            "duplicate_policy": DuplicatePolicy(config.storage.duplicates),
            "synchronous": "FULL" if config.storage.durability == "fsync" else "NORMAL",
            "worklist_expire_after": config.worklist.expire_after_hours * 3600.0,
        },
        capacity=1024,
    )


class TierUnavailable(Exception):
    """A configured storage tier failed its start-up check; the node does not start."""


TIER_CHECK_TIMEOUT = 60.0


def tier_definitions(config: Config) -> list[TierDefinition]:
    return [hot_tier(config.data_dir, fsync=config.storage.durability == "fsync"), *config.tier]


async def check_tiers(config: Config, portal: AsyncioPortal) -> None:
    """Each tier reachable, its credentials good, writable: else TierUnavailable naming it."""
    for definition in tier_definitions(config):
        try:
            with trio.fail_after(TIER_CHECK_TIMEOUT):
                await check_tier(definition, portal)
        except ObjectStoreError as error:  # one line: an SDK's message may carry a whole XML answer
            raise TierUnavailable(f"tier {definition.name!r} ({definition.kind}): {str(error).strip().splitlines()[0]}") from None
        except trio.TooSlowError:
            raise TierUnavailable(f"tier {definition.name!r} ({definition.kind}): no answer within {TIER_CHECK_TIMEOUT:.0f} s") from None
        except Exception as error:  # an SDK's own error (a malformed endpoint, a bad connection string)
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise TierUnavailable(f"tier {definition.name!r} ({definition.kind}): {type(error).__name__}: {first}") from None


def tier_specs(config: Config) -> SupervisorSpec:
    staging = str(config.data_dir / "staging")
    return SupervisorSpec(
        name="tiers",
        children=[
            ActorSpec(
                name=d.name,
                actor=TierActor,
                # The hot tier places every store of every association: more at a time.
                args={"definition": d, "staging": staging, "max_concurrency": 64 if d.name == HOT else 8},
                capacity=256,
            )
            for d in tier_definitions(config)
        ],
    )


def security_database(config: Config) -> str:
    return str(config.data_dir / "security.sqlite")


def security_specs(config: Config) -> list[ActorSpec]:
    """The security actor, when [access] is on (users, roles, AE rules)."""
    if not config.access.enabled:
        return []
    policy = AccessPolicy(
        enabled=True, unknown_ae=config.access.unknown_ae, accept_username_only=config.access.accept_username_only
    )
    return [ActorSpec(name="security", actor=SecurityActor, args={"database": security_database(config), "policy": policy})]


def audit_file(config: Config) -> Path:
    return Path(config.audit.path) if config.audit.path else config.data_dir / "audit" / "audit.jsonl"


def audit_path(config: Config) -> str | None:
    """The audit actor's path, when [audit] is on (senders skip auditing on None)."""
    return AUDIT_PATH if config.audit.enabled else None


def audit_specs(config: Config) -> list[ActorSpec]:
    if not config.audit.enabled:
        return []
    return [ActorSpec(
        name="audit", actor=AuditActor, capacity=8192,
        args={
            "path": str(audit_file(config)), "source": config.node.ae_title,
            "fsync": config.audit.sync == "fsync", "rotate_bytes": config.audit.rotate_bytes,
        },
    )]


def service_specs(config: Config) -> list[ActorSpec | SupervisorSpec]:
    specs: list[ActorSpec | SupervisorSpec] = [
        *audit_specs(config),  # first: every other actor may record to it
        ActorSpec(name="aes", actor=AERegistry, args={"remotes": config.remote}),
        *security_specs(config),
        # Before the index and commitment: at start they ask the tiers (finishing deletions, checks).
        tier_specs(config),
        index_spec(config),
        ActorSpec(name="locks", actor=StudyLockManager, args={"config": lock_manager_config(config)}, capacity=1024),
        # After the index and the AE registry: at start it resumes unfinished requests.
        ActorSpec(
            name="commitment",
            actor=CommitmentActor,
            args={
                "settings": commitment_settings(config),
                "index_path": INDEX,
                "aes_path": AES,
            },
        ),
        # After the index, the locks and the tiers: at start it finishes interrupted moves.
        ActorSpec(
            name="migration",
            actor=MigrationService,
            args={"policy": migration_policy(config.hsm, config.locks.acquire_wait_timeout), "prefixes": {t.name: t.prefix for t in config.tier}},
        ),
        # After the index and the AE registry: at start it resumes its queue.
        *prefetch_spec(config),
    ]
    if not config.scheduler.enabled:
        if config.cleanup.enabled or config.verification.enabled:
            log.warning("the scheduler is off: built-in cleanup and verification will not run")
        return specs
    # Registered before the scheduler starts, so that restored tasks find their kinds.
    register_builtin_kinds(default_task_kinds)
    return [
        *specs,
        ActorSpec(
            name="scheduler",
            actor=TaskScheduler,
            args={"database": scheduler_database(config), "config": scheduler_config(config)},
        ),
        # After the scheduler: brings its built-in tasks in line with the configuration.
        ActorSpec(name="builtin-tasks", actor=BuiltinTasks, args={"tasks": builtin_tasks(config), "scheduler_path": SCHEDULER}),
    ]


LOCKS = f"{SERVICES}/locks"


def study_guard(config: Config):
    """What a C-STORE holds while it commits: a shared lock on its study, so cleanup
    (exclusive) and migration never delete or move a study under a store in progress,
    and a store waits - at most acquire_wait_timeout - while they run."""
    wait = config.locks.acquire_wait_timeout

    def guard(ctx, study_uid: str):
        # Once the instance is indexed the answer is Success whatever the release says.
        return study_lock(ctx.lookup(LOCKS), study_uid, LockType.SHARED, reason="C-STORE", wait=wait, confirm_release=False)

    return guard


def tls_client_factory(config: Config) -> Callable[[], ssl.SSLContext] | None:
    """Our TLS client context for [[remote]]s marked tls: our certificate, the CAs we
    trust ([tls] section); None without a certificate or CA file to use."""
    tls = config.tls
    if not (tls.cert_file or tls.ca_file):
        return None
    return functools.partial(
        client_context, ca_file=tls.ca_file, cert_file=tls.cert_file, key_file=tls.key_file,
        check_hostname=tls.check_hostname, min_version=tls.min_version,
    )


def store_settings(config: Config) -> StoreSettings:
    """How received instances are kept: by C-STORE and by STOW-RS alike."""
    return StoreSettings(
        layout=Layout(config.storage.layout),
        duplicates=DuplicatePolicy(config.storage.duplicates),
        index_path=INDEX,
        guard=study_guard(config),
        max_sequence_depth=config.network.max_sequence_depth,
        max_inflated_bytes=config.network.max_inflated_bytes,
    )


def dicom_services(config: Config) -> ServiceSet:
    storage = store_settings(config)
    return ServiceSet(
        [
            VerificationService(),
            StorageService(storage),
            FindService(index_path=INDEX, ae_title=config.node.ae_title),
            MoveService(
                index_path=INDEX,
                aes_path=f"{SERVICES}/aes",
                ae_title=config.node.ae_title,
                dimse_timeout=config.network.dimse_timeout,
                patient_level_in_study_root=config.query.patient_level_in_study_root,
                tiers_path=TIERS_PATH,
                track_access_time=config.hsm.track_access_time,
                tls_client=tls_client_factory(config),
            ),
            GetService(
                index_path=INDEX,
                dimse_timeout=config.network.dimse_timeout,
                patient_level_in_study_root=config.query.patient_level_in_study_root,
                tiers_path=TIERS_PATH,
                track_access_time=config.hsm.track_access_time,
            ),
            WorklistService(index_path=INDEX),
            PerformedStepService(index_path=INDEX),
            StorageCommitmentService(commitment_path=COMMITMENT),
        ]
    )


def association_settings(config: Config) -> AssociationSettings:
    network = config.network
    return AssociationSettings(
        ae_title=config.node.ae_title,
        calling_ae_titles=frozenset(network.calling_ae_titles) or None,
        transfer_syntaxes=config.storage.transfer_syntaxes or transfer_syntaxes(),
        max_pdu_length=network.max_pdu_length,
        artim_timeout=network.artim_timeout,
        idle_timeout=network.idle_timeout,
        dimse_timeout=network.dimse_timeout,
        min_peer_pdu_length=network.min_peer_pdu_length,
        max_sequence_depth=network.max_sequence_depth,
        access_control=config.access.enabled,
        audit_path=audit_path(config),
        audit_wait=config.audit.sync == "fsync",
    )


def association_factory(config: Config) -> Callable[..., AssociationActor]:
    """(stream, association id, peer, listener path) -> the association actor, in the
    node's process or a worker's."""
    settings = association_settings(config)
    services = dicom_services(config)

    def make_association(stream, association_id: str, peer: str, listener: str, tls_subject: str | None = None) -> AssociationActor:
        return AssociationActor(
            stream=stream,
            association_id=association_id,
            peer=peer,
            settings=settings,
            services=services,
            listener=listener,
            tls_subject=tls_subject,
        )

    return make_association


WORKERS = f"{ROOT}/workers"


def worker_count(config: Config) -> int:
    if config.node.workers and config.trace.file:
        # A trace is of one process: with workers it would miss every association.
        log.warning("tracing: associations run in the node's process, [node] workers is ignored")
        return 0
    return config.node.workers


def worker_specs(config: Config, routes: WorkerRoutes) -> list[ActorSpec]:
    return [
        ActorSpec(name=f"w{i}", actor=WorkerHost, args={"setup": config, "routes": routes, "associations": ASSOCIATIONS})
        for i in range(1, worker_count(config) + 1)
    ]


def tls_listening(config: Config) -> TlsListening | None:
    """The TLS port's settings, its server context loaded (TlsSetupError names a bad file)."""
    tls = config.tls
    if not tls.enabled:
        return None
    context = server_context(
        cert_file=tls.cert_file, key_file=tls.key_file, ca_file=tls.ca_file,
        require_client_certificate=tls.require_client_certificate, min_version=tls.min_version,
    )
    return TlsListening(port=tls.port, context=context, handshake_timeout=tls.handshake_timeout, plain_port=tls.plain_port)


def association_specs(config: Config) -> list[ActorSpec | SupervisorSpec]:
    make_association = association_factory(config)
    network = config.network
    listener_args = {
        "bind": config.node.bind,
        "port": config.node.port,
        "max_associations": network.max_associations,
        "max_waiting": network.max_waiting_connections,
        "max_waiting_per_address": network.max_waiting_per_address,
        "make_association": make_association,
        "names": itertools.count(1),  # outlives a restart of the listener: names stay unique
        "workers": tuple(f"{WORKERS}/w{i}" for i in range(1, worker_count(config) + 1)),
        "tls": tls_listening(config),
        "audit_path": audit_path(config),
        "ae_title": config.node.ae_title,
    }
    return [ActorSpec(name="listener", actor=Listener, args=listener_args)]


@contextmanager
def _trace_recorder(config: Config) -> Iterator[TraceRecorder | None]:
    if not config.trace.file:
        yield None
        return
    sink = open_trace_file(Path(config.trace.file))
    try:
        recorder = TraceRecorder(sink)
        recorder.begin(triopacs=__version__)
        yield recorder
    finally:
        sink.close()


@asynccontextmanager
async def open_node(config: Config | None = None, *, front: Sequence[ActorSpec | SupervisorSpec] = ()) -> AsyncIterator[Node]:
    """Start a node inside the caller's Trio program; it stops when the block ends.

    `front`: subtrees started first, before the services (the web layer's, which must
    answer probes while the rest starts: triopacs.open_node adds it).
    Raises `DataDirectoryInUse` when another node runs on the same data directory."""
    config = config if config is not None else Config()
    config.data_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        stack.enter_context(DataDirectoryLock(config.data_dir))  # before any file is opened
        await _move_tasks_out_of_index(config)
        recorder = stack.enter_context(_trace_recorder(config))
        async with AsyncioPortal() as portal:
            await check_tiers(config, portal)
            system = ActorSystem(recorder=recorder, portal=portal, shutdown_grace=config.node.shutdown_grace)
            system.remote = routes = WorkerRoutes()  # associations served by worker processes
            tree = [
                *front,
                SupervisorSpec(name="services", children=service_specs(config)),
                # After the services (a worker asks them at once), before the listener.
                SupervisorSpec(name="workers", children=worker_specs(config, routes)),
                SupervisorSpec(name="associations", children=association_specs(config)),
            ]
            async with open_supervisor(system, ROOT, RestartPolicy(max_restarts=3, within=30.0), tree) as root:
                address = await system.lookup(f"{ASSOCIATIONS}/listener").ask(GetAddress())
                node = Node(config=config, system=system, root=root, address=address)
                log.info("node started", ae_title=config.node.ae_title, data_dir=str(config.data_dir))
                try:
                    yield node
                finally:
                    log.info("node stopping")


async def run_node(config: Config | None = None, *, on_ready: Callable[[Node], None] | None = None) -> None:
    """Run a node until cancelled; `on_ready` is called once every actor is ready."""
    async with open_node(config) as node:
        if on_ready is not None:
            on_ready(node)
        await trio.sleep_forever()

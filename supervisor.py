"""The node: its supervision tree, and the two ways to run it.

    /node                      root (one-for-one)
    ├── /node/services         index, storage tiers, lock manager, scheduler, ... (one-for-one)
    │   └── /node/services/aes remote AE registry
    └── /node/associations     the DICOM listener and one actor per association (one-for-one)

`open_node(config)` embeds a node in any Trio program; `run_node(config)` runs one until
cancelled. Both own the node's asyncio portal and trace file and close them on exit.
"""

from collections.abc import AsyncIterator, Callable, Iterator
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
from .actors.ae_registry import AERegistry
from .config import Config

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

    def ref(self, path: str) -> ActorRef:
        """The actor at `path`, absolute (/node/services/aes) or under services (aes)."""
        return self.system.lookup(path if path.startswith("/") else f"{SERVICES}/{path}")

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
        return f"{self.config.node.ae_title} data={self.config.data_dir.resolve()}"


def service_specs(config: Config) -> list[ActorSpec | SupervisorSpec]:
    return [ActorSpec(name="aes", actor=AERegistry, args={"remotes": config.remote})]


def association_specs(config: Config) -> list[ActorSpec | SupervisorSpec]:
    return []


@contextmanager
def _trace_recorder(config: Config) -> Iterator[TraceRecorder | None]:
    if not config.trace.file:
        yield None
        return
    sink = open_trace_file(Path(config.trace.file))
    try:
        recorder = TraceRecorder(sink)
        recorder.begin()
        yield recorder
    finally:
        sink.close()


@asynccontextmanager
async def open_node(config: Config | None = None) -> AsyncIterator[Node]:
    """Start a node inside the caller's Trio program; it stops when the block ends."""
    config = config if config is not None else Config()
    config.data_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        recorder = stack.enter_context(_trace_recorder(config))
        async with AsyncioPortal() as portal:
            system = ActorSystem(recorder=recorder, portal=portal, shutdown_grace=config.node.shutdown_grace)
            tree = [
                SupervisorSpec(name="services", children=service_specs(config)),
                SupervisorSpec(name="associations", children=association_specs(config)),
            ]
            async with open_supervisor(system, ROOT, RestartPolicy(max_restarts=3, within=30.0), tree) as root:
                node = Node(config=config, system=system, root=root)
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

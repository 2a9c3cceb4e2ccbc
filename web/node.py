"""A node with its operating face: the admin API, probes, metrics, the event stream
and the status page run as the subtree /node/web, started before the services so that
/ready answers 503 while the rest starts. `triopacs.open_node` and `triopacs serve` are
these; supervisor.open_node alone is the node without HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import attrs
import trio

from ..actors import ActorSpec, SupervisorSpec
from ..actors.node.listener import GetAddress
from ..config import Config
from ..supervisor import ROOT, Node
from ..supervisor import open_node as open_bare_node
from .event_stream import EventStream
from .http_actor import HttpActor
from .metrics_actor import MetricsActor
from .phase import NodePhase

WEB = f"{ROOT}/web"
METRICS = f"{WEB}/metrics"
EVENTS = f"{WEB}/events"
HTTP = f"{WEB}/http"


def web_spec(config: Config, phase: NodePhase) -> SupervisorSpec:
    return SupervisorSpec(
        name="web",
        children=[
            ActorSpec(name="metrics", actor=MetricsActor, args={"ae_title": config.node.ae_title}),
            ActorSpec(name="events", actor=EventStream, args={"settings": config.http, "access": config.access.enabled}),
            ActorSpec(
                name="http",
                actor=HttpActor,
                args={"config": config, "phase": phase, "metrics_path": METRICS, "events_path": EVENTS},
            ),
        ],
    )


@asynccontextmanager
async def open_node(config: Config | None = None) -> AsyncIterator[Node]:
    """Start a node, with HTTP unless [http] enabled is false; it stops when the block ends."""
    config = config if config is not None else Config()
    if not config.http.enabled:
        async with open_bare_node(config) as node:
            yield node
        return
    phase = NodePhase()
    async with open_bare_node(config, front=[web_spec(config, phase)]) as node:
        http = await node.system.lookup(HTTP).ask(GetAddress())
        events = await node.system.lookup(EVENTS).ask(GetAddress())
        phase.value = "ready"
        try:
            yield attrs.evolve(node, http=http, events=events)
        finally:
            phase.value = "stopping"


async def run_node(config: Config | None = None, *, on_ready: Callable[[Node], None] | None = None) -> None:
    """Run a node until cancelled; `on_ready` is called once every actor is ready."""
    async with open_node(config) as node:
        if on_ready is not None:
            on_ready(node)
        await trio.sleep_forever()


__all__ = ["open_node", "run_node", "web_spec"]

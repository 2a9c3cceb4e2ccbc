"""The metrics actor: counts what the node does from the events it publishes, and
renders the Prometheus text when a scrape asks (the runtime gauges are read then)."""

from __future__ import annotations

import trio

from ..actors import Actor, ActorError, ActorRestarted, ReplyError, message
from ..actors.node.activity import ACTIVITY_EVENTS
from ..actors.node.tiers import TIERS_PATH
from ..actors.node.tiers.messages import GetTierStatistics, TierStatistics
from ..supervisor import LOCKS
from ..workflow.locks.messages import GetLockStats
from ..workflow.tasks.messages import TaskExecuted
from .metrics import NodeMetrics

OBSERVED = (*ACTIVITY_EVENTS, TaskExecuted, ActorRestarted)
# Deep enough to ride out a burst of stores while the actor renders a scrape.
EVENT_QUEUE = 65536
SCRAPE_ASK_TIMEOUT = 2.0


@message("web.render-metrics")
class RenderMetrics:
    pass


@message("web.metrics-text")
class MetricsText:
    text: bytes


@message("web.get-activity")
class GetActivity:
    pass


@message("web.list-open-associations")
class ListOpenAssociations:
    """The ids of the associations open now, as their events tell (wherever they run:
    in the node's process or in a worker's)."""


@message("web.open-associations")
class OpenAssociations:
    ids: tuple[str, ...]


class MetricsActor(Actor):
    accepts = (RenderMetrics, GetActivity, ListOpenAssociations)
    # What it answers comes from the event bus, which a trace does not record: a replay
    # takes what it sent as recorded input, never re-runs it.
    replayable = False

    def __init__(self, *, ae_title: str) -> None:
        self.metrics = NodeMetrics(ae_title)
        self._dropped = 0

    async def on_start(self) -> None:
        await self.ctx.nursery.start(self._count_events)

    async def _count_events(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        with self.ctx.system.bus.subscribe(*OBSERVED, capacity=EVENT_QUEUE) as events:
            self._events = events
            task_status.started()
            async for event in events:
                self.metrics.observe(event)

    def _catch_up(self) -> None:
        """Count what was published before this question: an answer includes every event
        that happened before it was asked."""
        while True:
            try:
                self.metrics.observe(self._events.receive_nowait())
            except trio.WouldBlock:
                break
        self._dropped = self._events.dropped

    async def handle(self, message):
        match message:
            case GetActivity():
                self._catch_up()
                return self.metrics.activity()
            case ListOpenAssociations():
                self._catch_up()
                return OpenAssociations(ids=self.metrics.open_associations())
            case RenderMetrics():
                # Asking the lock manager and the tiers takes a moment: not in the mailbox loop.
                self.ctx.nursery.start_soon(self._render, self.ctx.defer_reply())

    async def _render(self, reply) -> None:
        system = self.ctx.system
        mailboxes = [system.mailbox(path).statistics() for path in system.paths()]
        locks = await self._ask(LOCKS, GetLockStats())
        tiers: list[TierStatistics] = []
        prefix = f"{TIERS_PATH}/"
        for path in system.paths():
            if path.startswith(prefix) and "/" not in path[len(prefix):]:
                answer = await self._ask(path, GetTierStatistics())
                if answer is not None:
                    tiers.append(answer)
        self._catch_up()
        self.metrics.set_runtime(mailboxes, locks, tiers, self._dropped)
        reply.send(MetricsText(text=self.metrics.render()))

    async def _ask(self, path: str, request: object):
        try:
            return await self.ctx.lookup(path).ask(request, timeout=SCRAPE_ASK_TIMEOUT)
        except (ActorError, ReplyError):
            return None  # shown as absent gauges; /health says why


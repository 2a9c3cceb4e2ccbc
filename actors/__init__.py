"""Actors: the generic runtime and the node's own actors, in two packages.

- `triopacs.actors.runtime`: typed messages, mailboxes, refs, supervision, events, the
  asyncio portal, traces and replay. No DICOM; usable in any Trio program.
- `triopacs.actors.node`: the node's actors that do I/O - the listener, one actor per
  association, the DICOM services they run, the index, the AE registry.

The runtime's names are re-exported here, so `from triopacs.actors import Actor,
ActorSpec, message` keeps working.
"""

from typing import TYPE_CHECKING, Any

from . import runtime

__all__ = runtime.__all__


def __getattr__(name: str) -> Any:
    return getattr(runtime, name)


if TYPE_CHECKING:
    from .runtime import *  # noqa: F403

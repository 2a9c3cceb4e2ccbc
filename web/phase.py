"""Where the node is in its life, for the readiness probe: starting until every actor
is up, ready, then stopping. The node's opener sets it; it outlives restarts of the
HTTP actor (the node passes one holder to every incarnation)."""

import attrs


@attrs.define
class NodePhase:
    value: str = "starting"  # -> ready -> stopping

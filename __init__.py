"""triopacs: a DICOM archive node on Trio.

What an embedding program needs is here: `open_node` / `run_node` and the `Node` they
give (refs to its services: node.index, node.aes, node.locks, node.scheduler), `Config`
with its sections, and `connect` for the SCU. Messages to the node's actors come from
`triopacs.actors.node` (index, AE registry, associations) and `triopacs.workflow`
(locks, scheduler, task kinds); the generic actor runtime is `triopacs.actors`.
"""

from typing import TYPE_CHECKING

from .version import __version__

_LAZY = {
    "open_node": "web.node",
    "run_node": "web.node",
    "Node": "supervisor",
    "connect": "client.connection",
    "Config": "config",
    "NodeSettings": "config",
    "NetworkSettings": "config",
    "StorageSettings": "config",
    "ConfigError": "config",
    "load_config": "config",
}
__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str):
    # Imported on first use, so that `import triopacs.protocol` stays light.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'triopacs' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{module}", __name__), name)


if TYPE_CHECKING:
    from .client.connection import connect
    from .config import Config, ConfigError, NetworkSettings, NodeSettings, StorageSettings, load_config
    from .supervisor import Node
    from .web.node import open_node, run_node

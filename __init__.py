"""triopacs: a DICOM archive node on Trio."""

from .version import __version__

__all__ = ["Node", "__version__", "connect", "open_node", "run_node"]


def __getattr__(name: str):
    # The node API is imported lazily so `import triopacs.protocol` stays light.
    if name in ("open_node", "run_node", "Node"):
        from . import supervisor

        return getattr(supervisor, name)
    if name == "connect":  # the SCU client, as lazily (client/connection.py)
        from .client.connection import connect

        return connect
    raise AttributeError(f"module 'triopacs' has no attribute {name!r}")

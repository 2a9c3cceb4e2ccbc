"""triopacs: a DICOM archive node on Trio."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("triopacs")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"


def __getattr__(name: str):
    # The node API is imported lazily so `import triopacs.protocol` stays light.
    if name in ("open_node", "run_node", "Node"):
        from . import supervisor

        return getattr(supervisor, name)
    if name == "connect":  # the SCU client, as lazily (actors/client.py)
        from .actors.client import connect

        return connect
    raise AttributeError(f"module 'triopacs' has no attribute {name!r}")

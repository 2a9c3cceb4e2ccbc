"""The installed version of triopacs (a module of its own, so that any layer may ask)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("triopacs")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

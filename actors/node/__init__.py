"""The node's actors that do I/O: the DICOM listener and associations, the services an
association runs (C-ECHO, C-STORE, C-FIND, C-MOVE, C-GET), the index, the AE registry."""

from . import wire  # noqa: F401,E402 - teaches the codec the node's DICOM values

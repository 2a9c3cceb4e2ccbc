"""The node's actors that do I/O: the DICOM listener and associations, the services an
association runs (C-ECHO, C-STORE, C-FIND, C-MOVE, C-GET), the index, the AE registry.

The messages an embedding program sends them are importable from here:

    from triopacs.actors.node import CountIndex, LookupAE, RemoteAE
    print(await node.index.ask(CountIndex()))
"""

from . import wire  # noqa: F401 - teaches the codec the node's DICOM values
from .ae_registry import AERegistry, ForgetAE, ListAEs, LookupAE, RegisterAE, RemoteAE, UnknownAE
from .association import AbortAssociation, AssociationActor, DescribeAssociation
from .index import CountIndex, FindMatches, GetReports, IndexActor, ListInstances
from .listener import CountConnections, GetAddress, Listener

__all__ = [
    "AERegistry",
    "AbortAssociation",
    "AssociationActor",
    "CountConnections",
    "CountIndex",
    "DescribeAssociation",
    "FindMatches",
    "ForgetAE",
    "GetAddress",
    "GetReports",
    "IndexActor",
    "ListAEs",
    "ListInstances",
    "Listener",
    "LookupAE",
    "RegisterAE",
    "RemoteAE",
    "UnknownAE",
]

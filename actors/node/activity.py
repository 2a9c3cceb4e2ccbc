"""What the node's DICOM side did, as events for observers (metrics, the live event
stream, tests): associations opened, rejected and ended, instances stored, queries and
retrieves answered. Published on the event bus, which never blocks the publisher; an
observer that falls behind loses events, the node does not slow down.
"""

from ..runtime.messages import message


@message("activity.association-opened")
class AssociationOpened:
    association_id: str
    peer: str  # host:port
    calling_ae_title: str
    called_ae_title: str
    contexts: tuple[str, ...]  # the abstract syntaxes accepted
    tls_subject: str | None = None  # the peer certificate's subject (TLS); None: plain TCP
    username: str = ""  # the user identity the peer proved, if any


@message("activity.tls-refused")
class TlsRefused:
    """A connection to the TLS port that never became a TLS session: a certificate the
    node does not trust, plain TCP, a handshake too slow."""

    peer: str
    reason: str


@message("activity.association-rejected")
class AssociationRejected:
    association_id: str
    peer: str
    calling_ae_title: str
    reason: str
    called_ae_title: str = ""
    tls_subject: str | None = None
    username: str = ""


@message("activity.association-closed")
class AssociationClosed:
    association_id: str
    outcome: str  # released, aborted, or closed (the connection ended without either)
    bytes_received: int
    bytes_sent: int
    seconds: float


@message("activity.instance-stored")
class InstanceStored:
    association_id: str
    calling_ae_title: str
    sop_class_uid: str
    study_instance_uid: str
    bytes: int
    seconds: float  # from the request's arrival to the answer


@message("activity.store-refused")
class StoreRefusedEvent:
    association_id: str
    sop_class_uid: str
    status: int


@message("activity.query-answered")
class QueryAnswered:
    association_id: str
    level: str  # PATIENT, STUDY, SERIES, IMAGE, or WORKLIST
    matches: int
    seconds: float
    status: int


@message("activity.retrieve-finished")
class RetrieveFinished:
    association_id: str
    kind: str  # move or get
    completed: int
    failed: int
    seconds: float
    status: int


ASSOCIATION_EVENTS = (AssociationOpened, AssociationRejected, AssociationClosed, TlsRefused)
ACTIVITY_EVENTS = (*ASSOCIATION_EVENTS, InstanceStored, StoreRefusedEvent, QueryAnswered, RetrieveFinished)

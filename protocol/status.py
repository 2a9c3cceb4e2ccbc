"""DIMSE status codes: their class (PS3.7 Annex C) and their meaning per service (PS3.4).

A status is a plain 16-bit integer on the wire. The same code can mean different things in
different services (0xB000 is "coercion of data elements" for C-STORE but "sub-operations
complete, one or more failures" for C-MOVE/C-GET), so meanings live in per-service tables
and `describe(code, service)` picks the right one. The class of a code never depends on
the service: `status_class(code)` follows Annex C's ranges alone, so a code no table
names (a vendor's 0xC123) is still classified correctly.
"""

import enum

import attrs


class StatusClass(enum.Enum):
    SUCCESS = "success"
    PENDING = "pending"
    CANCEL = "cancel"
    WARNING = "warning"
    FAILURE = "failure"


class Service(enum.Enum):
    """Which service's table gives a code its meaning."""

    GENERAL = "general"  # PS3.7 Annex C only
    STORAGE = "storage"  # C-STORE, PS3.4 B.2.3
    FIND = "find"  # C-FIND, PS3.4 C.4.1.1.4 (also Modality Worklist)
    GET = "get"  # C-GET, PS3.4 C.4.3.1.4
    MOVE = "move"  # C-MOVE, PS3.4 C.4.2.1.5


class Status(enum.IntEnum):
    """Codes PS3.7 Annex C defines for every DIMSE service."""

    SUCCESS = 0x0000
    WARNING = 0x0001
    NO_SUCH_ATTRIBUTE = 0x0105
    INVALID_ATTRIBUTE_VALUE = 0x0106
    ATTRIBUTE_LIST_ERROR = 0x0107  # a warning despite its 01xx range
    PROCESSING_FAILURE = 0x0110
    DUPLICATE_SOP_INSTANCE = 0x0111
    NO_SUCH_SOP_INSTANCE = 0x0112
    NO_SUCH_EVENT_TYPE = 0x0113
    NO_SUCH_ARGUMENT = 0x0114
    INVALID_ARGUMENT_VALUE = 0x0115
    ATTRIBUTE_VALUE_OUT_OF_RANGE = 0x0116  # a warning despite its 01xx range
    INVALID_SOP_INSTANCE = 0x0117
    NO_SUCH_SOP_CLASS = 0x0118
    CLASS_INSTANCE_CONFLICT = 0x0119
    MISSING_ATTRIBUTE = 0x0120
    MISSING_ATTRIBUTE_VALUE = 0x0121
    SOP_CLASS_NOT_SUPPORTED = 0x0122
    NO_SUCH_ACTION_TYPE = 0x0123
    NOT_AUTHORIZED = 0x0124
    DUPLICATE_INVOCATION = 0x0210
    UNRECOGNIZED_OPERATION = 0x0211
    MISTYPED_ARGUMENT = 0x0212
    RESOURCE_LIMITATION = 0x0213
    CANCEL = 0xFE00
    PENDING = 0xFF00


class StorageStatus(enum.IntEnum):
    """C-STORE codes of the Storage Service Class (PS3.4 B.2.3). A7xx/A9xx/Cxxx are ranges;
    the members are the conventional first code of each."""

    OUT_OF_RESOURCES = 0xA700
    DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    CANNOT_UNDERSTAND = 0xC000
    COERCION_OF_DATA_ELEMENTS = 0xB000
    ELEMENTS_DISCARDED = 0xB006
    DATASET_DOES_NOT_MATCH_SOP_CLASS_WARNING = 0xB007


class QueryRetrieveStatus(enum.IntEnum):
    """C-FIND / C-GET / C-MOVE codes of the Query/Retrieve Service Class (PS3.4 C.4)."""

    OUT_OF_RESOURCES = 0xA700  # C-FIND
    OUT_OF_RESOURCES_MATCHES = 0xA701  # C-GET/C-MOVE: cannot count the matches
    OUT_OF_RESOURCES_SUB_OPERATIONS = 0xA702  # C-GET/C-MOVE: cannot run the sub-operations
    MOVE_DESTINATION_UNKNOWN = 0xA801
    IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    UNABLE_TO_PROCESS = 0xC000  # any Cxxx
    SUB_OPERATIONS_WITH_FAILURES = 0xB000  # C-GET/C-MOVE warning
    CANCELED = 0xFE00
    PENDING = 0xFF00
    PENDING_OPTIONAL_KEYS_UNSUPPORTED = 0xFF01  # C-FIND


# Error ID (0000,0903) sent with 0110 Processing failure when an N-SET names a Modality
# Performed Procedure Step that is COMPLETED or DISCONTINUED already (PS3.4 F.7.2.2).
MPPS_MAY_NO_LONGER_BE_UPDATED = 0xA710


@attrs.frozen
class StatusInfo:
    code: int
    status_class: StatusClass
    meaning: str


def status_class(code: int) -> StatusClass:
    """The class of any 16-bit status code, by PS3.7 Annex C's ranges.

    Annex C forbids codes outside its ranges; we call those failures rather than guess,
    since treating an unknown code as success could lose an image silently.
    """
    if not 0 <= code <= 0xFFFF:
        raise ValueError(f"status code {code!r} is not a 16-bit value")
    if code == 0x0000:
        return StatusClass.SUCCESS
    if code in (0xFF00, 0xFF01):
        return StatusClass.PENDING
    if code == 0xFE00:
        return StatusClass.CANCEL
    if code in (0x0001, 0x0107, 0x0116) or code >> 12 == 0xB:
        return StatusClass.WARNING
    return StatusClass.FAILURE


def is_final(code: int) -> bool:
    """True unless the code says more responses follow (Pending)."""
    return status_class(code) is not StatusClass.PENDING


_GENERAL: dict[int, str] = {
    0x0000: "Success",
    0x0001: "Warning",
    0x0105: "No such attribute",
    0x0106: "Invalid attribute value",
    0x0107: "Attribute list error",
    0x0110: "Processing failure",
    0x0111: "Duplicate SOP Instance",
    0x0112: "No such SOP Instance",
    0x0113: "No such event type",
    0x0114: "No such argument",
    0x0115: "Invalid argument value",
    0x0116: "Attribute value out of range",
    0x0117: "Invalid SOP Instance",
    0x0118: "No such SOP Class",
    0x0119: "Class-Instance conflict",
    0x0120: "Missing attribute",
    0x0121: "Missing attribute value",
    0x0122: "Refused: SOP Class not supported",
    0x0123: "No such action type",
    0x0124: "Refused: not authorized",
    0x0210: "Duplicate invocation",
    0x0211: "Unrecognized operation",
    0x0212: "Mistyped argument",
    0x0213: "Resource limitation",
    0xFE00: "Canceled",
    0xFF00: "Pending",
}

# Exact codes first, then (mask, value) ranges, per service.
_EXACT: dict[Service, dict[int, str]] = {
    Service.STORAGE: {
        0xB000: "Warning: coercion of data elements",
        0xB006: "Warning: elements discarded",
        0xB007: "Warning: data set does not match SOP Class",
    },
    Service.FIND: {
        0xA700: "Refused: out of resources",
        0xA900: "Error: identifier does not match SOP Class",
        0xFE00: "Matching terminated due to cancel",
        0xFF00: "Pending: matches are continuing",
        0xFF01: "Pending: matches are continuing, one or more optional keys not supported",
    },
}
_EXACT[Service.GET] = {
    0xA701: "Refused: out of resources, unable to calculate number of matches",
    0xA702: "Refused: out of resources, unable to perform sub-operations",
    0xA900: "Error: identifier does not match SOP Class",
    0xB000: "Warning: sub-operations complete, one or more failures or warnings",
    0xFE00: "Sub-operations terminated due to cancel",
    0xFF00: "Pending: sub-operations are continuing",
}
_EXACT[Service.MOVE] = {**_EXACT[Service.GET], 0xA801: "Refused: move destination unknown"}

_RANGES: dict[Service, tuple[tuple[int, int, str], ...]] = {
    Service.STORAGE: (
        (0xFF00, 0xA700, "Refused: out of resources"),
        (0xFF00, 0xA900, "Error: data set does not match SOP Class"),
        (0xF000, 0xC000, "Error: cannot understand"),
    ),
    Service.FIND: ((0xF000, 0xC000, "Failed: unable to process"),),
    Service.GET: ((0xF000, 0xC000, "Failed: unable to process"),),
    Service.MOVE: ((0xF000, 0xC000, "Failed: unable to process"),),
}


def describe(code: int, service: Service = Service.GENERAL) -> StatusInfo:
    """Class and meaning of a code as `service` defines it, falling back to Annex C."""
    meaning = _EXACT.get(service, {}).get(code)
    if meaning is None:
        for mask, value, text in _RANGES.get(service, ()):
            if code & mask == value:
                meaning = text
                break
    if meaning is None:
        meaning = _GENERAL.get(code)
    if meaning is None:
        meaning = f"Unknown {status_class(code).value} status 0x{code:04X}"
    return StatusInfo(code=code, status_class=status_class(code), meaning=meaning)

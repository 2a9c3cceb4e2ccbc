"""Numeric codes of the DICOM upper layer (PS3.8 9.3 and Annex D), as IntEnums.

The wire carries plain bytes; decoded PDUs hold these enums where the value is one
the standard names, and the bare int otherwise (fields the standard tells receivers
not to test, such as an A-ABORT's reason when the source is the service-user).
"""

from enum import IntEnum

import attrs

DICOM_APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"


class PDUType(IntEnum):
    A_ASSOCIATE_RQ = 0x01
    A_ASSOCIATE_AC = 0x02
    A_ASSOCIATE_RJ = 0x03
    P_DATA_TF = 0x04
    A_RELEASE_RQ = 0x05
    A_RELEASE_RP = 0x06
    A_ABORT = 0x07


class ItemType(IntEnum):
    """Item and sub-item types (PS3.8 9.3.2, Annex D; PS3.7 Annex D.3.3)."""

    APPLICATION_CONTEXT = 0x10
    PRESENTATION_CONTEXT_RQ = 0x20
    PRESENTATION_CONTEXT_AC = 0x21
    ABSTRACT_SYNTAX = 0x30
    TRANSFER_SYNTAX = 0x40
    USER_INFORMATION = 0x50
    MAXIMUM_LENGTH = 0x51
    IMPLEMENTATION_CLASS_UID = 0x52
    ASYNC_OPS_WINDOW = 0x53
    ROLE_SELECTION = 0x54
    IMPLEMENTATION_VERSION_NAME = 0x55
    SOP_CLASS_EXTENDED_NEGOTIATION = 0x56
    SOP_CLASS_COMMON_EXTENDED_NEGOTIATION = 0x57
    USER_IDENTITY_RQ = 0x58
    USER_IDENTITY_AC = 0x59


class RejectResult(IntEnum):
    """A-ASSOCIATE-RJ byte 8 (Table 9-21)."""

    REJECTED_PERMANENT = 1
    REJECTED_TRANSIENT = 2


class RejectSource(IntEnum):
    """A-ASSOCIATE-RJ byte 9: who rejected."""

    SERVICE_USER = 1
    SERVICE_PROVIDER_ACSE = 2
    SERVICE_PROVIDER_PRESENTATION = 3


class RejectUserReason(IntEnum):
    """Byte 10 when the source is the service-user."""

    NO_REASON_GIVEN = 1
    APPLICATION_CONTEXT_NAME_NOT_SUPPORTED = 2
    CALLING_AE_TITLE_NOT_RECOGNIZED = 3
    CALLED_AE_TITLE_NOT_RECOGNIZED = 7


class RejectACSEReason(IntEnum):
    """Byte 10 when the source is the service-provider (ACSE related)."""

    NO_REASON_GIVEN = 1
    PROTOCOL_VERSION_NOT_SUPPORTED = 2


class RejectPresentationReason(IntEnum):
    """Byte 10 when the source is the service-provider (presentation related)."""

    TEMPORARY_CONGESTION = 1
    LOCAL_LIMIT_EXCEEDED = 2


REJECT_REASONS: dict[RejectSource, type[IntEnum]] = {
    RejectSource.SERVICE_USER: RejectUserReason,
    RejectSource.SERVICE_PROVIDER_ACSE: RejectACSEReason,
    RejectSource.SERVICE_PROVIDER_PRESENTATION: RejectPresentationReason,
}


class AbortSource(IntEnum):
    """A-ABORT byte 9 (Table 9-26); 1 is reserved."""

    SERVICE_USER = 0
    SERVICE_PROVIDER = 2


class AbortReason(IntEnum):
    """A-ABORT byte 10; significant only when the source is the service-provider (3 is reserved)."""

    REASON_NOT_SPECIFIED = 0
    UNRECOGNIZED_PDU = 1
    UNEXPECTED_PDU = 2
    UNRECOGNIZED_PDU_PARAMETER = 4
    UNEXPECTED_PDU_PARAMETER = 5
    INVALID_PDU_PARAMETER_VALUE = 6


class ContextResult(IntEnum):
    """Presentation context result/reason in an A-ASSOCIATE-AC (Table 9-18)."""

    ACCEPTANCE = 0
    USER_REJECTION = 1
    NO_REASON = 2
    ABSTRACT_SYNTAX_NOT_SUPPORTED = 3
    TRANSFER_SYNTAXES_NOT_SUPPORTED = 4


class UserIdentityType(IntEnum):
    """User identity negotiation (PS3.7 D.3.3.7)."""

    USERNAME = 1
    USERNAME_AND_PASSCODE = 2
    KERBEROS = 3
    SAML = 4
    JWT = 5


@attrs.frozen(kw_only=True)
class Rejection:
    """The three codes of an A-ASSOCIATE-RJ, before it becomes a PDU."""

    result: int
    source: int
    reason: int


def as_enum(enum: type[IntEnum], value: int) -> int:
    """The enum member for value if the standard names it, else the bare int."""
    try:
        return enum(value)
    except ValueError:
        return value

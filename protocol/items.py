"""Items and user-information sub-items of the association PDUs (PS3.8 9.3.2-9.3.3, Annex D;
PS3.7 D.3.3). Frozen values; `encode()` returns the item with its 4-byte header.

Decoding lives in decoder.py. Encoding checks what would otherwise go on the wire
malformed and raises LocalProtocolError: building a PDU is our own user's act.
"""

import re
import struct

import attrs

from .codes import DICOM_APPLICATION_CONTEXT, ContextResult, ItemType
from .errors import LocalProtocolError
from .uid import is_valid_uid

_ITEM_HEADER = struct.Struct(">BxH")  # item type, reserved, item length
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">L")
MAX_ITEM_LENGTH = 0xFFFF

# AE titles (PS3.5 AE VR): 16 bytes of the default repertoire, no backslash, no controls.
AE_TITLE_LENGTH = 16
_AE_TITLE = re.compile(r"[\x20-\x5b\x5d-\x7e]{1,16}")
# Implementation version name: 1-16 characters of ISO 646 (printable ASCII).
_VERSION_NAME = re.compile(r"[\x20-\x7e]{1,16}")


def is_valid_ae_title(title: str) -> bool:
    """True if title (leading/trailing spaces are not significant) fits an AE title field."""
    return _AE_TITLE.fullmatch(title) is not None and title.strip(" ") != ""


def is_valid_version_name(name: str) -> bool:
    return _VERSION_NAME.fullmatch(name) is not None


def encode_item(item_type: int, body: bytes) -> bytes:
    if len(body) > MAX_ITEM_LENGTH:
        raise LocalProtocolError(f"item {item_type:#04x} is {len(body)} bytes, over the 16-bit length")
    return _ITEM_HEADER.pack(item_type, len(body)) + body


def encode_ae_title(title: str, field: str) -> bytes:
    if not is_valid_ae_title(title):
        raise LocalProtocolError(f"{field} {title!r} is not a valid AE title")
    return title.encode("ascii").ljust(AE_TITLE_LENGTH, b" ")


def encode_uid(uid: str, field: str) -> bytes:
    if not is_valid_uid(uid):
        raise LocalProtocolError(f"{field} {uid!r} is not a valid UID")
    return uid.encode("ascii")


def _u16_prefixed(data: bytes, field: str) -> bytes:
    if len(data) > 0xFFFF:
        raise LocalProtocolError(f"{field} is {len(data)} bytes, over its 16-bit length")
    return _U16.pack(len(data)) + data


def _byte(value: int, field: str) -> bytes:
    if not 0 <= value <= 0xFF:
        raise LocalProtocolError(f"{field} {value} does not fit in one byte")
    return bytes((value,))


def _context_id(value: int) -> bytes:
    if not (1 <= value <= 255 and value & 1):
        raise LocalProtocolError(f"presentation context ID {value} is not an odd number in 1..255")
    return bytes((value,))


# --- items of the A-ASSOCIATE-RQ/AC variable field ---------------------------------


@attrs.frozen(kw_only=True)
class ApplicationContext:
    """Application context item (10H)."""

    name: str = DICOM_APPLICATION_CONTEXT

    def encode(self) -> bytes:
        return encode_item(ItemType.APPLICATION_CONTEXT, encode_uid(self.name, "application context name"))


@attrs.frozen(kw_only=True)
class AbstractSyntax:
    """Abstract syntax sub-item (30H) of a proposed presentation context."""

    name: str

    def encode(self) -> bytes:
        return encode_item(ItemType.ABSTRACT_SYNTAX, encode_uid(self.name, "abstract syntax"))


@attrs.frozen(kw_only=True)
class TransferSyntax:
    """Transfer syntax sub-item (40H)."""

    name: str

    def encode(self) -> bytes:
        return encode_item(ItemType.TRANSFER_SYNTAX, encode_uid(self.name, "transfer syntax"))


@attrs.frozen(kw_only=True)
class PresentationContextRQ:
    """Presentation context item (20H): one abstract syntax, one or more transfer syntaxes."""

    context_id: int
    abstract_syntax: str
    transfer_syntaxes: tuple[str, ...]

    def encode(self) -> bytes:
        if not self.transfer_syntaxes:
            raise LocalProtocolError(f"presentation context {self.context_id} proposes no transfer syntax")
        parts = [_context_id(self.context_id), b"\x00\x00\x00", AbstractSyntax(name=self.abstract_syntax).encode()]
        parts += [TransferSyntax(name=ts).encode() for ts in self.transfer_syntaxes]
        return encode_item(ItemType.PRESENTATION_CONTEXT_RQ, b"".join(parts))


@attrs.frozen(kw_only=True)
class PresentationContextAC:
    """Presentation context item (21H) of the reply: a result and, if accepted, one transfer syntax.

    When the result is not acceptance the transfer syntax is not significant (receivers
    do not test it); it may then be "" and is sent as an empty sub-item.
    """

    context_id: int
    result: int
    transfer_syntax: str = ""

    @property
    def accepted(self) -> bool:
        return self.result == ContextResult.ACCEPTANCE

    def encode(self) -> bytes:
        if self.accepted:
            ts_item = TransferSyntax(name=self.transfer_syntax).encode()
        else:
            ts_item = encode_item(ItemType.TRANSFER_SYNTAX, self.transfer_syntax.encode("latin-1"))
        body = _context_id(self.context_id) + b"\x00" + _byte(self.result, "result/reason") + b"\x00" + ts_item
        return encode_item(ItemType.PRESENTATION_CONTEXT_AC, body)


# --- user information sub-items (PS3.8 Annex D, PS3.7 D.3.3) -------------------------


@attrs.frozen(kw_only=True)
class MaximumLength:
    """Maximum length sub-item (51H): the largest P-DATA-TF variable field we accept; 0 = no limit."""

    maximum_length: int

    def encode(self) -> bytes:
        if not 0 <= self.maximum_length <= 0xFFFFFFFF:
            raise LocalProtocolError(f"maximum length {self.maximum_length} does not fit 32 bits")
        return encode_item(ItemType.MAXIMUM_LENGTH, _U32.pack(self.maximum_length))


@attrs.frozen(kw_only=True)
class ImplementationClassUID:
    """Implementation class UID sub-item (52H)."""

    uid: str

    def encode(self) -> bytes:
        return encode_item(ItemType.IMPLEMENTATION_CLASS_UID, encode_uid(self.uid, "implementation class UID"))


@attrs.frozen(kw_only=True)
class ImplementationVersionName:
    """Implementation version name sub-item (55H): 1-16 printable ASCII characters."""

    name: str

    def encode(self) -> bytes:
        if not is_valid_version_name(self.name):
            raise LocalProtocolError(f"implementation version name {self.name!r} is not 1-16 ASCII characters")
        return encode_item(ItemType.IMPLEMENTATION_VERSION_NAME, self.name.encode("ascii"))


@attrs.frozen(kw_only=True)
class AsyncOpsWindow:
    """Asynchronous operations window sub-item (53H); 0 means unlimited."""

    max_invoked: int = 1
    max_performed: int = 1

    def encode(self) -> bytes:
        if not (0 <= self.max_invoked <= 0xFFFF and 0 <= self.max_performed <= 0xFFFF):
            raise LocalProtocolError("asynchronous operations window values must fit 16 bits")
        return encode_item(ItemType.ASYNC_OPS_WINDOW, _U16.pack(self.max_invoked) + _U16.pack(self.max_performed))


@attrs.frozen(kw_only=True)
class RoleSelection:
    """SCP/SCU role selection sub-item (54H) for one SOP class.

    In a request the flags say which roles the requestor proposes for itself; in the
    reply they say which of those the acceptor agrees to.
    """

    sop_class_uid: str
    scu_role: bool
    scp_role: bool

    def encode(self) -> bytes:
        uid = _u16_prefixed(encode_uid(self.sop_class_uid, "role selection SOP class"), "SOP class UID")
        return encode_item(ItemType.ROLE_SELECTION, uid + bytes((int(self.scu_role), int(self.scp_role))))


@attrs.frozen(kw_only=True)
class SOPClassExtendedNegotiation:
    """SOP class extended negotiation sub-item (56H): opaque service-class application information."""

    sop_class_uid: str
    application_information: bytes = b""

    def encode(self) -> bytes:
        uid = _u16_prefixed(encode_uid(self.sop_class_uid, "extended negotiation SOP class"), "SOP class UID")
        return encode_item(ItemType.SOP_CLASS_EXTENDED_NEGOTIATION, uid + bytes(self.application_information))


@attrs.frozen(kw_only=True)
class SOPClassCommonExtendedNegotiation:
    """SOP class common extended negotiation sub-item (57H, sub-item version 0)."""

    sop_class_uid: str
    service_class_uid: str
    related_general_sop_classes: tuple[str, ...] = ()

    def encode(self) -> bytes:
        related = b"".join(
            _u16_prefixed(encode_uid(uid, "related general SOP class"), "UID") for uid in self.related_general_sop_classes
        )
        body = (
            _u16_prefixed(encode_uid(self.sop_class_uid, "common extended negotiation SOP class"), "SOP class UID")
            + _u16_prefixed(encode_uid(self.service_class_uid, "service class"), "service class UID")
            + _u16_prefixed(related, "related general SOP class identification")
        )
        return encode_item(ItemType.SOP_CLASS_COMMON_EXTENDED_NEGOTIATION, body)


@attrs.frozen(kw_only=True)
class UserIdentityRQ:
    """User identity negotiation sub-item of the request (58H).

    identity_type is a UserIdentityType value (kept as int for types newer than ours);
    the secondary field is the passcode, used only with USERNAME_AND_PASSCODE.
    """

    identity_type: int
    positive_response_requested: bool
    primary_field: bytes
    secondary_field: bytes = b""

    def encode(self) -> bytes:
        body = (
            _byte(self.identity_type, "user identity type")
            + bytes((int(self.positive_response_requested),))
            + _u16_prefixed(bytes(self.primary_field), "primary field")
            + _u16_prefixed(bytes(self.secondary_field), "secondary field")
        )
        return encode_item(ItemType.USER_IDENTITY_RQ, body)


@attrs.frozen(kw_only=True)
class UserIdentityAC:
    """User identity negotiation sub-item of the reply (59H): the server response."""

    server_response: bytes = b""

    def encode(self) -> bytes:
        return encode_item(ItemType.USER_IDENTITY_AC, _u16_prefixed(bytes(self.server_response), "server response"))


@attrs.frozen(kw_only=True)
class UnknownSubItem:
    """A user information sub-item of a type we do not know: kept, re-encoded as is, otherwise ignored."""

    item_type: int
    data: bytes

    def encode(self) -> bytes:
        return encode_item(_byte(self.item_type, "sub-item type")[0], bytes(self.data))


@attrs.frozen(kw_only=True)
class UserInformation:
    """User information item (50H): the sub-items, each kind in its own field.

    Sub-items are encoded in ascending order of type, which some older peers expect.
    """

    maximum_length: MaximumLength | None = None
    implementation_class_uid: ImplementationClassUID | None = None
    async_ops_window: AsyncOpsWindow | None = None
    role_selections: tuple[RoleSelection, ...] = ()
    implementation_version_name: ImplementationVersionName | None = None
    extended_negotiations: tuple[SOPClassExtendedNegotiation, ...] = ()
    common_extended_negotiations: tuple[SOPClassCommonExtendedNegotiation, ...] = ()
    user_identity: UserIdentityRQ | None = None
    user_identity_response: UserIdentityAC | None = None
    unknown: tuple[UnknownSubItem, ...] = ()

    @property
    def max_pdu_length(self) -> int:
        """The maximum P-DATA-TF variable field length the sender accepts; 0 = unlimited or absent."""
        return self.maximum_length.maximum_length if self.maximum_length is not None else 0

    def sub_items(self) -> list:
        singles = (
            self.maximum_length,
            self.implementation_class_uid,
            self.async_ops_window,
        )
        items: list = [s for s in singles if s is not None]
        items += self.role_selections
        if self.implementation_version_name is not None:
            items.append(self.implementation_version_name)
        items += self.extended_negotiations
        items += self.common_extended_negotiations
        items += [s for s in (self.user_identity, self.user_identity_response) if s is not None]
        items += self.unknown
        return items

    def encode(self) -> bytes:
        return encode_item(ItemType.USER_INFORMATION, b"".join(item.encode() for item in self.sub_items()))

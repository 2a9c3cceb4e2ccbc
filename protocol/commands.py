"""DIMSE messages: one frozen class per command set (PS3.7 sections 9.3 and 10.3).

Every class knows its Command Field and whether a data set follows it, encodes itself to
a group 0000 command set (implicit VR little endian, Command Group Length first) with
`encode()`, and `decode(data)` turns received bytes back into the right class.

Rules:
- Fields PS3.7 marks mandatory are required on decode; a missing one, a value of the
  wrong size or characters, or a Command Data Set Type contradicting the message is a
  `RemoteProtocolError` naming the element. Building a message with bad values locally
  raises `LocalProtocolError` through the same checks.
- Elements we do not know (retired ones, private groups) are skipped on decode.
- `has_dataset` says whether a data set follows. It is fixed for messages that must or
  must not carry one, and a constructor argument for the others.
"""

import enum
from typing import Any, ClassVar

import attrs

from . import elements as el
from .elements import VR
from .errors import LocalProtocolError, RemoteProtocolError

NO_DATASET = 0x0101  # Command Data Set Type "null"; any other value means a data set follows
DATASET_PRESENT = 0x0001  # what we send when one does (DCMTK sends the same)


class Priority(enum.IntEnum):
    MEDIUM = 0x0000
    HIGH = 0x0001
    LOW = 0x0002


class DatasetRule(enum.Enum):
    REQUIRED = "required"
    FORBIDDEN = "forbidden"
    OPTIONAL = "optional"


_SPEC = "triopacs.dimse"  # attrs metadata key: (tag, VR, required on the wire)


def _check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    tag, vr, required = attribute.metadata[_SPEC]
    if value is None:
        if required:
            raise LocalProtocolError(f"{type(instance).__name__}: {el.tag_label(tag)} is required")
        return
    problem = el.check_value(vr, value)
    if problem is not None:
        raise LocalProtocolError(f"{type(instance).__name__}: {el.tag_label(tag)} {problem}")


def _strip_text(value: Any) -> Any:
    return value.strip(" ") if isinstance(value, str) else value


def _element(tag: int, *, required: bool = True, default: Any = attrs.NOTHING) -> Any:
    """An attrs field bound to a command element. Optional elements default to None."""
    vr = el.COMMAND_DICTIONARY[tag][1]
    if default is attrs.NOTHING and not required:
        default = None
    return attrs.field(
        default=default,
        validator=_check,
        converter=_strip_text if vr in (VR.AE, VR.LO, VR.CS) else None,
        metadata={_SPEC: (tag, vr, required)},
    )


def _to_priority(value: Any) -> Any:
    try:
        return Priority(value)
    except ValueError:
        return value  # left for the validator to report with the tag


def _check_priority(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    _check(instance, attribute, value)
    if not isinstance(value, Priority):
        raise LocalProtocolError(
            f"{type(instance).__name__}: {el.tag_label(el.PRIORITY)} {value} is not 0, 1 or 2"
        )


def _priority() -> Any:
    return attrs.field(
        default=Priority.MEDIUM,
        converter=_to_priority,
        validator=_check_priority,
        metadata={_SPEC: (el.PRIORITY, VR.US, True)},
    )


def _has_dataset_flag() -> Any:
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if not isinstance(value, bool):
            raise LocalProtocolError(f"{type(instance).__name__}: has_dataset must be a bool")

    return attrs.field(default=False, validator=check)


# --- the messages -----------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class DimseMessage:
    """Base of every command set. Subclasses set the class attributes below."""

    command_field: ClassVar[int]
    dataset_rule: ClassVar[DatasetRule]
    has_dataset: ClassVar[bool]  # an instance field on messages with an optional data set
    # (tag, attribute name, VR, required) in tag order, filled in by _message(); the two
    # computed elements use the pseudo-names "command_field" and "_data_set_type".
    _layout: ClassVar[tuple[tuple[int, str, VR, bool], ...]] = ()

    def encode(self) -> bytes:
        """The command set, Command Group Length first, elements in ascending tag order."""
        parts = []
        for tag, name, vr, _ in self._layout:
            if name == "command_field":
                value = self.command_field
            elif name == "_data_set_type":
                value = DATASET_PRESENT if self.has_dataset else NO_DATASET
            else:
                value = getattr(self, name)
                if value is None:
                    continue
            parts.append(el.ENCODERS[vr](0, tag & 0xFFFF, value))
        body = b"".join(parts)
        return el.encode_group_length(len(body)) + body


@attrs.frozen(kw_only=True)
class DimseRequest(DimseMessage):
    message_id: int = _element(el.MESSAGE_ID)


@attrs.frozen(kw_only=True)
class DimseResponse(DimseMessage):
    """Fields every response may carry; the error fields are Annex C's optional
    details for Warning and Failure statuses."""

    message_id_being_responded_to: int = _element(el.MESSAGE_ID_BEING_RESPONDED_TO)
    status: int = _element(el.STATUS)
    affected_sop_class_uid: str | None = _element(el.AFFECTED_SOP_CLASS_UID, required=False)
    offending_element: tuple[int, ...] | None = _element(el.OFFENDING_ELEMENT, required=False)
    error_comment: str | None = _element(el.ERROR_COMMENT, required=False)
    error_id: int | None = _element(el.ERROR_ID, required=False)


MESSAGE_TYPES: dict[int, type[DimseMessage]] = {}


def _message(command_field: int, rule: DatasetRule, response: type | None = None):
    """Register a message class under its Command Field and precompute its layout."""

    def register(cls: type[DimseMessage]) -> type[DimseMessage]:
        cls.command_field = command_field
        cls.dataset_rule = rule
        if rule is not DatasetRule.OPTIONAL:
            cls.has_dataset = rule is DatasetRule.REQUIRED
        layout = [(el.COMMAND_FIELD, "command_field", VR.US, True)]
        layout.append((el.COMMAND_DATA_SET_TYPE, "_data_set_type", VR.US, True))
        for field in attrs.fields(cls):
            if _SPEC in field.metadata:
                tag, vr, required = field.metadata[_SPEC]
                layout.append((tag, field.name, vr, required))
        cls._layout = tuple(sorted(layout))
        if response is not None:
            cls.response_type = response
        assert command_field not in MESSAGE_TYPES
        MESSAGE_TYPES[command_field] = cls
        return cls

    return register


# C-ECHO (PS3.7 9.3.5)


@_message(0x8030, DatasetRule.FORBIDDEN)
@attrs.frozen(kw_only=True)
class CEchoRSP(DimseResponse):
    pass


@_message(0x0030, DatasetRule.FORBIDDEN, CEchoRSP)
@attrs.frozen(kw_only=True)
class CEchoRQ(DimseRequest):
    affected_sop_class_uid: str = _element(el.AFFECTED_SOP_CLASS_UID)


# C-STORE (PS3.7 9.3.1)


@_message(0x8001, DatasetRule.FORBIDDEN)
@attrs.frozen(kw_only=True)
class CStoreRSP(DimseResponse):
    affected_sop_instance_uid: str | None = _element(el.AFFECTED_SOP_INSTANCE_UID, required=False)


@_message(0x0001, DatasetRule.REQUIRED, CStoreRSP)
@attrs.frozen(kw_only=True)
class CStoreRQ(DimseRequest):
    affected_sop_class_uid: str = _element(el.AFFECTED_SOP_CLASS_UID)
    affected_sop_instance_uid: str = _element(el.AFFECTED_SOP_INSTANCE_UID)
    priority: Priority = _priority()
    # Set when this store is a sub-operation of a C-MOVE (PS3.7 9.1.1.1.7-8).
    move_originator_ae_title: str | None = _element(el.MOVE_ORIGINATOR_AE_TITLE, required=False)
    move_originator_message_id: int | None = _element(
        el.MOVE_ORIGINATOR_MESSAGE_ID, required=False
    )


# C-FIND (PS3.7 9.3.2)


@_message(0x8020, DatasetRule.OPTIONAL)
@attrs.frozen(kw_only=True)
class CFindRSP(DimseResponse):
    has_dataset: bool = _has_dataset_flag()  # the matched Identifier, with Pending


@_message(0x0020, DatasetRule.REQUIRED, CFindRSP)
@attrs.frozen(kw_only=True)
class CFindRQ(DimseRequest):
    affected_sop_class_uid: str = _element(el.AFFECTED_SOP_CLASS_UID)
    priority: Priority = _priority()


# C-GET and C-MOVE (PS3.7 9.3.3, 9.3.4)


@attrs.frozen(kw_only=True)
class _SubOperationCounts(DimseResponse):
    """C-GET/C-MOVE responses: counts of the C-STORE sub-operations (conditional)."""

    remaining_suboperations: int | None = _element(
        el.NUMBER_OF_REMAINING_SUBOPERATIONS, required=False
    )
    completed_suboperations: int | None = _element(
        el.NUMBER_OF_COMPLETED_SUBOPERATIONS, required=False
    )
    failed_suboperations: int | None = _element(el.NUMBER_OF_FAILED_SUBOPERATIONS, required=False)
    warning_suboperations: int | None = _element(
        el.NUMBER_OF_WARNING_SUBOPERATIONS, required=False
    )
    # An Identifier listing Failed SOP Instance UIDs may follow (PS3.4 C.4.2.1.5).
    has_dataset: bool = _has_dataset_flag()


@_message(0x8010, DatasetRule.OPTIONAL)
@attrs.frozen(kw_only=True)
class CGetRSP(_SubOperationCounts):
    pass


@_message(0x0010, DatasetRule.REQUIRED, CGetRSP)
@attrs.frozen(kw_only=True)
class CGetRQ(DimseRequest):
    affected_sop_class_uid: str = _element(el.AFFECTED_SOP_CLASS_UID)
    priority: Priority = _priority()


@_message(0x8021, DatasetRule.OPTIONAL)
@attrs.frozen(kw_only=True)
class CMoveRSP(_SubOperationCounts):
    pass


@_message(0x0021, DatasetRule.REQUIRED, CMoveRSP)
@attrs.frozen(kw_only=True)
class CMoveRQ(DimseRequest):
    affected_sop_class_uid: str = _element(el.AFFECTED_SOP_CLASS_UID)
    move_destination: str = _element(el.MOVE_DESTINATION)
    priority: Priority = _priority()


# C-CANCEL (PS3.7 9.3.2.3, 9.3.3.3, 9.3.4.3): one Command Field for FIND, GET and MOVE.


@_message(0x0FFF, DatasetRule.FORBIDDEN)
@attrs.frozen(kw_only=True)
class CCancelRQ(DimseMessage):
    message_id_being_responded_to: int = _element(el.MESSAGE_ID_BEING_RESPONDED_TO)


# DIMSE-N responses share the Annex C Attribute Identifier List and the affected instance.


@attrs.frozen(kw_only=True)
class _NResponse(DimseResponse):
    affected_sop_instance_uid: str | None = _element(el.AFFECTED_SOP_INSTANCE_UID, required=False)
    attribute_identifier_list: tuple[int, ...] | None = _element(
        el.ATTRIBUTE_IDENTIFIER_LIST, required=False
    )


# N-EVENT-REPORT (PS3.7 10.3.1)


@_message(0x8100, DatasetRule.OPTIONAL)
@attrs.frozen(kw_only=True)
class NEventReportRSP(_NResponse):
    event_type_id: int | None = _element(el.EVENT_TYPE_ID, required=False)
    has_dataset: bool = _has_dataset_flag()  # Event Reply


@_message(0x0100, DatasetRule.OPTIONAL, NEventReportRSP)
@attrs.frozen(kw_only=True)
class NEventReportRQ(DimseRequest):
    affected_sop_class_uid: str = _element(el.AFFECTED_SOP_CLASS_UID)
    affected_sop_instance_uid: str = _element(el.AFFECTED_SOP_INSTANCE_UID)
    event_type_id: int = _element(el.EVENT_TYPE_ID)
    has_dataset: bool = _has_dataset_flag()  # Event Information


# N-GET (PS3.7 10.3.2)


@_message(0x8110, DatasetRule.OPTIONAL)
@attrs.frozen(kw_only=True)
class NGetRSP(_NResponse):
    has_dataset: bool = _has_dataset_flag()  # Attribute List


@_message(0x0110, DatasetRule.FORBIDDEN, NGetRSP)
@attrs.frozen(kw_only=True)
class NGetRQ(DimseRequest):
    requested_sop_class_uid: str = _element(el.REQUESTED_SOP_CLASS_UID)
    requested_sop_instance_uid: str = _element(el.REQUESTED_SOP_INSTANCE_UID)
    attribute_identifier_list: tuple[int, ...] | None = _element(
        el.ATTRIBUTE_IDENTIFIER_LIST, required=False
    )


# N-SET (PS3.7 10.3.3)


@_message(0x8120, DatasetRule.OPTIONAL)
@attrs.frozen(kw_only=True)
class NSetRSP(_NResponse):
    has_dataset: bool = _has_dataset_flag()  # Attribute List


@_message(0x0120, DatasetRule.REQUIRED, NSetRSP)
@attrs.frozen(kw_only=True)
class NSetRQ(DimseRequest):
    requested_sop_class_uid: str = _element(el.REQUESTED_SOP_CLASS_UID)
    requested_sop_instance_uid: str = _element(el.REQUESTED_SOP_INSTANCE_UID)


# N-ACTION (PS3.7 10.3.4)


@_message(0x8130, DatasetRule.OPTIONAL)
@attrs.frozen(kw_only=True)
class NActionRSP(_NResponse):
    action_type_id: int | None = _element(el.ACTION_TYPE_ID, required=False)
    has_dataset: bool = _has_dataset_flag()  # Action Reply


@_message(0x0130, DatasetRule.OPTIONAL, NActionRSP)
@attrs.frozen(kw_only=True)
class NActionRQ(DimseRequest):
    requested_sop_class_uid: str = _element(el.REQUESTED_SOP_CLASS_UID)
    requested_sop_instance_uid: str = _element(el.REQUESTED_SOP_INSTANCE_UID)
    action_type_id: int = _element(el.ACTION_TYPE_ID)
    has_dataset: bool = _has_dataset_flag()  # Action Information


# N-CREATE (PS3.7 10.3.5)


@_message(0x8140, DatasetRule.OPTIONAL)
@attrs.frozen(kw_only=True)
class NCreateRSP(_NResponse):
    has_dataset: bool = _has_dataset_flag()  # Attribute List


@_message(0x0140, DatasetRule.OPTIONAL, NCreateRSP)
@attrs.frozen(kw_only=True)
class NCreateRQ(DimseRequest):
    affected_sop_class_uid: str = _element(el.AFFECTED_SOP_CLASS_UID)
    # Optional: the SCP assigns the instance UID when the SCU leaves it out.
    affected_sop_instance_uid: str | None = _element(el.AFFECTED_SOP_INSTANCE_UID, required=False)
    has_dataset: bool = _has_dataset_flag()  # Attribute List


# N-DELETE (PS3.7 10.3.6)


@_message(0x8150, DatasetRule.FORBIDDEN)
@attrs.frozen(kw_only=True)
class NDeleteRSP(_NResponse):
    pass


@_message(0x0150, DatasetRule.FORBIDDEN, NDeleteRSP)
@attrs.frozen(kw_only=True)
class NDeleteRQ(DimseRequest):
    requested_sop_class_uid: str = _element(el.REQUESTED_SOP_CLASS_UID)
    requested_sop_instance_uid: str = _element(el.REQUESTED_SOP_INSTANCE_UID)


# --- decoding ---------------------------------------------------------------------------


def _fail(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"malformed command set: {message}")


def decode(data: bytes | bytearray | memoryview) -> DimseMessage:
    """Decode a whole command set; any defect raises RemoteProtocolError."""
    try:
        elements, group_bytes = el.split_elements(bytes(data))
    except ValueError as exc:
        raise _fail(str(exc)) from None

    raw_length = elements.get(el.COMMAND_GROUP_LENGTH)
    if raw_length is not None:
        # Absent is tolerated (PS3.7 requires it, but its value tells us nothing we need);
        # present and wrong means the peer's framing is broken.
        length = _decode(el.COMMAND_GROUP_LENGTH, VR.UL, raw_length)
        if length != group_bytes:
            raise _fail(
                f"{el.tag_label(el.COMMAND_GROUP_LENGTH)} says {length} bytes,"
                f" the group has {group_bytes}"
            )

    command_field = _required_us(elements, el.COMMAND_FIELD, "command set")
    cls = MESSAGE_TYPES.get(command_field)
    if cls is None:
        raise _fail(f"{el.tag_label(el.COMMAND_FIELD)} 0x{command_field:04X} is no DIMSE message")
    name = cls.__name__

    data_set_type = _required_us(elements, el.COMMAND_DATA_SET_TYPE, name)
    present = data_set_type != NO_DATASET
    kwargs: dict[str, Any] = {}
    if cls.dataset_rule is DatasetRule.OPTIONAL:
        kwargs["has_dataset"] = present
    elif present != cls.has_dataset:
        wanted = "requires a data set" if cls.has_dataset else "carries no data set"
        raise _fail(
            f"{name} {wanted}, but {el.tag_label(el.COMMAND_DATA_SET_TYPE)}"
            f" is 0x{data_set_type:04X}"
        )

    for tag, attr, vr, required in cls._layout:
        if attr[0] == "_" or attr == "command_field":
            continue
        raw = elements.get(tag)
        if raw is None or (not raw and vr is not VR.US):  # an empty text value is no value
            if required:
                raise _fail(f"{name} lacks {el.tag_label(tag)}")
            continue
        kwargs[attr] = _decode(tag, vr, raw)
    try:
        return cls(**kwargs)
    except LocalProtocolError as exc:
        raise _fail(str(exc)) from None


def _decode(tag: int, vr: VR, raw: bytes) -> Any:
    try:
        return el.DECODERS[vr](raw)
    except ValueError as exc:
        raise _fail(f"{el.tag_label(tag)}: {exc}") from None


def _required_us(elements: dict[int, bytes], tag: int, where: str) -> int:
    raw = elements.get(tag)
    if raw is None:
        raise _fail(f"{where} lacks {el.tag_label(tag)}")
    return _decode(tag, VR.US, raw)

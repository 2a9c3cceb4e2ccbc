"""DIMSE messages: one frozen class per command set (PS3.7 sections 9.3 and 10.3).

Every class knows its Command Field and whether a data set follows it, encodes itself to
a group 0000 command set (implicit VR little endian, Command Group Length first) with
`encode()`, and `decode(data)` turns received bytes back into the right class.

Rules:
- Fields PS3.7 marks mandatory are required on decode; a missing one, a value of the
  wrong size or characters, or a Command Data Set Type contradicting the message is a
  `RemoteProtocolError` naming the element. Building a message with bad values locally
  raises `LocalProtocolError` through the same checks.
- Except the SOP class/instance UIDs and the event/action type of N-requests: a request
  lacking one decodes with None there (`missing_required` names them), and an N-SET
  without a data set or an N-GET/N-DELETE with one decodes (`dataset_out_of_place`
  says what is wrong), so the receiver answers it with a PS3.7 status and the
  association goes on.
- Elements we do not know (retired ones, private groups) are skipped on decode.
- `has_dataset` says whether a data set follows. It is fixed for messages that must or
  must not carry one, and a constructor argument for the others.
"""

import enum
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

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


class _Spec(NamedTuple):
    """What ties an attrs field to its command element (kept in the field's metadata)."""

    tag: int
    vr: VR
    required: bool  # on the wire: decode fails without it, whatever the Python default


_SPEC = "triopacs.dimse"


def _validator(spec: _Spec, extra: Callable[[Any], str | None] | None = None):
    check = el.CHECKERS[spec.vr]

    def validate(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value is None:
            problem = "is required" if spec.required else None
        else:
            problem = check(value) or (extra(value) if extra else None)
        if problem:
            raise LocalProtocolError(f"{type(instance).__name__}: {el.tag_label(spec.tag)} {problem}")

    return validate


def _strip_text(value: Any) -> Any:
    return value.strip(" ") if isinstance(value, str) else value


def printable_comment(value: Any) -> Any:
    """An Error Comment as LO allows it: at most 64 characters of the default repertoire,
    no backslash. Whatever a failure's description holds (a peer's raw bytes, a long
    path) is made to fit, so that answering with it can never fail."""
    if not isinstance(value, str):
        return value
    text = "".join(c if " " <= c <= "~" and c != "\\" else "?" for c in value[:64]).strip(" ")
    return text or None


# Metadata flag of a required element whose absence on the wire is answered with a
# status by the receiver rather than refused by the decoder (see `missing_required`).
_ANSWERED = "triopacs.dimse.answered-when-missing"


def _element(
    tag: int, *, required: bool = True, converter: Callable[[Any], Any] | None = None, answered: bool = False
) -> Any:
    """An attrs field bound to a command element. Optional elements default to None.

    `answered`: a required element the decoder lets be absent (the field is then None),
    so that the receiver answers the request with a status naming it (PS3.7 Annex C)
    instead of aborting the association. Building such a message locally still needs it.
    """
    spec = _Spec(tag, el.COMMAND_DICTIONARY[tag][1], required)
    if converter is None and spec.vr in (VR.AE, VR.LO, VR.CS):
        converter = _strip_text
    return attrs.field(
        default=attrs.NOTHING if required else None,
        validator=_validator(spec),
        converter=converter,
        metadata={_SPEC: spec, _ANSWERED: answered},
    )


_PRIORITIES = {int(p): p for p in Priority}
_decode_us = el.DECODERS[VR.US]
_decode_ul = el.DECODERS[VR.UL]


def _to_priority(value: Any) -> Any:
    # An invalid value is left as it is, for the validator to report with the tag.
    return _PRIORITIES.get(value, value) if isinstance(value, int) else value


def _priority() -> Any:
    spec = _Spec(el.PRIORITY, VR.US, True)
    return attrs.field(
        default=Priority.MEDIUM,
        converter=_to_priority,
        validator=_validator(spec, lambda v: None if v in _PRIORITIES else f"{v} is not 0, 1 or 2"),
        metadata={_SPEC: spec},
    )


def _decode_priority(raw: bytes) -> Priority:
    value = _decode_us(raw)
    if value not in _PRIORITIES:
        raise ValueError(f"{value} is not 0, 1 or 2")
    return _PRIORITIES[value]


def _has_dataset_flag(default: bool = False) -> Any:
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if not isinstance(value, bool):
            raise LocalProtocolError(f"{type(instance).__name__}: has_dataset must be a bool")

    return attrs.field(default=default, validator=check)


# --- the messages -----------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class DimseMessage:
    """Base of every command set. Subclasses set the class attributes below."""

    command_field: ClassVar[int]
    dataset_rule: ClassVar[DatasetRule]
    # What PS3.7 says of the data set; differs from dataset_rule (then OPTIONAL, what
    # the decoder enforces) for the N-requests whose receiver answers a misplaced data
    # set with a status (`dataset_out_of_place`) instead of aborting.
    dataset_expected: ClassVar[DatasetRule]
    has_dataset: ClassVar[bool]  # an instance field on messages with an optional data set
    _optional_dataset: ClassVar[bool]
    # Precomputed by _message(): (element number, attribute or None, encoder) in tag
    # order, None standing for the computed Command Field and Data Set Type; and
    # (tag, attribute, decoder, required, default) for decode().
    _encode_plan: ClassVar[tuple[tuple[int, str | None, Callable[[int, Any], bytes]], ...]]
    _decode_plan: ClassVar[tuple[tuple[int, str, Callable[[bytes], Any], bool, Any], ...]]

    def encode(self) -> bytes:
        """The command set, Command Group Length first, elements in ascending tag order."""
        parts = []
        for element, name, encoder in self._encode_plan:
            if name is None:
                if element == el.COMMAND_FIELD:
                    value = self.command_field
                else:
                    value = DATASET_PRESENT if self.has_dataset else NO_DATASET
            else:
                value = getattr(self, name)
                if value is None:
                    continue
            parts.append(encoder(element, value))
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
    error_comment: str | None = _element(el.ERROR_COMMENT, required=False, converter=printable_comment)
    error_id: int | None = _element(el.ERROR_ID, required=False)


MESSAGE_TYPES: dict[int, type[DimseMessage]] = {}


def _message(command_field: int, rule: DatasetRule, response: type | None = None, *, expected: DatasetRule | None = None):
    """Register a message class under its Command Field and precompute its plans."""

    def register(cls: type[DimseMessage]) -> type[DimseMessage]:
        cls.command_field = command_field
        cls.dataset_rule = rule
        cls.dataset_expected = expected or rule
        cls._optional_dataset = rule is DatasetRule.OPTIONAL
        if rule is not DatasetRule.OPTIONAL:
            cls.has_dataset = rule is DatasetRule.REQUIRED
        us = el.ENCODERS[VR.US]
        encode_plan = [(el.COMMAND_FIELD, None, us), (el.COMMAND_DATA_SET_TYPE, None, us)]
        decode_plan = []
        for field in attrs.fields(cls):
            spec = field.metadata.get(_SPEC)
            if spec is None:
                continue
            encode_plan.append((spec.tag, field.name, el.ENCODERS[spec.vr]))
            decoder = _decode_priority if spec.tag == el.PRIORITY else el.DECODERS[spec.vr]
            default = None if field.default is attrs.NOTHING else field.default
            required_on_wire = spec.required and not field.metadata.get(_ANSWERED, False)
            decode_plan.append((spec.tag, field.name, decoder, required_on_wire, default))
        encode_plan.sort(key=lambda entry: entry[0])
        cls._encode_plan = tuple((tag & 0xFFFF, name, enc) for tag, name, enc in encode_plan)
        cls._decode_plan = tuple(decode_plan)
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
    affected_sop_class_uid: str = _element(el.AFFECTED_SOP_CLASS_UID, answered=True)
    affected_sop_instance_uid: str = _element(el.AFFECTED_SOP_INSTANCE_UID, answered=True)
    event_type_id: int = _element(el.EVENT_TYPE_ID, answered=True)
    has_dataset: bool = _has_dataset_flag()  # Event Information


# N-GET (PS3.7 10.3.2)


@_message(0x8110, DatasetRule.OPTIONAL)
@attrs.frozen(kw_only=True)
class NGetRSP(_NResponse):
    has_dataset: bool = _has_dataset_flag()  # Attribute List


@_message(0x0110, DatasetRule.OPTIONAL, NGetRSP, expected=DatasetRule.FORBIDDEN)
@attrs.frozen(kw_only=True)
class NGetRQ(DimseRequest):
    requested_sop_class_uid: str = _element(el.REQUESTED_SOP_CLASS_UID, answered=True)
    requested_sop_instance_uid: str = _element(el.REQUESTED_SOP_INSTANCE_UID, answered=True)
    attribute_identifier_list: tuple[int, ...] | None = _element(
        el.ATTRIBUTE_IDENTIFIER_LIST, required=False
    )
    has_dataset: bool = _has_dataset_flag()  # none belongs: see dataset_out_of_place


# N-SET (PS3.7 10.3.3)


@_message(0x8120, DatasetRule.OPTIONAL)
@attrs.frozen(kw_only=True)
class NSetRSP(_NResponse):
    has_dataset: bool = _has_dataset_flag()  # Attribute List


@_message(0x0120, DatasetRule.OPTIONAL, NSetRSP, expected=DatasetRule.REQUIRED)
@attrs.frozen(kw_only=True)
class NSetRQ(DimseRequest):
    requested_sop_class_uid: str = _element(el.REQUESTED_SOP_CLASS_UID, answered=True)
    requested_sop_instance_uid: str = _element(el.REQUESTED_SOP_INSTANCE_UID, answered=True)
    has_dataset: bool = _has_dataset_flag(default=True)  # the Modification List


# N-ACTION (PS3.7 10.3.4)


@_message(0x8130, DatasetRule.OPTIONAL)
@attrs.frozen(kw_only=True)
class NActionRSP(_NResponse):
    action_type_id: int | None = _element(el.ACTION_TYPE_ID, required=False)
    has_dataset: bool = _has_dataset_flag()  # Action Reply


@_message(0x0130, DatasetRule.OPTIONAL, NActionRSP)
@attrs.frozen(kw_only=True)
class NActionRQ(DimseRequest):
    requested_sop_class_uid: str = _element(el.REQUESTED_SOP_CLASS_UID, answered=True)
    requested_sop_instance_uid: str = _element(el.REQUESTED_SOP_INSTANCE_UID, answered=True)
    action_type_id: int = _element(el.ACTION_TYPE_ID, answered=True)
    has_dataset: bool = _has_dataset_flag()  # Action Information


# N-CREATE (PS3.7 10.3.5)


@_message(0x8140, DatasetRule.OPTIONAL)
@attrs.frozen(kw_only=True)
class NCreateRSP(_NResponse):
    has_dataset: bool = _has_dataset_flag()  # Attribute List


@_message(0x0140, DatasetRule.OPTIONAL, NCreateRSP)
@attrs.frozen(kw_only=True)
class NCreateRQ(DimseRequest):
    affected_sop_class_uid: str = _element(el.AFFECTED_SOP_CLASS_UID, answered=True)
    # Optional: the SCP assigns the instance UID when the SCU leaves it out.
    affected_sop_instance_uid: str | None = _element(el.AFFECTED_SOP_INSTANCE_UID, required=False)
    has_dataset: bool = _has_dataset_flag()  # Attribute List


# N-DELETE (PS3.7 10.3.6)


@_message(0x8150, DatasetRule.FORBIDDEN)
@attrs.frozen(kw_only=True)
class NDeleteRSP(_NResponse):
    pass


@_message(0x0150, DatasetRule.OPTIONAL, NDeleteRSP, expected=DatasetRule.FORBIDDEN)
@attrs.frozen(kw_only=True)
class NDeleteRQ(DimseRequest):
    requested_sop_class_uid: str = _element(el.REQUESTED_SOP_CLASS_UID, answered=True)
    requested_sop_instance_uid: str = _element(el.REQUESTED_SOP_INSTANCE_UID, answered=True)
    has_dataset: bool = _has_dataset_flag()  # none belongs: see dataset_out_of_place


def missing_required(message: DimseMessage) -> tuple[str, ...]:
    """Fields of a decoded request that PS3.7 requires but the peer left out (only the
    `answered` ones can be: the decoder refuses a message lacking any other)."""
    return tuple(
        field.name
        for field in attrs.fields(type(message))
        if field.metadata.get(_ANSWERED, False) and getattr(message, field.name) is None
    )


def dataset_out_of_place(message: DimseMessage) -> str | None:
    """Why a decoded request's data set contradicts PS3.7 (None when it does not): an
    N-SET without its Modification List, an N-GET or N-DELETE carrying one."""
    expected = message.dataset_expected
    if expected is DatasetRule.REQUIRED and not message.has_dataset:
        return f"{type(message).__name__} needs a data set"
    if expected is DatasetRule.FORBIDDEN and message.has_dataset:
        return f"{type(message).__name__} carries no data set"
    return None


def next_message_id(last: int) -> int:
    """The Message ID after `last`: a US, so 1..65535 and then round again (0 is unused)."""
    return last % 0xFFFF + 1


# --- decoding ---------------------------------------------------------------------------

_new = object.__new__
_set = object.__setattr__  # decoded values were checked by the decoders: skip attrs' __init__


def _fail(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"malformed command set: {message}")


def decode(data: bytes | bytearray | memoryview) -> DimseMessage:
    """Decode a whole command set; any defect raises RemoteProtocolError."""
    try:
        elements, group_bytes = el.split_elements(bytes(data))
    except ValueError as exc:
        raise _fail(str(exc)) from None  # names its element itself
    # For the error message: the element being decoded, and what it belongs to. A
    # missing required element shows up as a KeyError.
    tag = el.COMMAND_GROUP_LENGTH
    name = "command set"
    try:
        raw = elements.get(tag)
        # Absent is tolerated (PS3.7 requires it, but nothing depends on it); present
        # and wrong means the peer's framing is broken.
        if raw is not None and (length := _decode_ul(raw)) != group_bytes:
            raise ValueError(f"says {length} bytes, the group has {group_bytes}")

        tag = el.COMMAND_FIELD
        command_field = _decode_us(elements[tag])
        cls = MESSAGE_TYPES.get(command_field)
        if cls is None:
            raise ValueError(f"0x{command_field:04X} is no DIMSE message")
        name = cls.__name__

        tag = el.COMMAND_DATA_SET_TYPE
        data_set_type = _decode_us(elements[tag])
        present = data_set_type != NO_DATASET
        message = _new(cls)
        if cls._optional_dataset:
            _set(message, "has_dataset", present)
        elif present != cls.has_dataset:
            wanted = "requires a data set" if cls.has_dataset else "carries no data set"
            raise ValueError(f"is 0x{data_set_type:04X}, but {name} {wanted}")

        for tag, attr, decoder, required, default in cls._decode_plan:
            raw = elements.get(tag)
            value = None if raw is None else decoder(raw)
            if value is None:  # absent, or a text value with nothing in it
                if required:
                    raise KeyError(tag)
                value = default
            _set(message, attr, value)
        return message
    except KeyError:
        raise _fail(f"{name} lacks {el.tag_label(tag)}") from None
    except ValueError as exc:
        raise _fail(f"{el.tag_label(tag)}: {exc}") from None

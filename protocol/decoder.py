"""Incremental PDU decoder: bytes in any chunking in, PDU objects out.

Only RemoteProtocolError ever leaves it. The 6-byte header is checked before the body
is waited for, so a hostile length field costs nothing. P-DATA-TF payloads are copied
at most once: PDV data are memoryview slices of the received bytes when a chunk holds
whole PDUs, else of the one buffer the PDU was gathered in (handed over, not copied,
when the PDU ends it).
"""

import struct

from .codes import (
    REJECT_REASONS,
    AbortReason,
    AbortSource,
    ContextResult,
    ItemType,
    PDUType,
    RejectResult,
    RejectSource,
    RejectUserReason,
    Rejection,
    as_enum,
)
from .errors import RemoteProtocolError
from .items import (
    AsyncOpsWindow,
    ImplementationClassUID,
    ImplementationVersionName,
    MaximumLength,
    PresentationContextAC,
    PresentationContextRQ,
    RoleSelection,
    SOPClassCommonExtendedNegotiation,
    SOPClassExtendedNegotiation,
    UnknownSubItem,
    UserIdentityAC,
    UserIdentityRQ,
    UserInformation,
    is_valid_ae_title,
    is_valid_version_name,
)
from .pdu import (
    PDU,
    AAbort,
    AAssociateAC,
    AAssociateRJ,
    AAssociateRQ,
    AReleaseRP,
    AReleaseRQ,
    PDataTF,
    PresentationDataValue,
)
from .uid import is_valid_uid

_PDU_HEADER = struct.Struct(">BxL")
_PDV_HEADER = struct.Struct(">LBB")
_ITEM_HEADER = struct.Struct(">BxH")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">L")
_ASSOCIATE_FIXED = struct.Struct(">H2x16s16s32x")

DEFAULT_MAX_PDATA_LENGTH = 4 * 1024 * 1024  # used while no maximum length was negotiated
DEFAULT_MAX_ASSOCIATE_LENGTH = 1024 * 1024  # RQ/AC: room for hundreds of presentation contexts
_FIXED_LENGTH_PDUS = frozenset({PDUType.A_ASSOCIATE_RJ, PDUType.A_RELEASE_RQ, PDUType.A_RELEASE_RP, PDUType.A_ABORT})

_INVALID = AbortReason.INVALID_PDU_PARAMETER_VALUE
_UNEXPECTED = AbortReason.UNEXPECTED_PDU_PARAMETER


def _fail(message: str, reason: AbortReason = _INVALID) -> RemoteProtocolError:
    return RemoteProtocolError(message, abort_reason=reason)


class PDUDecoder:
    """Feed bytes with feed(); take PDUs with next_pdu() until it returns None.

    max_pdata_length bounds a P-DATA-TF's variable field (what our maximum length
    sub-item announced; 0 = no limit announced, then DEFAULT_MAX_PDATA_LENGTH applies).
    After a framing error (bad header) the stream cannot be resynchronised: the decoder
    is `broken` and drops everything after. A bad body only costs that one PDU.

    Buffering: a PDU that lies wholly inside one fed chunk is sliced out of it with no
    copy (a chunk that is not `bytes` is copied once first, since the caller may reuse
    it). Only a PDU that straddles chunks is gathered in a bytearray, taking from the
    next chunk no more than it lacks, and that bytearray is then handed over whole.
    """

    def __init__(
        self,
        *,
        max_pdata_length: int = DEFAULT_MAX_PDATA_LENGTH,
        max_associate_length: int = DEFAULT_MAX_ASSOCIATE_LENGTH,
    ) -> None:
        self.max_associate_length = max_associate_length
        self.max_pdata_length = max_pdata_length
        self.broken = False
        self._partial = bytearray()  # the start of a PDU that straddles chunks
        self._view: memoryview | None = None  # unread part of the fed chunk(s), from _vpos
        self._vpos = 0

    @property
    def max_pdata_length(self) -> int:
        return self._max_pdata_length

    @max_pdata_length.setter
    def max_pdata_length(self, value: int) -> None:
        self._max_pdata_length = value
        self._pdata_limit = value or DEFAULT_MAX_PDATA_LENGTH

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as PDUs."""
        view = self._view
        return len(self._partial) + (len(view) - self._vpos if view is not None else 0)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self.broken or not data:
            return
        if self._view is not None:
            # Fed again before the last chunk was drained: keep its rest in front.
            self._partial += self._view[self._vpos :]
        self._view = memoryview(data if type(data) is bytes else bytes(data))
        self._vpos = 0

    def next_pdu(self) -> PDU | None:
        """The next complete PDU, or None if more bytes are needed. Raises RemoteProtocolError."""
        if self._partial:
            return self._next_from_partial()
        view = self._view
        if view is None:
            return None
        pos = self._vpos
        size = len(view)
        if size - pos >= 6:
            pdu_type, length = _unpack_header(view, pos)
            if pdu_type != 4 or length > self._pdata_limit:
                self._check_header(pdu_type, length)
            end = pos + 6 + length
            if end <= size:
                if end == size:
                    self._view = None
                else:
                    self._vpos = end
                if pdu_type != 4:
                    return self._parse(pdu_type, view[pos + 6 : end])
                if length >= 6:
                    # The hot path, inlined: one PDV filling the PDU, sliced straight from the chunk.
                    pdv_length, context_id, control = _unpack_pdv(view, pos + 6)
                    if pdv_length + 4 == length and pdv_length >= 2 and context_id & 1:
                        pdv = _new(PresentationDataValue)
                        _set_context_id(pdv, context_id)
                        _set_is_command(pdv, (control & 1) != 0)
                        _set_is_last(pdv, (control & 2) != 0)
                        _set_data(pdv, view[pos + 12 : end])
                        pdu = _new(PDataTF)
                        _set_pdvs(pdu, (pdv,))
                        return pdu
                return decode_pdata(view[pos + 6 : end])
        # An incomplete PDU ends the chunk: keep its start (one copy) for the next feed.
        self._partial += view[pos:]
        self._view = None
        return None

    def _next_from_partial(self) -> PDU | None:
        partial = self._partial
        if len(partial) < 6 and not self._take(6 - len(partial)):
            return None
        pdu_type, length = _unpack_header(partial, 0)
        self._check_header(pdu_type, length)
        if not self._take(6 + length - len(partial)):
            return None
        self._partial = bytearray()
        body = memoryview(partial)[6:]  # the bytearray is handed over, not copied
        return decode_pdata(body) if pdu_type == 4 else self._parse(pdu_type, body)

    def _take(self, wanted: int) -> bool:
        """Move up to wanted bytes from the chunk into _partial; True if all of them came."""
        view = self._view
        if view is None:
            return wanted <= 0
        pos = self._vpos
        stop = min(pos + wanted, len(view))
        self._partial += view[pos:stop]
        if stop == len(view):
            self._view = None
        else:
            self._vpos = stop
        return stop - pos >= wanted

    def _check_header(self, pdu_type: int, length: int) -> None:
        if pdu_type == PDUType.P_DATA_TF:
            if length > self._pdata_limit:
                self._break(f"P-DATA-TF of {length} bytes exceeds the maximum length {self._pdata_limit}")
        elif pdu_type in _FIXED_LENGTH_PDUS:
            if length != 4:
                self._break(f"{PDUType(pdu_type).name} has length {length}, not 4")
        elif pdu_type in (PDUType.A_ASSOCIATE_RQ, PDUType.A_ASSOCIATE_AC):
            if length > self.max_associate_length:
                self._break(f"{PDUType(pdu_type).name} of {length} bytes exceeds {self.max_associate_length}")
        else:
            self._break(f"unrecognized PDU type {pdu_type:#04x}", AbortReason.UNRECOGNIZED_PDU)

    def _break(self, message: str, reason: AbortReason = _INVALID) -> None:
        self.broken = True
        self._partial = bytearray()
        self._view = None
        raise _fail(message, reason)

    def _parse(self, pdu_type: int, body: memoryview) -> PDU:
        try:
            return _PARSERS[pdu_type](bytes(body))
        except RemoteProtocolError:
            raise
        except (struct.error, ValueError, IndexError) as exc:  # a length check was missed
            raise _fail(f"malformed {PDUType(pdu_type).name}: {exc}") from exc


# attrs' generated __init__ of a frozen class costs ~1.8 us here, more than the rest of
# decoding a P-DATA-TF; the hot path fills the slots directly (the classes have no
# validators or converters to skip).
_new = object.__new__
_set_context_id = PresentationDataValue.context_id.__set__
_set_is_command = PresentationDataValue.is_command.__set__
_set_is_last = PresentationDataValue.is_last.__set__
_set_data = PresentationDataValue.data.__set__
_set_pdvs = PDataTF.pdvs.__set__
_unpack_header = _PDU_HEADER.unpack_from
_unpack_pdv = _PDV_HEADER.unpack_from


def _pdv(context_id: int, control: int, data: memoryview) -> PresentationDataValue:
    pdv = _new(PresentationDataValue)
    _set_context_id(pdv, context_id)
    _set_is_command(pdv, (control & 1) != 0)
    _set_is_last(pdv, (control & 2) != 0)
    _set_data(pdv, data)
    return pdv


def _pdata(pdvs: tuple) -> PDataTF:
    pdu = _new(PDataTF)
    _set_pdvs(pdu, pdvs)
    return pdu


def decode_pdata(body: memoryview) -> PDataTF:
    """The PDVs of a P-DATA-TF variable field; their data are slices of body."""
    end = len(body)
    if end >= 6:
        length, context_id, control = _unpack_pdv(body, 0)
        if length + 4 == end and length >= 2 and context_id & 1:  # the usual single PDV
            return _pdata((_pdv(context_id, control, body[6:]),))
    pdvs = []
    offset = 0
    while offset < end:
        if end - offset < 6:
            raise _fail(f"P-DATA-TF has {end - offset} trailing bytes, too short for a PDV item")
        length, context_id, control = _unpack_pdv(body, offset)
        stop = offset + 4 + length
        if length < 2 or stop > end:
            raise _fail(f"PDV item length {length} does not fit its P-DATA-TF")
        if not context_id & 1:
            raise _fail(f"PDV presentation context ID {context_id} is not odd")
        pdvs.append(_pdv(context_id, control, body[offset + 6 : stop]))
        offset = stop
    if not pdvs:
        raise _fail("P-DATA-TF carries no PDV item")
    return _pdata(tuple(pdvs))


def decode_pdus(data: bytes, **limits: int) -> list[PDU]:
    """Every PDU in data, which must end on a PDU boundary (a helper for tests and tools)."""
    decoder = PDUDecoder(**limits)
    decoder.feed(data)
    pdus = []
    while (pdu := decoder.next_pdu()) is not None:
        pdus.append(pdu)
    if decoder.buffered:
        raise _fail(f"{decoder.buffered} bytes of an incomplete PDU")
    return pdus


# --- association PDUs --------------------------------------------------------------


def _items(data: bytes, start: int, end: int, where: str):
    """(type, body start, body end) of each item in data[start:end]."""
    offset = start
    while offset < end:
        if end - offset < 4:
            raise _fail(f"{where}: {end - offset} trailing bytes, too short for an item header")
        item_type, length = _ITEM_HEADER.unpack_from(data, offset)
        offset += 4
        if offset + length > end:
            raise _fail(f"{where}: item {item_type:#04x} of length {length} runs past the end")
        yield item_type, offset, offset + length
        offset += length


def _text(data: bytes, start: int, end: int) -> str:
    return data[start:end].decode("latin-1")  # never fails; validation rejects non-ASCII


def _uid(data: bytes, start: int, end: int, field: str) -> str:
    uid = _text(data, start, end)
    if uid.endswith("\x00"):  # a single NUL pads an odd-length UID (PS3.5); tolerated
        uid = uid[:-1]
    if not is_valid_uid(uid):
        raise _fail(f"{field} {uid!r} is not a valid UID")
    return uid


def _u16_field(data: bytes, offset: int, end: int, field: str) -> tuple[int, int]:
    """(start, end) of a field prefixed by its 16-bit length at data[offset]."""
    if end - offset < 2:
        raise _fail(f"{field}: no room for its length")
    (length,) = _U16.unpack_from(data, offset)
    if offset + 2 + length > end:
        raise _fail(f"{field}: length {length} runs past the end of its sub-item")
    return offset + 2, offset + 2 + length


def _once(current, field: str) -> None:
    if current is not None:
        raise _fail(f"more than one {field}", _UNEXPECTED)


def _decode_associate(data: bytes, is_request: bool) -> AAssociateRQ | AAssociateAC:
    name = "A-ASSOCIATE-RQ" if is_request else "A-ASSOCIATE-AC"
    if len(data) < _ASSOCIATE_FIXED.size:
        raise _fail(f"{name} of {len(data)} bytes is shorter than its fixed fields")
    version, called_raw, calling_raw = _ASSOCIATE_FIXED.unpack(data[: _ASSOCIATE_FIXED.size])
    app_context = user_info = None
    contexts: list = []
    for item_type, start, end in _items(data, _ASSOCIATE_FIXED.size, len(data), name):
        if item_type == ItemType.APPLICATION_CONTEXT:
            _once(app_context, "application context item")
            app_context = (start, end)
        elif item_type == (ItemType.PRESENTATION_CONTEXT_RQ if is_request else ItemType.PRESENTATION_CONTEXT_AC):
            contexts.append(_decode_context_rq(data, start, end) if is_request else _decode_context_ac(data, start, end))
        elif item_type == ItemType.USER_INFORMATION:
            _once(user_info, "user information item")
            user_info = _decode_user_information(data, start, end)
        elif item_type in ItemType._value2member_map_:
            raise _fail(f"{name} carries a {ItemType(item_type).name} item", _UNEXPECTED)
        # Items of unrecognized types are ignored and skipped (PS3.8 9.3.1).
    if app_context is None or user_info is None or not contexts:
        raise _fail(f"{name} lacks an application context, presentation context or user information item")
    ids = [pc.context_id for pc in contexts]
    if len(set(ids)) != len(ids):
        raise _fail(f"{name} repeats a presentation context ID: {ids}")
    if not is_request:
        if not version & 1:  # receivers test only bit 0 (PS3.8 9.3.3)
            raise _fail(f"A-ASSOCIATE-AC protocol version {version:#06x} lacks version 1")
        return AAssociateAC(
            protocol_version=version,
            # Reserved in the AC: echoes of the request, not tested.
            called_ae_title=called_raw.decode("latin-1").strip(" "),
            calling_ae_title=calling_raw.decode("latin-1").strip(" "),
            application_context_name=_uid(data, *app_context, "application context"),
            presentation_contexts=tuple(contexts),
            user_information=user_info,
        )
    # A request that is well framed but names an unusable AE or context is rejected, not aborted.
    called, calling = called_raw.decode("latin-1"), calling_raw.decode("latin-1")
    if not is_valid_ae_title(called):
        raise _reject(f"called AE title {called!r} is not valid", RejectUserReason.CALLED_AE_TITLE_NOT_RECOGNIZED)
    if not is_valid_ae_title(calling):
        raise _reject(f"calling AE title {calling!r} is not valid", RejectUserReason.CALLING_AE_TITLE_NOT_RECOGNIZED)
    app_uid = _text(data, *app_context).removesuffix("\x00")
    if not is_valid_uid(app_uid):
        raise _reject(
            f"application context name {app_uid!r} is not a UID",
            RejectUserReason.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED,
        )
    return AAssociateRQ(
        protocol_version=version,
        called_ae_title=called.strip(" "),
        calling_ae_title=calling.strip(" "),
        application_context_name=app_uid,
        presentation_contexts=tuple(contexts),
        user_information=user_info,
    )


def _reject(message: str, reason: RejectUserReason) -> RemoteProtocolError:
    rejection = Rejection(result=RejectResult.REJECTED_PERMANENT, source=RejectSource.SERVICE_USER, reason=reason)
    return RemoteProtocolError(message, abort_reason=_INVALID, reject=rejection)


def _check_context_id(context_id: int) -> None:
    if not (context_id & 1):  # a byte, so odd means 1..255
        raise _fail(f"presentation context ID {context_id} is not odd")


def _decode_context_rq(data: bytes, start: int, end: int) -> PresentationContextRQ:
    if end - start < 4:
        raise _fail("presentation context item shorter than 4 bytes")
    context_id = data[start]
    _check_context_id(context_id)
    abstract = None
    transfer: list[str] = []
    for item_type, s, e in _items(data, start + 4, end, f"presentation context {context_id}"):
        if item_type == ItemType.ABSTRACT_SYNTAX:
            _once(abstract, f"abstract syntax in presentation context {context_id}")
            abstract = _uid(data, s, e, "abstract syntax")
        elif item_type == ItemType.TRANSFER_SYNTAX:
            transfer.append(_uid(data, s, e, "transfer syntax"))
        elif item_type in ItemType._value2member_map_:
            raise _fail(f"presentation context {context_id} carries a {ItemType(item_type).name}", _UNEXPECTED)
    if abstract is None or not transfer:
        raise _fail(f"presentation context {context_id} lacks an abstract or transfer syntax")
    return PresentationContextRQ(context_id=context_id, abstract_syntax=abstract, transfer_syntaxes=tuple(transfer))


def _decode_context_ac(data: bytes, start: int, end: int) -> PresentationContextAC:
    if end - start < 4:
        raise _fail("presentation context item shorter than 4 bytes")
    context_id, result = data[start], data[start + 2]
    _check_context_id(context_id)
    if result not in ContextResult._value2member_map_:
        raise _fail(f"presentation context {context_id} result/reason {result} is not defined")
    accepted = result == ContextResult.ACCEPTANCE
    transfer = None
    for item_type, s, e in _items(data, start + 4, end, f"presentation context {context_id}"):
        if item_type == ItemType.TRANSFER_SYNTAX:
            _once(transfer, f"transfer syntax in presentation context {context_id}")
            # Not significant (and not tested) unless the context was accepted.
            transfer = _uid(data, s, e, "transfer syntax") if accepted else _text(data, s, e)
        elif item_type in ItemType._value2member_map_:
            raise _fail(f"presentation context {context_id} carries a {ItemType(item_type).name}", _UNEXPECTED)
    if accepted and transfer is None:
        raise _fail(f"accepted presentation context {context_id} names no transfer syntax")
    return PresentationContextAC(context_id=context_id, result=ContextResult(result), transfer_syntax=transfer or "")


def _decode_user_information(data: bytes, start: int, end: int) -> UserInformation:
    fields: dict = {}
    roles, extended, common, unknown = [], [], [], []

    def single(key: str, value) -> None:
        _once(fields.get(key), key.replace("_", " "))
        fields[key] = value

    for item_type, s, e in _items(data, start, end, "user information"):
        length = e - s
        match item_type:
            case ItemType.MAXIMUM_LENGTH:
                if length != 4:
                    raise _fail(f"maximum length sub-item of length {length}, not 4")
                single("maximum_length", MaximumLength(maximum_length=_U32.unpack_from(data, s)[0]))
            case ItemType.IMPLEMENTATION_CLASS_UID:
                uid = _uid(data, s, e, "implementation class UID")
                single("implementation_class_uid", ImplementationClassUID(uid=uid))
            case ItemType.IMPLEMENTATION_VERSION_NAME:
                name = _text(data, s, e)
                if not is_valid_version_name(name):
                    raise _fail(f"implementation version name {name!r} is not 1-16 ASCII characters")
                single("implementation_version_name", ImplementationVersionName(name=name))
            case ItemType.ASYNC_OPS_WINDOW:
                if length != 4:
                    raise _fail(f"asynchronous operations window sub-item of length {length}, not 4")
                invoked, performed = _U16.unpack_from(data, s)[0], _U16.unpack_from(data, s + 2)[0]
                single("async_ops_window", AsyncOpsWindow(max_invoked=invoked, max_performed=performed))
            case ItemType.ROLE_SELECTION:
                roles.append(_decode_role_selection(data, s, e))
            case ItemType.SOP_CLASS_EXTENDED_NEGOTIATION:
                us, ue = _u16_field(data, s, e, "extended negotiation SOP class UID")
                uid = _uid(data, us, ue, "extended negotiation SOP class UID")
                extended.append(SOPClassExtendedNegotiation(sop_class_uid=uid, application_information=data[ue:e]))
            case ItemType.SOP_CLASS_COMMON_EXTENDED_NEGOTIATION:
                common.append(_decode_common_extended(data, s, e))
            case ItemType.USER_IDENTITY_RQ:
                single("user_identity", _decode_user_identity_rq(data, s, e))
            case ItemType.USER_IDENTITY_AC:
                rs, re_ = _u16_field(data, s, e, "user identity server response")
                if re_ != e:
                    raise _fail("user identity (AC) sub-item has bytes after its server response")
                single("user_identity_response", UserIdentityAC(server_response=data[rs:re_]))
            case _:
                if item_type in ItemType._value2member_map_:
                    raise _fail(f"user information carries a {ItemType(item_type).name} item", _UNEXPECTED)
                unknown.append(UnknownSubItem(item_type=item_type, data=data[s:e]))
    return UserInformation(
        **fields,
        role_selections=tuple(roles),
        extended_negotiations=tuple(extended),
        common_extended_negotiations=tuple(common),
        unknown=tuple(unknown),
    )


def _decode_role_selection(data: bytes, start: int, end: int) -> RoleSelection:
    us, ue = _u16_field(data, start, end, "role selection SOP class UID")
    if end - ue != 2:
        raise _fail(f"role selection sub-item has {end - ue} bytes after its UID, not 2")
    scu, scp = data[ue], data[ue + 1]
    if scu > 1 or scp > 1:
        raise _fail(f"role selection values {scu}/{scp} are not 0 or 1")
    uid = _uid(data, us, ue, "role selection SOP class UID")
    return RoleSelection(sop_class_uid=uid, scu_role=bool(scu), scp_role=bool(scp))


def _decode_common_extended(data: bytes, start: int, end: int) -> SOPClassCommonExtendedNegotiation:
    sop_s, sop_e = _u16_field(data, start, end, "common extended negotiation SOP class UID")
    svc_s, svc_e = _u16_field(data, sop_e, end, "service class UID")
    rel_s, rel_e = _u16_field(data, svc_e, end, "related general SOP class identification")
    if rel_e != end:
        raise _fail("common extended negotiation sub-item has bytes after its related SOP classes")
    related = []
    offset = rel_s
    while offset < rel_e:
        s, e = _u16_field(data, offset, rel_e, "related general SOP class UID")
        related.append(_uid(data, s, e, "related general SOP class UID"))
        offset = e
    return SOPClassCommonExtendedNegotiation(
        sop_class_uid=_uid(data, sop_s, sop_e, "common extended negotiation SOP class UID"),
        service_class_uid=_uid(data, svc_s, svc_e, "service class UID"),
        related_general_sop_classes=tuple(related),
    )


def _decode_user_identity_rq(data: bytes, start: int, end: int) -> UserIdentityRQ:
    if end - start < 2:
        raise _fail("user identity (RQ) sub-item shorter than 2 bytes")
    identity_type, positive = data[start], data[start + 1]
    ps, pe = _u16_field(data, start + 2, end, "user identity primary field")
    ss, se = _u16_field(data, pe, end, "user identity secondary field")
    if se != end:
        raise _fail("user identity (RQ) sub-item has bytes after its secondary field")
    if positive > 1:
        raise _fail(f"user identity positive-response-requested {positive} is not 0 or 1")
    return UserIdentityRQ(
        identity_type=identity_type,
        positive_response_requested=bool(positive),
        primary_field=data[ps:pe],
        secondary_field=data[ss:se],
    )


# --- the small fixed-size PDUs (length 4 already checked from the header) -------------


def _decode_rj(data: bytes) -> AAssociateRJ:
    result, source, reason = data[1], data[2], data[3]
    if result not in RejectResult._value2member_map_ or source not in RejectSource._value2member_map_:
        raise _fail(f"A-ASSOCIATE-RJ result {result} / source {source} is not defined")
    source = RejectSource(source)
    return AAssociateRJ(result=RejectResult(result), source=source, reason=as_enum(REJECT_REASONS[source], reason))


def _decode_abort(data: bytes) -> AAbort:
    # Not tested beyond its length: an A-ABORT ends the association whatever its codes say,
    # and answering a malformed abort with an abort of our own would only be noise.
    return AAbort(source=as_enum(AbortSource, data[2]), reason=as_enum(AbortReason, data[3]))


_PARSERS = {
    PDUType.A_ASSOCIATE_RQ: lambda data: _decode_associate(data, is_request=True),
    PDUType.A_ASSOCIATE_AC: lambda data: _decode_associate(data, is_request=False),
    PDUType.A_ASSOCIATE_RJ: _decode_rj,
    PDUType.A_RELEASE_RQ: lambda data: AReleaseRQ(),
    PDUType.A_RELEASE_RP: lambda data: AReleaseRP(),
    PDUType.A_ABORT: _decode_abort,
}

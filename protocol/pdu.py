"""The seven PDUs of the DICOM upper layer (PS3.8 section 9.3). Frozen values with encode();
decoding lives in decoder.py, the items they carry in items.py.

PresentationDataValue and PDataTF are the contract the DIMSE layer builds on: their
names and fields do not change.
"""

import struct

import attrs

from .codes import DICOM_APPLICATION_CONTEXT, AbortReason, AbortSource, PDUType, Rejection
from .errors import LocalProtocolError
from .items import (
    ApplicationContext,
    PresentationContextAC,
    PresentationContextRQ,
    UserInformation,
    encode_ae_title,
)

_PDV_HEADER = struct.Struct(">LBB")  # item length, presentation context id, control header
_PDU_HEADER = struct.Struct(">BxL")  # PDU type, reserved, PDU length
_ASSOCIATE_FIXED = struct.Struct(">H2x16s16s32x")  # protocol version, reserved, called, calling, reserved
_RJ_BODY = struct.Struct(">xBBB")  # reserved, result, source, reason
_ABORT_BODY = struct.Struct(">xxBB")  # reserved, reserved, source, reason
PDU_HEADER_LENGTH = 6
PROTOCOL_VERSION = 0x0001


@attrs.frozen(kw_only=True)
class PresentationDataValue:
    """One PDV item: a fragment of a command set or a dataset (PS3.8 E.2)."""

    context_id: int
    is_command: bool
    is_last: bool
    data: bytes | memoryview  # decoded PDVs are memoryview slices of the received PDU

    @property
    def control_header(self) -> int:
        return (0x01 if self.is_command else 0x00) | (0x02 if self.is_last else 0x00)


@attrs.frozen(kw_only=True)
class PDataTF:
    """P-DATA-TF (type 04H): one or more PDVs."""

    pdvs: tuple[PresentationDataValue, ...]

    def encode(self) -> bytes:
        parts = [b""]  # the PDU header goes here once the length is known: one copy of the data in all
        length = 0
        for pdv in self.pdvs:
            size = len(pdv.data)
            parts.append(_PDV_HEADER.pack(size + 2, pdv.context_id, pdv.control_header))
            parts.append(pdv.data)
            length += size + 6
        parts[0] = _PDU_HEADER.pack(0x04, length)
        return b"".join(parts)


def _pdu(pdu_type: PDUType, body: bytes) -> bytes:
    return _PDU_HEADER.pack(pdu_type, len(body)) + body


def _associate_body(pdu) -> bytes:
    if not 0 <= pdu.protocol_version <= 0xFFFF:
        raise LocalProtocolError(f"protocol version {pdu.protocol_version} does not fit 16 bits")
    fixed = _ASSOCIATE_FIXED.pack(
        pdu.protocol_version,
        encode_ae_title(pdu.called_ae_title, "called AE title"),
        encode_ae_title(pdu.calling_ae_title, "calling AE title"),
    )
    items = [ApplicationContext(name=pdu.application_context_name).encode()]
    items += [pc.encode() for pc in pdu.presentation_contexts]
    items.append(pdu.user_information.encode())
    return fixed + b"".join(items)


@attrs.frozen(kw_only=True)
class AAssociateRQ:
    """A-ASSOCIATE-RQ (type 01H). AE titles are held without their space padding."""

    protocol_version: int = PROTOCOL_VERSION
    called_ae_title: str
    calling_ae_title: str
    application_context_name: str = DICOM_APPLICATION_CONTEXT
    presentation_contexts: tuple[PresentationContextRQ, ...]
    user_information: UserInformation

    def encode(self) -> bytes:
        if not self.presentation_contexts:
            raise LocalProtocolError("an A-ASSOCIATE-RQ needs at least one presentation context")
        ids = [pc.context_id for pc in self.presentation_contexts]
        if len(set(ids)) != len(ids):
            raise LocalProtocolError(f"presentation context IDs repeat: {ids}")
        return _pdu(PDUType.A_ASSOCIATE_RQ, _associate_body(self))


@attrs.frozen(kw_only=True)
class AAssociateAC:
    """A-ASSOCIATE-AC (type 02H).

    The AE title fields are reserved in the AC: they echo the request's values and
    receivers do not test them.
    """

    protocol_version: int = PROTOCOL_VERSION
    called_ae_title: str
    calling_ae_title: str
    application_context_name: str = DICOM_APPLICATION_CONTEXT
    presentation_contexts: tuple[PresentationContextAC, ...]
    user_information: UserInformation

    def encode(self) -> bytes:
        return _pdu(PDUType.A_ASSOCIATE_AC, _associate_body(self))


@attrs.frozen(kw_only=True)
class AAssociateRJ:
    """A-ASSOCIATE-RJ (type 03H): result, source and reason (see codes.Reject*)."""

    result: int
    source: int
    reason: int

    @classmethod
    def from_rejection(cls, rejection: Rejection) -> "AAssociateRJ":
        return cls(result=rejection.result, source=rejection.source, reason=rejection.reason)

    def encode(self) -> bytes:
        for name in ("result", "source", "reason"):
            if not 0 <= getattr(self, name) <= 0xFF:
                raise LocalProtocolError(f"A-ASSOCIATE-RJ {name} does not fit one byte")
        return _pdu(PDUType.A_ASSOCIATE_RJ, _RJ_BODY.pack(self.result, self.source, self.reason))


@attrs.frozen
class AReleaseRQ:
    """A-RELEASE-RQ (type 05H)."""

    def encode(self) -> bytes:
        return _RELEASE_RQ_BYTES


@attrs.frozen
class AReleaseRP:
    """A-RELEASE-RP (type 06H)."""

    def encode(self) -> bytes:
        return _RELEASE_RP_BYTES


@attrs.frozen(kw_only=True)
class AAbort:
    """A-ABORT (type 07H), carrying both A-ABORT (user source) and A-P-ABORT (provider source).

    The reason is significant only when the source is the service-provider.
    """

    source: int = AbortSource.SERVICE_USER
    reason: int = AbortReason.REASON_NOT_SPECIFIED

    def encode(self) -> bytes:
        if not (0 <= self.source <= 0xFF and 0 <= self.reason <= 0xFF):
            raise LocalProtocolError("A-ABORT source and reason must fit one byte each")
        return _pdu(PDUType.A_ABORT, _ABORT_BODY.pack(self.source, self.reason))


_RELEASE_RQ_BYTES = _pdu(PDUType.A_RELEASE_RQ, bytes(4))
_RELEASE_RP_BYTES = _pdu(PDUType.A_RELEASE_RP, bytes(4))

PDU = AAssociateRQ | AAssociateAC | AAssociateRJ | PDataTF | AReleaseRQ | AReleaseRP | AAbort

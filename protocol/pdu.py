"""PDU classes (PS3.8 section 9.3). Frozen values with encode(); decoding lives in the decoder.

Only the P-DATA-TF part is here yet; it is the contract the DIMSE layer builds on.
"""

import struct

import attrs

_PDV_HEADER = struct.Struct(">LBB")  # item length, presentation context id, control header
_PDU_HEADER = struct.Struct(">BxL")  # PDU type, reserved, PDU length


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
        parts = []
        for pdv in self.pdvs:
            parts.append(_PDV_HEADER.pack(len(pdv.data) + 2, pdv.context_id, pdv.control_header))
            parts.append(pdv.data)
        body = b"".join(parts)
        return _PDU_HEADER.pack(0x04, len(body)) + body

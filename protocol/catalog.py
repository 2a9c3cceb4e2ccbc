"""Which SOP classes and transfer syntaxes exist, from pydicom's UID dictionary.

The storage SOP classes are every SOP class pydicom names "... Storage" (the storage
commitment and storage management services are not storage SOP classes).
"""

from functools import cache

from pydicom._uid_dict import UID_dictionary
from pydicom.uid import AllTransferSyntaxes

VERIFICATION = "1.2.840.10008.1.1"

PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
PATIENT_ROOT_GET = "1.2.840.10008.5.1.4.1.2.1.3"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"

FIND_MODELS = (PATIENT_ROOT_FIND, STUDY_ROOT_FIND)
MODALITY_WORKLIST_FIND = "1.2.840.10008.5.1.4.31"
MODALITY_PERFORMED_PROCEDURE_STEP = "1.2.840.10008.3.1.2.3.3"
STORAGE_COMMITMENT_PUSH_MODEL = "1.2.840.10008.1.20.1"
# The one SOP instance of the Storage Commitment Push Model (PS3.4 J.3.5): every
# N-ACTION and N-EVENT-REPORT names it.
STORAGE_COMMITMENT_PUSH_MODEL_INSTANCE = "1.2.840.10008.1.20.1.1"
MOVE_MODELS = (PATIENT_ROOT_MOVE, STUDY_ROOT_MOVE)
GET_MODELS = (PATIENT_ROOT_GET, STUDY_ROOT_GET)
PATIENT_ROOT_MODELS = frozenset({PATIENT_ROOT_FIND, PATIENT_ROOT_MOVE, PATIENT_ROOT_GET})

IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"

_NOT_STORAGE = ("Commitment", "Management")


@cache
def storage_sop_classes() -> tuple[str, ...]:
    return tuple(
        sorted(
            uid
            for uid, (name, kind, *_rest) in UID_dictionary.items()
            if kind == "SOP Class" and "Storage" in name and not any(word in name for word in _NOT_STORAGE)
        )
    )


@cache
def transfer_syntaxes() -> tuple[str, ...]:
    """Every transfer syntax pydicom knows, the uncompressed little endian ones first."""
    preferred = (EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN)
    rest = sorted(str(ts) for ts in AllTransferSyntaxes if str(ts) not in preferred)
    return preferred + tuple(rest)


def name_of(uid: str) -> str:
    entry = UID_dictionary.get(uid)
    return entry[0] if entry else uid

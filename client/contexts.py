"""Which presentation contexts the SCU client proposes.

An association can only carry what was agreed when it opened, so the caller picks the
contexts up front (at most 128). These helpers build the usual sets:

- `verification_contexts()`: C-ECHO.
- `query_retrieve_contexts(model)`: C-FIND, C-MOVE, C-GET of the study- and/or
  patient-root information model.
- `storage_contexts_for(files or datasets)`: exactly what sending those needs. Each
  (SOP class, transfer syntax) pair found gets a context of its own, so an acceptor that
  takes it receives the file as it is; a file in one of the uncompressed little endian
  syntaxes also gets a fallback context offering both (we convert between those two).
  When that would exceed the limit, each SOP class gets one context listing all its
  transfer syntaxes instead.
- `retrieve_storage_contexts()`: storage SOP classes with the SCP role for us too (role
  selection), for C-GET, whose instances come back as C-STORE requests on our side: per
  class one context of the uncompressed syntaxes and one or two of the compressed ones
  (lossy first, lossless first), so that an acceptor can give us several encodings of a
  class as they are stored (triopacs gives each context a syntax it holds).
- `worklist_contexts()`: Modality Worklist C-FIND.
- `default_contexts()`: what `connect()` proposes when not told: echo, both query/retrieve
  models, Modality Worklist and the common storage classes for C-GET.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from pydicom.dataset import Dataset
from pydicom.uid import UID

from ..protocol.catalog import (
    EXPLICIT_VR_BIG_ENDIAN,
    MODALITY_WORKLIST_FIND,
    PATIENT_ROOT_FIND,
    PATIENT_ROOT_GET,
    PATIENT_ROOT_MOVE,
    STUDY_ROOT_FIND,
    STUDY_ROOT_GET,
    STUDY_ROOT_MOVE,
    VERIFICATION,
)
from ..protocol.negotiation import MAX_PRESENTATION_CONTEXTS, ProposedContext
from .datasets import LITTLE_ENDIAN, locate
from .errors import InvalidInput

UNCOMPRESSED = (*LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN)

# What a C-GET requestor can take in: we write what arrives as it is, so any encoding
# will do. The acceptor picks one syntax per context, hence per SOP class one context of
# uncompressed syntaxes and two of the common compressed ones, in two orders: an
# acceptor that goes by our order gives us two different ones.
RETRIEVE_COMPRESSED = (
    "1.2.840.10008.1.2.4.50",  # JPEG baseline
    "1.2.840.10008.1.2.4.51",  # JPEG extended
    "1.2.840.10008.1.2.4.57",  # JPEG lossless
    "1.2.840.10008.1.2.4.70",  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.4.201",  # HTJ2K lossless
    "1.2.840.10008.1.2.4.203",  # HTJ2K
    "1.2.840.10008.1.2.5",  # RLE lossless
    "1.2.840.10008.1.2.1.99",  # deflated explicit VR little endian
)
_LOSSLESS = frozenset({
    "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.1.99",
})

# The storage SOP classes most archives hold; 40 of them, so that with two contexts each
# the default proposal (plus echo and query/retrieve) leaves room for more, and a C-GET
# alone fits three each.
COMMON_STORAGE_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.1",  # CR
    "1.2.840.10008.5.1.4.1.1.1.1",  # DX for presentation
    "1.2.840.10008.5.1.4.1.1.1.1.1",  # DX for processing
    "1.2.840.10008.5.1.4.1.1.1.2",  # MG for presentation
    "1.2.840.10008.5.1.4.1.1.1.2.1",  # MG for processing
    "1.2.840.10008.5.1.4.1.1.2",  # CT
    "1.2.840.10008.5.1.4.1.1.2.1",  # enhanced CT
    "1.2.840.10008.5.1.4.1.1.3.1",  # US multi-frame
    "1.2.840.10008.5.1.4.1.1.4",  # MR
    "1.2.840.10008.5.1.4.1.1.4.1",  # enhanced MR
    "1.2.840.10008.5.1.4.1.1.6.1",  # US
    "1.2.840.10008.5.1.4.1.1.7",  # secondary capture
    "1.2.840.10008.5.1.4.1.1.7.2",  # multi-frame grayscale byte SC
    "1.2.840.10008.5.1.4.1.1.7.3",  # multi-frame grayscale word SC
    "1.2.840.10008.5.1.4.1.1.7.4",  # multi-frame true color SC
    "1.2.840.10008.5.1.4.1.1.9.1.1",  # 12-lead ECG
    "1.2.840.10008.5.1.4.1.1.9.1.2",  # general ECG
    "1.2.840.10008.5.1.4.1.1.11.1",  # grayscale softcopy presentation state
    "1.2.840.10008.5.1.4.1.1.12.1",  # XA
    "1.2.840.10008.5.1.4.1.1.12.1.1",  # enhanced XA
    "1.2.840.10008.5.1.4.1.1.12.2",  # XRF
    "1.2.840.10008.5.1.4.1.1.13.1.3",  # breast tomosynthesis
    "1.2.840.10008.5.1.4.1.1.20",  # NM
    "1.2.840.10008.5.1.4.1.1.66",  # raw data
    "1.2.840.10008.5.1.4.1.1.66.1",  # spatial registration
    "1.2.840.10008.5.1.4.1.1.66.4",  # segmentation
    "1.2.840.10008.5.1.4.1.1.77.1.1",  # VL endoscopic
    "1.2.840.10008.5.1.4.1.1.77.1.4",  # VL photographic
    "1.2.840.10008.5.1.4.1.1.77.1.5.1",  # ophthalmic photography 8 bit
    "1.2.840.10008.5.1.4.1.1.88.11",  # basic text SR
    "1.2.840.10008.5.1.4.1.1.88.22",  # enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.33",  # comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.59",  # key object selection
    "1.2.840.10008.5.1.4.1.1.104.1",  # encapsulated PDF
    "1.2.840.10008.5.1.4.1.1.128",  # PET
    "1.2.840.10008.5.1.4.1.1.130",  # enhanced PET
    "1.2.840.10008.5.1.4.1.1.481.1",  # RT image
    "1.2.840.10008.5.1.4.1.1.481.2",  # RT dose
    "1.2.840.10008.5.1.4.1.1.481.3",  # RT structure set
    "1.2.840.10008.5.1.4.1.1.481.5",  # RT plan
)

MODELS = ("study", "patient")
_QR_CLASSES = {
    "study": {"find": STUDY_ROOT_FIND, "move": STUDY_ROOT_MOVE, "get": STUDY_ROOT_GET},
    "patient": {"find": PATIENT_ROOT_FIND, "move": PATIENT_ROOT_MOVE, "get": PATIENT_ROOT_GET},
}


def model_sop_class(model: str, operation: str) -> str:
    """The SOP class of `operation` ("find", "move", "get") in the named information model."""
    try:
        return _QR_CLASSES[model][operation]
    except KeyError:
        raise InvalidInput(f"information model must be one of {', '.join(MODELS)}, not {model!r}") from None


def verification_contexts() -> list[ProposedContext]:
    return [ProposedContext(abstract_syntax=VERIFICATION)]


def query_retrieve_contexts(
    model: str = "both", *, find: bool = True, move: bool = True, get: bool = True
) -> list[ProposedContext]:
    """C-FIND / C-MOVE / C-GET contexts of the "study" or "patient" root model, or "both"."""
    models = MODELS if model == "both" else (model,)
    operations = [name for name, wanted in (("find", find), ("move", move), ("get", get)) if wanted]
    return [
        ProposedContext(abstract_syntax=model_sop_class(name, operation), transfer_syntaxes=LITTLE_ENDIAN)
        for name in models
        for operation in operations
    ]


def retrieve_storage_contexts(
    sop_classes: Iterable[str] = COMMON_STORAGE_CLASSES,
    *,
    compressed: Sequence[str] = RETRIEVE_COMPRESSED,
    compressed_contexts: int = 1,
) -> list[ProposedContext]:
    """Storage contexts for receiving C-GET sub-operations: per SOP class one context of
    the uncompressed syntaxes and (unless `compressed` is empty) `compressed_contexts` of
    the compressed ones, the second with the lossless syntaxes first.

    They propose both roles for us, SCU and SCP: role selection is per SOP class, not
    per context, so asking for SCP only would also take the SCU role away from any
    storage context for the same class in the same request (and with it C-STORE).
    """
    orders = [tuple(compressed), tuple(sorted(compressed, key=lambda uid: uid not in _LOSSLESS))]
    contexts = []
    for sop_class in sop_classes:
        contexts.append(ProposedContext(abstract_syntax=sop_class, transfer_syntaxes=UNCOMPRESSED, scu_role=True, scp_role=True))
        if compressed:
            for number in range(compressed_contexts):
                contexts.append(
                    ProposedContext(
                        abstract_syntax=sop_class, transfer_syntaxes=orders[number % 2], scu_role=True, scp_role=True
                    )
                )
    return contexts


def worklist_contexts() -> list[ProposedContext]:
    return [ProposedContext(abstract_syntax=MODALITY_WORKLIST_FIND, transfer_syntaxes=LITTLE_ENDIAN)]


def default_contexts() -> list[ProposedContext]:
    """Echo, study- and patient-root query/retrieve, Modality Worklist, and C-GET of the
    common storage classes (88 contexts: room is left for storage contexts)."""
    return [
        *verification_contexts(),
        *query_retrieve_contexts("both"),
        *worklist_contexts(),
        *retrieve_storage_contexts(),
    ]


# --- what sending some files or datasets needs -------------------------------------------

StorageSource = str | os.PathLike[str] | Dataset | tuple[str, str]


def dataset_transfer_syntax(dataset: Dataset) -> str | None:
    """The transfer syntax a dataset's pixel data ties it to, or None when any will do.

    Only an encapsulated (compressed) encoding binds the dataset; uncompressed data is
    re-encoded by pydicom in whichever little endian syntax the peer accepted.
    """
    meta = getattr(dataset, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax and UID(str(syntax)).is_compressed and "PixelData" in dataset:
        return str(syntax)
    return None


def file_sop_class_and_syntax(path: str | os.PathLike[str]) -> tuple[str, str]:
    """(SOP class UID, transfer syntax UID) of a Part 10 file, as a C-STORE would send it."""
    file = locate(path)
    return file.sop_class_uid, file.transfer_syntax_uid


def _needed_pair(source: StorageSource) -> tuple[str, str | None]:
    if isinstance(source, tuple):
        return source
    if isinstance(source, Dataset):
        if "SOPClassUID" not in source:
            raise InvalidInput("a dataset to store has no SOP Class UID")
        return str(source.SOPClassUID), dataset_transfer_syntax(source)
    return file_sop_class_and_syntax(source)


def storage_contexts_for(
    sources: Iterable[StorageSource], *, max_contexts: int = MAX_PRESENTATION_CONTEXTS
) -> list[ProposedContext]:
    """The contexts needed to send these files / datasets / (SOP class, syntax) pairs.

    Reads only each file's header (blocking: call it in a thread for many files).
    Raises InvalidInput if a file is not Part 10, or if even one context per SOP class
    would exceed `max_contexts` (send such a set over several associations).
    """
    needed: dict[str, list[str | None]] = {}
    for source in sources:
        sop_class, syntax = _needed_pair(source)
        syntaxes = needed.setdefault(sop_class, [])
        if syntax not in syntaxes:
            syntaxes.append(syntax)
    if not needed:
        return []
    exact = [context for sop_class, syntaxes in needed.items() for context in _exact_contexts(sop_class, syntaxes)]
    if len(exact) <= max_contexts:
        return exact
    if len(needed) > max_contexts:
        raise InvalidInput(f"{len(needed)} SOP classes to send; one association carries at most {max_contexts}")
    return [
        ProposedContext(abstract_syntax=sop_class, transfer_syntaxes=_grouped(syntaxes))
        for sop_class, syntaxes in needed.items()
    ]


def _exact_contexts(sop_class: str, syntaxes: list[str | None]) -> list[ProposedContext]:
    """One context per syntax, plus a little endian fallback we can convert into."""
    contexts = [
        ProposedContext(abstract_syntax=sop_class, transfer_syntaxes=(syntax,)) for syntax in syntaxes if syntax is not None
    ]
    little_endian = {syntax for syntax in syntaxes if syntax in LITTLE_ENDIAN}
    convertible = None in syntaxes or little_endian
    if convertible and little_endian != set(LITTLE_ENDIAN):
        contexts.append(ProposedContext(abstract_syntax=sop_class, transfer_syntaxes=LITTLE_ENDIAN))
    return contexts


def _grouped(syntaxes: list[str | None]) -> tuple[str, ...]:
    own = [syntax for syntax in syntaxes if syntax is not None and syntax not in LITTLE_ENDIAN]
    return (*own, *LITTLE_ENDIAN)


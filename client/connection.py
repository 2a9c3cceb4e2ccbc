"""An embeddable DICOM client (SCU) on Trio: `async with triopacs.connect(...) as association`.

    async with connect("127.0.0.1", 11112, called_ae_title="PACS") as association:
        await association.echo()
        async for match in association.find(query, level="STUDY"):
            print(match.StudyInstanceUID)

`connect` opens the TCP connection, proposes the presentation contexts and waits for the
answer; the block gets a `ClientAssociation`. Leaving the block releases the association.
If an operation is still running then (the loop broke out, the task was cancelled), it
is cancelled with C-CANCEL and its final response awaited first; if the peer does not
finish that and the release within `close_timeout` seconds, the association is aborted.

The association is used by one task at a time: one request is outstanding at any moment
(we propose no asynchronous operations window), and a new request first cancels an
unfinished C-FIND/C-MOVE/C-GET. Errors are the `ClientError` family of client_errors.py.

This is a plain async API, not an actor: a DimseLink reader task runs in a nursery that
`connect` owns, and every method is called from the caller's own task. The message flow
underneath (sending, receiving, timeouts, cancelling, closing) is client_session.py.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import trio
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from ..protocol.catalog import MODALITY_WORKLIST_FIND, VERIFICATION
from ..protocol.commands import CEchoRQ, CEchoRSP, CFindRQ, CGetRQ, CMoveRQ, CStoreRQ, CStoreRSP, Priority
from ..protocol.errors import LocalProtocolError
from ..protocol.codes import UserIdentityType
from ..protocol.items import UserIdentityRQ
from ..protocol.negotiation import AcceptedContext, ProposedContext, build_request
from ..protocol.status import StatusClass, status_class
from .contexts import (
    dataset_transfer_syntax,
    default_contexts,
    model_sop_class,
    query_retrieve_contexts,
    retrieve_storage_contexts,
    storage_contexts_for,
    verification_contexts,
    worklist_contexts,
)
from .datasets import (
    READ_CHUNK,
    context_for_dataset,
    context_for_file,
    convert_file,
    decode_dataset,
    encode_dataset,
    file_chunks,
    locate,
    read_whole,
)
from .errors import (
    AssociationAborted,
    AssociationRejected,
    ClientError,
    ConnectionFailed,
    DimseTimeout,
    InvalidInput,
    NoPresentationContext,
    OperationFailed,
)
from .tls import handshake_failure
from .tls_stream import TlsStream
from .operations import FindQuery, GetProgress, MoveProgress
from .receive import InstanceCallback, target_for
from .results import MoveOriginator, ReceivedInstance, RetrieveProgress, StoreResult
from .nservices import EventReport, NResult, NServices

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")

__all__ = [
    "AssociationAborted",
    "AssociationRejected",
    "ClientAssociation",
    "ClientError",
    "ConnectionFailed",
    "DimseTimeout",
    "EventReport",
    "FindQuery",
    "GetProgress",
    "InvalidInput",
    "MoveOriginator",
    "MoveProgress",
    "NResult",
    "NoPresentationContext",
    "OperationFailed",
    "ReceivedInstance",
    "RetrieveProgress",
    "StoreResult",
    "connect",
    "default_contexts",
    "query_retrieve_contexts",
    "retrieve_storage_contexts",
    "storage_contexts_for",
    "verification_contexts",
    "worklist_contexts",
]


@asynccontextmanager
async def connect(
    host: str,
    port: int,
    *,
    called_ae_title: str,
    calling_ae_title: str = "TRIOPACS",
    contexts: Sequence[ProposedContext] | None = None,
    max_pdu_length: int = 65536,
    connect_timeout: float = 10.0,
    dimse_timeout: float = 60.0,
    artim_timeout: float = 30.0,
    close_timeout: float = 10.0,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    username: str | None = None,
    passcode: str | None = None,
) -> AsyncIterator[ClientAssociation]:
    """Open an association; release it (or abort it, see the module doc) when the block ends.

    ssl_context: DICOM TLS (client/tls.py `client_context`); the handshake counts against
    connect_timeout, and its certificate is checked for `server_hostname` (default: host).
    username (and passcode): a user identity sub-item (PS3.7 D.3.3.7) asking for a
    positive response; a peer that refuses the identity rejects the association.

    contexts: what to propose (default: `default_contexts()`). connect_timeout bounds the
    TCP connect; artim_timeout the wait for the A-ASSOCIATE answer (and the link's ARTIM
    timer); dimse_timeout how long a reply may go without a single byte arriving;
    close_timeout the clean-up when the block ends.
    """
    proposed = list(contexts) if contexts is not None else default_contexts()
    try:
        rq = build_request(
            calling_ae_title=calling_ae_title,
            called_ae_title=called_ae_title,
            contexts=proposed,
            max_pdu_length=max_pdu_length,
            user_identity=user_identity_item(username, passcode),
        )
        rq.encode()  # bad AE titles fail here, before any connection
    except LocalProtocolError as error:
        raise InvalidInput(str(error)) from None
    stream = await _open_stream(host, port, connect_timeout, ssl_context, server_hostname)
    association = ClientAssociation(
        stream,
        peer=f"{host}:{port}",
        called_ae_title=called_ae_title,
        max_pdu_length=max_pdu_length,
        dimse_timeout=dimse_timeout,
        artim_timeout=artim_timeout,
        close_timeout=close_timeout,
    )
    # Exceptions from the block are carried past the nursery, so that the caller catches
    # our typed errors themselves rather than an ExceptionGroup around them.
    failure: BaseException | None = None
    async with trio.open_nursery() as nursery:
        await nursery.start(association._read)
        try:
            await association._associate(rq)
        except BaseException as error:
            failure = error
            await association._close()
        else:
            try:
                yield association
            except BaseException as error:
                failure = error
            await association._close()
    if failure is not None:
        raise failure


def user_identity_item(username: str | None, passcode: str | None) -> UserIdentityRQ | None:
    if username is None:
        return None
    return UserIdentityRQ(
        identity_type=UserIdentityType.USERNAME_AND_PASSCODE if passcode is not None else UserIdentityType.USERNAME,
        positive_response_requested=True,
        primary_field=username.encode("utf-8"),
        secondary_field=(passcode or "").encode("utf-8"),
    )


async def _open_stream(
    host: str, port: int, timeout: float, ssl_context: ssl.SSLContext | None = None, server_hostname: str | None = None
) -> trio.abc.Stream:
    try:
        with trio.fail_after(timeout):
            stream = await trio.open_tcp_stream(host, port)
            if ssl_context is None:
                return stream
            secure = TlsStream(stream, ssl_context, server_side=False, server_hostname=server_hostname or host)
            try:
                await secure.do_handshake()
            except BaseException:
                await trio.aclose_forcefully(stream)
                raise
            return secure
    except trio.TooSlowError:
        raise ConnectionFailed(host, port, f"no answer within {timeout:g} s") from None
    except (trio.BrokenResourceError, ssl.SSLError) as error:
        raise ConnectionFailed(host, port, f"TLS handshake failed ({handshake_failure(error)})") from None
    except OSError as error:
        raise ConnectionFailed(host, port, _why_not(error)) from None


def _why_not(error: OSError) -> str:
    """"Connection refused" rather than trio's "all attempts to connect ... failed"."""
    attempts = getattr(error.__cause__, "exceptions", ())
    reasons = sorted({os.strerror(attempt.errno) for attempt in attempts if isinstance(attempt, OSError) and attempt.errno})
    return "; ".join(reasons) or str(error)


class ClientAssociation(NServices):
    """An established association, as `connect` gives it. See the module docstring."""

    # --- C-ECHO and C-STORE ----------------------------------------------------------------

    async def echo(self) -> None:
        """C-ECHO; raises OperationFailed unless the peer answers Success."""
        await self._settle()
        context = self._context(VERIFICATION)
        rq = CEchoRQ(message_id=self._next_id(), affected_sop_class_uid=VERIFICATION)
        await self._send(rq, context.context_id)
        response = await self._response(rq, CEchoRSP, "C-ECHO response")
        if status_class(response.status) is not StatusClass.SUCCESS:
            raise OperationFailed("C-ECHO", response.status, error_comment=response.error_comment)

    async def store(
        self,
        source: str | os.PathLike[str] | Dataset,
        *,
        move_originator: MoveOriginator | None = None,
        priority: Priority = Priority.MEDIUM,
    ) -> StoreResult:
        """C-STORE a Part 10 file (streamed from disk as stored) or a pydicom Dataset.

        Returns the peer's answer whatever its status (see `StoreResult.ok`); raises
        NoPresentationContext when no accepted context fits, InvalidInput for a file that
        is not a usable Part 10 file.
        """
        await self._settle()
        if isinstance(source, Dataset):
            return await self._store_dataset(source, move_originator, priority)
        file = await trio.to_thread.run_sync(locate, source)
        context, convert = context_for_file(self._agreed(), file.sop_class_uid, file.transfer_syntax_uid)
        data: bytes | AsyncIterator[bytes]
        if convert:
            data = await trio.to_thread.run_sync(_converted, file.stored.path, context.transfer_syntax)
        elif file.length <= READ_CHUNK:
            data = await trio.to_thread.run_sync(read_whole, file)
        else:
            data = file_chunks(file)
        rq = self._store_request(file.sop_class_uid, file.sop_instance_uid, move_originator, priority)
        try:
            await self._send_dataset(rq, context.context_id, data)
        finally:
            if not isinstance(data, bytes):
                with trio.CancelScope(shield=True):
                    await data.aclose()
        response = await self._response(rq, CStoreRSP, "C-STORE response")
        return StoreResult(
            status=response.status,
            sop_class_uid=rq.affected_sop_class_uid,
            sop_instance_uid=rq.affected_sop_instance_uid,
            transfer_syntax_uid=context.transfer_syntax,
            bytes_sent=len(data) if isinstance(data, bytes) else file.length,
            converted=convert,
            error_comment=response.error_comment,
        )

    async def _store_dataset(
        self, dataset: Dataset, move_originator: MoveOriginator | None, priority: Priority
    ) -> StoreResult:
        if "SOPClassUID" not in dataset or "SOPInstanceUID" not in dataset:
            raise InvalidInput("a dataset to store needs SOP Class UID and SOP Instance UID")
        sop_class, sop_instance = str(dataset.SOPClassUID), str(dataset.SOPInstanceUID)
        context = context_for_dataset(self._agreed(), sop_class, dataset_transfer_syntax(dataset))
        data = await trio.to_thread.run_sync(_encoded, dataset, context.transfer_syntax)
        rq = self._store_request(sop_class, sop_instance, move_originator, priority)
        await self._send_dataset(rq, context.context_id, data)
        response = await self._response(rq, CStoreRSP, "C-STORE response")
        return StoreResult(
            status=response.status,
            sop_class_uid=sop_class,
            sop_instance_uid=sop_instance,
            transfer_syntax_uid=context.transfer_syntax,
            bytes_sent=len(data),
            error_comment=response.error_comment,
        )

    def _store_request(
        self, sop_class: str, sop_instance: str, originator: MoveOriginator | None, priority: Priority
    ) -> CStoreRQ:
        try:
            return CStoreRQ(
                message_id=self._next_id(),
                affected_sop_class_uid=sop_class,
                affected_sop_instance_uid=sop_instance,
                priority=priority,
                move_originator_ae_title=originator.ae_title if originator else None,
                move_originator_message_id=originator.message_id if originator else None,
            )
        except LocalProtocolError as error:
            raise InvalidInput(str(error)) from None

    # --- C-FIND, C-MOVE, C-GET -------------------------------------------------------------

    def find(self, query: Dataset, *, level: str, model: str = "study", priority: Priority = Priority.MEDIUM) -> FindQuery:
        """Matches of `query` at `level` (PATIENT, STUDY, SERIES, IMAGE), as they come."""
        sop_class = model_sop_class(model, "find")
        context = self._context(sop_class)
        identifier = self._identifier(query, level, model, context)
        rq = CFindRQ(message_id=self._next_id(), affected_sop_class_uid=sop_class, priority=priority)
        return FindQuery(self, rq, context, identifier)

    def move(
        self, query: Dataset, destination: str, *, level: str, model: str = "study", priority: Priority = Priority.MEDIUM
    ) -> MoveProgress:
        """Ask the peer to C-STORE the matches to the AE `destination` (which it must know)."""
        sop_class = model_sop_class(model, "move")
        context = self._context(sop_class)
        identifier = self._identifier(query, level, model, context)
        try:
            rq = CMoveRQ(
                message_id=self._next_id(), affected_sop_class_uid=sop_class, move_destination=destination, priority=priority
            )
        except LocalProtocolError as error:
            raise InvalidInput(f"move destination {destination!r}: {error}") from None
        return MoveProgress(self, rq, context, identifier)

    def get(
        self,
        query: Dataset,
        into: str | os.PathLike[str] | InstanceCallback,
        *,
        level: str,
        model: str = "study",
        priority: Priority = Priority.MEDIUM,
    ) -> GetProgress:
        """Retrieve the matches over this association: into a folder (Part 10 files named
        `<SOP Instance UID>.dcm`) or to a callback taking each `ReceivedInstance`.

        The instances arrive on storage contexts where we are SCP: propose them (the
        default contexts do, for the common storage classes; see retrieve_storage_contexts).
        """
        sop_class = model_sop_class(model, "get")
        context = self._context(sop_class)
        identifier = self._identifier(query, level, model, context)
        target = target_for(into, source_ae_title=self.called_ae_title)
        rq = CGetRQ(message_id=self._next_id(), affected_sop_class_uid=sop_class, priority=priority)
        return GetProgress(self, rq, context, identifier, target)

    def _identifier(self, query: Dataset, level: str, model: str, context: AcceptedContext) -> bytes:
        level = level.upper()
        if level not in LEVELS or (model == "study" and level == "PATIENT"):
            allowed = LEVELS[1:] if model == "study" else LEVELS
            raise InvalidInput(f"query level must be one of {', '.join(allowed)} in the {model} root model, not {level!r}")
        return self._encoded_query(query, context, level)

    def find_worklist(self, query: Dataset, *, priority: Priority = Priority.MEDIUM) -> FindQuery:
        """Modality Worklist C-FIND (no level): the scheduled procedure steps matching `query`."""
        context = self._context(MODALITY_WORKLIST_FIND)
        identifier = self._encoded_query(query, context, None)
        rq = CFindRQ(message_id=self._next_id(), affected_sop_class_uid=MODALITY_WORKLIST_FIND, priority=priority)
        return FindQuery(self, rq, context, identifier)

    def _encoded_query(self, query: Dataset, context: AcceptedContext, level: str | None) -> bytes:
        identifier = Dataset()
        if "SpecificCharacterSet" not in query and _has_non_ascii_text(query):
            # Without it the peer must read the values as ASCII: say they are UTF-8
            # (set first, so that pydicom encodes them so).
            identifier.SpecificCharacterSet = UTF8
        identifier.update(query)
        if level is not None:
            identifier.QueryRetrieveLevel = level
        try:
            return encode_dataset(identifier, context.transfer_syntax)
        except InvalidInput:
            raise
        except Exception as error:  # pydicom: a value that cannot be encoded
            raise InvalidInput(f"cannot encode the query: {error}") from None

    def _decode_identifier(self, data: bytes, context: AcceptedContext) -> Dataset:
        return decode_dataset(data, context.transfer_syntax)


UTF8 = "ISO_IR 192"


def _has_non_ascii_text(dataset: Dataset) -> bool:
    for element in dataset.iterall():
        values = element.value if isinstance(element.value, (list, tuple, MultiValue)) else [element.value]
        if any(isinstance(value, (str, PersonName)) and not str(value).isascii() for value in values):
            return True
    return False


def _converted(path, transfer_syntax: str) -> bytes:
    try:
        return convert_file(path, transfer_syntax)
    except InvalidInput:
        raise
    except Exception as error:  # pydicom could not read or re-encode it
        raise InvalidInput(f"{path}: cannot convert to {transfer_syntax}: {error}") from None


def _encoded(dataset: Dataset, transfer_syntax: str) -> bytes:
    try:
        return encode_dataset(dataset, transfer_syntax)
    except InvalidInput:
        raise
    except Exception as error:
        raise InvalidInput(f"cannot encode the dataset: {error}") from None


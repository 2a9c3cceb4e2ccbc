"""Query/Retrieve MOVE and GET as SCP (C-MOVE PS3.4 C.4.2, C-GET C.4.3).

Both find the instances an identifier names, send each as a C-STORE sub-operation and
report remaining/completed/failed/warning counts in a Pending response after each; they
differ in where the C-STOREs go. C-MOVE opens an association to the destination AE
(looked up in the AE registry); C-GET sends them back on the requesting association,
where the requestor has taken the storage SCP role. A C-CANCEL stops after the
sub-operation under way.

C-GET sends each instance as stored when a context in its transfer syntax was accepted
(the association chose the storage contexts' syntaxes by what the node holds:
protocol/sending_syntaxes.py), else converted into a syntax the requestor took
(storage/transcoding.py: compressed data is decompressed); a sub-operation that can go
neither way fails, and the first such reason is the final response's Error Comment.

Final status: Success when nothing failed; Warning B000 when some sub-operations failed
or warned; Failure A702 when all of them failed; Cancel FE00 after a C-CANCEL. Each but
Success carries the Failed SOP Instance UID List when there are failures.
"""

import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import attrs
import trio
from pydicom import Dataset

from ....protocol.catalog import GET_MODELS, MOVE_MODELS, name_of
from ....protocol.commands import CGetRQ, CGetRSP, CMoveRQ, CMoveRSP, CStoreRQ, CStoreRSP
from ....protocol.datasets import encode_dataset
from ....protocol.negotiation import AcceptedContext, SupportedContext
from ....protocol.status import QueryRetrieveStatus, Status, StatusClass, status_class
from ....storage import audit_records
from ....storage.query import InformationModel, RetrieveItem
from ....storage.transcoding import TranscodeError, transcode
from ..activity import RetrieveFinished
from ..ae_registry import LookupAE, UnknownAE
from ....client.connection import connect, storage_contexts_for
from ....client.datasets import context_for_file, file_chunks, locate, read_whole
from ....client.errors import ClientError, ConnectionFailed, NoPresentationContext
from ....client.results import MoveOriginator
from ...runtime.actor import ActorContext
from ...runtime.errors import ActorError, ReplyError
from ..index import HeldSyntaxes, InstanceList, ListHeldSyntaxes, ListInstances, QueryRefused
from ..index_hsm import TouchInstances
from ..tiers import Stage, Staged, discard_staged
from ....client.link import LinkClosed
from .base import RunningOperation, Service, Session
from .identifiers import BadIdentifier, audited_keys, read_identifier


@attrs.define
class SubOperations:
    remaining: int
    completed: int = 0
    failed: int = 0
    warning: int = 0
    failed_uids: list[str] = attrs.Factory(list)
    first_reason: str | None = None  # why the first sub-operation that could not go did not (an LO)

    def record(self, sop_instance_uid: str, status: int | None, *, reason: str | None = None) -> None:
        """Count one sub-operation by the status its C-STORE got (None: it never got one,
        for `reason`)."""
        if reason is not None and self.first_reason is None:
            self.first_reason = reason
        self.remaining -= 1
        kind = status_class(status) if status is not None else StatusClass.FAILURE
        if kind is StatusClass.SUCCESS:
            self.completed += 1
        elif kind is StatusClass.WARNING:
            self.warning += 1
        else:
            self.failed += 1
            self.failed_uids.append(sop_instance_uid)

    def fail_the_rest(self, items: list[RetrieveItem]) -> None:
        for item in items:
            self.record(item.sop_instance_uid, None)

    def counts(self, *, final: bool) -> dict[str, int | None]:
        return {
            "remaining_suboperations": None if final else self.remaining,
            "completed_suboperations": self.completed,
            "failed_suboperations": self.failed,
            "warning_suboperations": self.warning,
        }

    def final_status(self, cancelled: bool) -> int:
        if cancelled:
            return QueryRetrieveStatus.CANCELED
        if self.failed and not (self.completed or self.warning):
            return QueryRetrieveStatus.OUT_OF_RESOURCES_SUB_OPERATIONS
        if self.failed or self.warning:
            return QueryRetrieveStatus.SUB_OPERATIONS_WITH_FAILURES
        return Status.SUCCESS

    def failed_list(self) -> Dataset | None:
        if not self.failed_uids:
            return None
        dataset = Dataset()
        dataset.FailedSOPInstanceUIDList = self.failed_uids
        return dataset


@asynccontextmanager
async def local_file(ctx: ActorContext, tiers_path: str, item: RetrieveItem) -> AsyncIterator[Path]:
    """A local file holding the instance, from its tier: a local tier's own file, or a
    checked copy an object store's tier staged (streamed to disk, never whole in memory),
    removed once read. Raises OSError when the tier cannot provide it. C-MOVE, C-GET and
    WADO-RS read instances through here."""
    try:
        staged: Staged = await ctx.lookup(f"{tiers_path}/{item.tier}").ask(
            Stage(key=item.file_path, expected_sha256=item.sha256 or None, size=item.file_size), timeout=None
        )
    except (ReplyError, ActorError) as error:
        raise OSError(f"tier {item.tier}: {error}") from None
    try:
        yield Path(staged.path)
    finally:
        discard_staged(staged)


class _Retrieve(Service):
    permission = "retrieve"
    operation = True
    response_type: type[CMoveRSP] | type[CGetRSP]

    def __init__(
        self, *, index_path: str, patient_level_in_study_root: bool = True,
        tiers_path: str = "/node/services/tiers", track_access_time: bool = False,
    ) -> None:
        self.index_path = index_path
        self.patient_level_in_study_root = patient_level_in_study_root
        self.tiers_path = tiers_path
        self.track_access_time = track_access_time

    def local_file(self, session: Session, item: RetrieveItem) -> AbstractAsyncContextManager[Path]:
        return local_file(session.ctx, self.tiers_path, item)

    async def touch(self, session: Session, items: list[RetrieveItem]) -> None:
        """Record the access (one batched update per request, before the final response),
        when access times are tracked. Losing it costs only an earlier migration."""
        if self.track_access_time and items:
            try:
                await session.ctx.lookup(self.index_path).ask(
                    TouchInstances(sop_instance_uids=tuple(i.sop_instance_uid for i in items)), timeout=TOUCH_TIMEOUT
                )
            except (ReplyError, ActorError) as error:
                session.log.warning("access times not recorded", instances=len(items), error=str(error))

    async def handle(self, session: Session, received, operation: RunningOperation | None) -> None:
        assert operation is not None
        request = received.message
        began = trio.current_time()
        try:
            identifier, model, transfer_syntax = read_identifier(session, received)
            model = self._lenient_model(session, identifier, model)
            destination = await self.destination(session, request)
            items = await self._instances(session, identifier, model)
        except BadIdentifier as bad:
            session.log.warning(f"{self.verb} refused", status=hex(bad.status), reason=bad.reason)
            await self._respond(session, received, bad.status, comment=bad.comment)
            return
        counts = SubOperations(remaining=len(items))
        session.log.info(f"{self.verb} started", instances=len(items), destination=getattr(request, "move_destination", None))
        await self.run_sub_operations(session, received, operation, items, counts, destination)
        await self.touch(session, items)
        status = counts.final_status(operation.cancel_requested)
        failed = counts.failed_list()
        session.log.info(f"{self.verb} finished", status=hex(status), completed=counts.completed, failed=counts.failed, warning=counts.warning)
        session.ctx.publish(RetrieveFinished(
            association_id=session.association_id, kind=self.verb, completed=counts.completed, failed=counts.failed,
            seconds=trio.current_time() - began, status=status,
        ))
        keys = audited_keys(identifier)
        patient_id = keys.get("PatientID", "")
        await session.audit(audit_records.retrieve(
            session.called_ae_title, session.audit_peer(), kind=self.verb,
            destination=getattr(request, "move_destination", None) or session.calling_ae_title,
            studies=[(uid, patient_id) for uid in keys.get("StudyInstanceUID", "").split("\\")] if patient_id or "StudyInstanceUID" in keys else [],
            completed=counts.completed, failed=counts.failed, status=status,
        ))
        await self._respond(
            session, received, status, counts=counts.counts(final=status != QueryRetrieveStatus.CANCELED),
            comment=counts.first_reason if status != Status.SUCCESS else None,
            dataset=encode_dataset(failed, transfer_syntax) if failed is not None else None,
        )

    verb = "retrieve"

    def _lenient_model(self, session: Session, identifier: Dataset, model: InformationModel) -> InformationModel:
        """A Study Root retrieve at PATIENT level (not in that model: strictly A900) is
        served as the Patient Root one it means, unless the leniency is switched off.
        Orthanc moves a patient this way."""
        level = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
        if model is InformationModel.STUDY_ROOT and level == "PATIENT" and self.patient_level_in_study_root:
            session.log.info(f"Study Root {self.verb} at PATIENT level served as Patient Root ([query] patient_level_in_study_root)")
            return InformationModel.PATIENT_ROOT
        return model

    async def destination(self, session: Session, request):
        return None

    async def run_sub_operations(self, session, received, operation, items, counts, destination) -> None:
        raise NotImplementedError

    async def _instances(self, session: Session, identifier: Dataset, model) -> list[RetrieveItem]:
        try:
            found: InstanceList = await session.ctx.lookup(self.index_path).ask(
                ListInstances(identifier=identifier, model=model), timeout=None
            )
        except QueryRefused as refused:
            raise BadIdentifier(refused.status, refused.comment, refused.reason) from None
        return list(found.items)

    async def pending(self, session: Session, received, counts: SubOperations) -> None:
        await self._respond(session, received, QueryRetrieveStatus.PENDING, counts=counts.counts(final=False))

    async def _respond(self, session: Session, received, status: int, *, counts=None, comment=None, dataset=None) -> None:
        request = received.message
        await session.link.send(
            self.response_type(
                message_id_being_responded_to=request.message_id,
                status=status,
                affected_sop_class_uid=request.affected_sop_class_uid,
                error_comment=comment,
                has_dataset=dataset is not None,
                **(counts or {}),
            ),
            received.context_id,
            dataset,
        )


TOUCH_TIMEOUT = 30.0


class MoveService(_Retrieve):
    requests = (CMoveRQ,)
    response_type = CMoveRSP
    verb = "move"

    def __init__(
        self, *, index_path: str, aes_path: str, ae_title: str, dimse_timeout: float,
        patient_level_in_study_root: bool = True, tls_client: Callable[[], ssl.SSLContext] | None = None, **tiers,
    ) -> None:
        """`tls_client`: makes the context for destinations marked tls ([tls] settings);
        None: such a destination cannot be reached (its sub-operations fail)."""
        super().__init__(index_path=index_path, patient_level_in_study_root=patient_level_in_study_root, **tiers)
        self.aes_path = aes_path
        self.ae_title = ae_title
        self.dimse_timeout = dimse_timeout
        self.tls_client = tls_client

    def contexts(self) -> list[SupportedContext]:
        return [SupportedContext(abstract_syntax=uid) for uid in MOVE_MODELS]

    async def destination(self, session: Session, request: CMoveRQ):
        try:
            return await session.ctx.lookup(self.aes_path).ask(LookupAE(ae_title=request.move_destination.strip()))
        except UnknownAE as unknown:
            raise BadIdentifier(QueryRetrieveStatus.MOVE_DESTINATION_UNKNOWN, str(unknown)) from None

    async def run_sub_operations(self, session, received, operation, items, counts, destination) -> None:
        if not items:
            return
        originator = MoveOriginator(ae_title=session.calling_ae_title, message_id=received.message.message_id)
        contexts = storage_contexts_for(sorted({(i.sop_class_uid, i.transfer_syntax_uid) for i in items}))
        queue = list(items)
        try:
            if destination.tls and self.tls_client is None:
                raise ConnectionFailed(destination.host, destination.port, "the destination needs TLS and [tls] has no certificates")
            async with connect(
                destination.host,
                destination.port,
                called_ae_title=destination.ae_title,
                calling_ae_title=self.ae_title,
                contexts=contexts,
                dimse_timeout=self.dimse_timeout,
                ssl_context=self.tls_client() if destination.tls else None,
            ) as association:
                while queue and not operation.cancel_requested:
                    item = queue.pop(0)
                    try:
                        async with self.local_file(session, item) as path:
                            result = await association.store(path, move_originator=originator)
                        status: int | None = result.status
                    except OSError as error:
                        session.log.warning("move sub-operation impossible", sop_instance_uid=item.sop_instance_uid, error=str(error))
                        status = None
                    except ClientError as error:
                        session.log.warning("move sub-operation failed", sop_instance_uid=item.sop_instance_uid, error=str(error))
                        status = None
                    counts.record(item.sop_instance_uid, status)
                    await self.pending(session, received, counts)
        except ClientError as error:  # the destination refused or dropped the association
            session.log.warning("move destination failed", destination=destination.ae_title, error=str(error))
            counts.fail_the_rest(queue)


class GetService(_Retrieve):
    requests = (CGetRQ,)
    response_type = CGetRSP
    verb = "get"

    def __init__(
        self, *, index_path: str, dimse_timeout: float, patient_level_in_study_root: bool = True, **tiers
    ) -> None:
        """`tiers`: tiers_path and track_access_time, as _Retrieve takes them."""
        super().__init__(index_path=index_path, patient_level_in_study_root=patient_level_in_study_root, **tiers)
        self.dimse_timeout = dimse_timeout

    def contexts(self) -> list[SupportedContext]:
        return [SupportedContext(abstract_syntax=uid) for uid in GET_MODELS]

    async def held_syntaxes(self, ctx, sop_classes) -> dict[str, tuple[str, ...]] | None:
        try:
            held: HeldSyntaxes = await ctx.lookup(self.index_path).ask(ListHeldSyntaxes(sop_classes=tuple(sorted(sop_classes))))
        except (ReplyError, ActorError) as error:  # the association goes on, choosing as if anything were held
            ctx.log.warning("cannot tell which transfer syntaxes are held; choosing for any", error=str(error))
            return None
        return held.by_class

    async def run_sub_operations(self, session, received, operation, items, counts, destination) -> None:
        for item in items:
            if operation.cancel_requested:
                return
            try:
                status = await self._store_back(session, operation, item)
            except SubOperationImpossible as impossible:
                session.log.warning("get sub-operation impossible", sop_instance_uid=item.sop_instance_uid, reason=impossible.reason)
                counts.record(item.sop_instance_uid, None, reason=impossible.comment)
            else:
                counts.record(item.sop_instance_uid, status)
            await self.pending(session, received, counts)

    async def _store_back(self, session: Session, operation: RunningOperation, item: RetrieveItem) -> int | None:
        """One C-STORE to the requestor on this association, the file as stored when a
        context in its syntax was accepted, else converted (see _context_for); its status."""
        try:
            async with self.local_file(session, item) as path:
                return await self._send_file(session, operation, path)
        except OSError as error:
            raise SubOperationImpossible(str(error)) from None

    async def _send_file(self, session: Session, operation: RunningOperation, path: Path) -> int | None:
        try:
            file = await trio.to_thread.run_sync(locate, path)
        except (ClientError, OSError) as error:
            raise SubOperationImpossible(str(error)) from None
        context, convert = _context_for(session, file.sop_class_uid, file.transfer_syntax_uid)
        if convert:
            try:
                data = await trio.to_thread.run_sync(transcode, path, context.transfer_syntax)
            except TranscodeError as error:
                raise SubOperationImpossible(
                    f"stored as {name_of(file.transfer_syntax_uid)}; the requestor takes "
                    f"{name_of(context.transfer_syntax)}, and {error}",
                    f"cannot convert stored TS {file.transfer_syntax_uid}",
                ) from None
        elif file.length <= 4 * 1024 * 1024:
            data = await trio.to_thread.run_sync(read_whole, file)
        else:
            data = file_chunks(file)
        request = CStoreRQ(
            message_id=session.next_message_id(),
            affected_sop_class_uid=file.sop_class_uid,
            affected_sop_instance_uid=file.sop_instance_uid,
        )
        await session.link.send(request, context.context_id, data)
        with trio.move_on_after(self.dimse_timeout):
            while True:
                response = await operation.responses.receive()
                if isinstance(response, CStoreRSP) and response.message_id_being_responded_to == request.message_id:
                    return response.status
        session.log.warning("no C-STORE response within the DIMSE timeout: aborting", timeout=self.dimse_timeout)
        await session.link.abort()
        raise LinkClosed("the requestor stopped answering sub-operations")


class SubOperationImpossible(Exception):
    """A C-GET sub-operation that cannot be sent: the reason goes to the log and, for the
    first one, its short form (an LO, 64 characters) to the final response's Error Comment."""

    def __init__(self, reason: str, comment: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.comment = (comment or reason)[:64]


def _context_for(session: Session, sop_class: str, syntax: str) -> tuple[AcceptedContext, bool]:
    """(context, must convert) for sending a stored instance back to a C-GET requestor."""
    try:
        return context_for_file(session.negotiated, sop_class, syntax, any_conversion=True)
    except NoPresentationContext:
        pass
    accepted = sorted({c.transfer_syntax for c in session.negotiated.contexts if c.abstract_syntax == sop_class and c.local_scu})
    if not accepted:
        raise SubOperationImpossible(
            f"the requestor accepted no context to receive {name_of(sop_class)} on",
            f"no accepted context for SOP class {sop_class}",
        ) from None
    raise SubOperationImpossible(
        f"stored as {name_of(syntax)}; the requestor takes {name_of(sop_class)} only in "
        f"{', '.join(name_of(ts) for ts in accepted)}, and the node does not compress",
        f"stored TS {syntax} not accepted, not convertible",
    ) from None

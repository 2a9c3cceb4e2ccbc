"""Query/Retrieve MOVE and GET as SCP (C-MOVE PS3.4 C.4.2, C-GET C.4.3).

Both find the instances an identifier names, send each as a C-STORE sub-operation and
report remaining/completed/failed/warning counts in a Pending response after each; they
differ in where the C-STOREs go. C-MOVE opens an association to the destination AE
(looked up in the AE registry); C-GET sends them back on the requesting association,
where the requestor has taken the storage SCP role. A C-CANCEL stops after the
sub-operation under way.

Final status: Success when nothing failed; Warning B000 when some sub-operations failed
or warned; Failure A702 when all of them failed; Cancel FE00 after a C-CANCEL. Each but
Success carries the Failed SOP Instance UID List when there are failures.
"""

from pathlib import Path

import attrs
import trio
from pydicom import Dataset

from ...protocol.catalog import GET_MODELS, MOVE_MODELS
from ...protocol.commands import CGetRQ, CGetRSP, CMoveRQ, CMoveRSP, CStoreRQ, CStoreRSP
from ...protocol.datasets import encode_dataset
from ...protocol.negotiation import SupportedContext
from ...protocol.status import QueryRetrieveStatus, Status, StatusClass, status_class
from ...storage.query import RetrieveItem
from ..ae_registry import LookupAE, UnknownAE
from ..client import connect, storage_contexts_for
from ..client_datasets import context_for_file, convert_file, file_chunks, locate, read_whole
from ..client_errors import ClientError
from ..client_results import MoveOriginator
from ..index import InstanceList, ListInstances, QueryRefused
from ..link import LinkClosed
from .base import Operation, Service, Session
from .identifiers import BadIdentifier, read_identifier


@attrs.define
class SubOperations:
    remaining: int
    completed: int = 0
    failed: int = 0
    warning: int = 0
    failed_uids: list[str] = attrs.Factory(list)

    def record(self, sop_instance_uid: str, status: int | None) -> None:
        """Count one sub-operation by the status its C-STORE got (None: it never got one)."""
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


class _Retrieve(Service):
    operation = True
    response_type: type[CMoveRSP] | type[CGetRSP]

    def __init__(self, *, index_path: str, root: Path) -> None:
        self.index_path = index_path
        self.root = root

    async def handle(self, session: Session, received, operation: Operation | None) -> None:
        assert operation is not None
        request = received.message
        try:
            identifier, model, transfer_syntax = read_identifier(session, received)
            destination = await self.destination(session, request)
            items = await self._instances(session, identifier, model)
        except BadIdentifier as bad:
            await self._respond(session, received, bad.status, comment=bad.comment)
            return
        counts = SubOperations(remaining=len(items))
        session.log.info(f"{self.verb} started", instances=len(items), destination=getattr(request, "move_destination", None))
        await self.run_sub_operations(session, received, operation, items, counts, destination)
        status = counts.final_status(operation.cancel_requested)
        failed = counts.failed_list()
        session.log.info(f"{self.verb} finished", status=hex(status), completed=counts.completed, failed=counts.failed, warning=counts.warning)
        await self._respond(
            session, received, status, counts=counts.counts(final=status != QueryRetrieveStatus.CANCELED),
            dataset=encode_dataset(failed, transfer_syntax) if failed is not None else None,
        )

    verb = "retrieve"

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
            raise BadIdentifier(refused.status, refused.comment) from None
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


class MoveService(_Retrieve):
    requests = (CMoveRQ,)
    response_type = CMoveRSP
    verb = "move"

    def __init__(self, *, index_path: str, root: Path, aes_path: str, ae_title: str, dimse_timeout: float) -> None:
        super().__init__(index_path=index_path, root=root)
        self.aes_path = aes_path
        self.ae_title = ae_title
        self.dimse_timeout = dimse_timeout

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
            async with connect(
                destination.host,
                destination.port,
                called_ae_title=destination.ae_title,
                calling_ae_title=self.ae_title,
                contexts=contexts,
                dimse_timeout=self.dimse_timeout,
            ) as association:
                while queue and not operation.cancel_requested:
                    item = queue.pop(0)
                    try:
                        result = await association.store(self.root / item.file_path, move_originator=originator)
                        status: int | None = result.status
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

    def __init__(self, *, index_path: str, root: Path, dimse_timeout: float) -> None:
        super().__init__(index_path=index_path, root=root)
        self.dimse_timeout = dimse_timeout

    def contexts(self) -> list[SupportedContext]:
        return [SupportedContext(abstract_syntax=uid) for uid in GET_MODELS]

    async def run_sub_operations(self, session, received, operation, items, counts, destination) -> None:
        for item in items:
            if operation.cancel_requested:
                return
            status = await self._store_back(session, operation, item)
            counts.record(item.sop_instance_uid, status)
            await self.pending(session, received, counts)

    async def _store_back(self, session: Session, operation: Operation, item: RetrieveItem) -> int | None:
        """One C-STORE to the requestor on this association; its status, None if it failed to go."""
        path = self.root / item.file_path
        try:
            file = await trio.to_thread.run_sync(locate, path)
            context, convert = context_for_file(session.negotiated, file.sop_class_uid, file.transfer_syntax_uid)
        except (ClientError, OSError) as error:
            session.log.warning("get sub-operation impossible", sop_instance_uid=item.sop_instance_uid, error=str(error))
            return None
        if convert:
            data = await trio.to_thread.run_sync(convert_file, path, context.transfer_syntax)
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

"""C-FIND, C-MOVE and C-GET as async iterators over their responses.

An operation sends its request when first iterated and yields as the Pending responses
come: matches for C-FIND, sub-operation counts for C-MOVE and C-GET. The final response
ends the iteration; a Failure final status raises `OperationFailed`.

An operation left unfinished (the loop broke out early, the task was cancelled) stays
the association's active operation: the next request on the association, or leaving the
`async with connect(...)` block, cancels it with C-CANCEL and reads its remaining
responses first. `await operation.cancel()` does the same at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydicom.dataset import Dataset
from pydicom.tag import Tag

from ..protocol.commands import CFindRSP, CGetRSP, CMoveRSP, DimseRequest
from ..protocol.negotiation import AcceptedContext
from ..protocol.status import Service, StatusClass, status_class
from .errors import OperationFailed
from .receive import InstanceTarget
from .results import RetrieveProgress
from .link import MemorySink, MessageReceived

if TYPE_CHECKING:
    from .connection import ClientAssociation  # the session plus _decode_identifier

FAILED_SOP_INSTANCE_UID_LIST = Tag(0x0008, 0x0058)


class Operation:
    """One request with several responses, from the first send to the final status."""

    name = ""
    service = Service.GENERAL
    response_type: type = object

    def __init__(
        self,
        association: ClientAssociation,
        request: DimseRequest,
        context: AcceptedContext,
        identifier: bytes,
        target: InstanceTarget | None = None,
    ) -> None:
        self.association = association
        self.request = request
        self.context = context
        self.identifier = identifier
        self.target = target  # C-GET: where the instances go
        self.started = False
        self.cancel_sent = False
        self.done = False
        self.final_status: int | None = None
        self.error_comment: str | None = None

    @property
    def message_id(self) -> int:
        return self.request.message_id

    def __aiter__(self):
        return self

    async def cancel(self) -> None:
        """Send C-CANCEL (if the request went out and is unfinished) and read the
        remaining responses, up to the final one."""
        if self.started and not self.done:
            await self.association._cancel(self)

    async def _next_response(self) -> MessageReceived:
        if not self.started:
            self.started = True
            await self.association._begin(self)
        received = await self.association._response_to(self.message_id, f"{self.name} response")
        if not isinstance(received.message, self.response_type):
            await self.association._give_up(f"the peer answered {self.name} with {type(received.message).__name__}")
        return received

    def take(self, received: MessageReceived) -> StatusClass:
        """Record a response; returns its status class (the final one ends the operation)."""
        response = received.message
        klass = status_class(response.status)
        if klass is not StatusClass.PENDING:
            self.done = True
            self.final_status = response.status
            self.error_comment = response.error_comment
            self.association._finished(self)
        return klass

    async def drain(self) -> None:
        """After C-CANCEL: read and drop responses until the final one."""
        while not self.done:
            self.take(await self.association._response_to(self.message_id, f"final {self.name} response"))

    def failure(self, progress: RetrieveProgress | None = None) -> OperationFailed:
        assert self.final_status is not None
        return OperationFailed(
            self.name, self.final_status, service=self.service, error_comment=self.error_comment, progress=progress
        )


class FindQuery(Operation):
    """`async for match in association.find(query, level=...)`: each match a pydicom Dataset."""

    name = "C-FIND"
    service = Service.FIND
    response_type = CFindRSP

    async def __anext__(self) -> Dataset:
        while not self.done:
            received = await self._next_response()
            klass = self.take(received)
            if klass is StatusClass.PENDING:
                if isinstance(received.dataset, MemorySink):
                    return self.association._decode_identifier(received.dataset.data, self.context)
                continue  # a Pending without an identifier: nothing to hand out
            if klass is StatusClass.FAILURE:
                raise self.failure()
        raise StopAsyncIteration


class Retrieval(Operation):
    """`async for progress in association.move(...)` / `.get(...)`: a RetrieveProgress per
    response, the last one with `final=True`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.received = 0  # C-GET: instances this client took in
        self.last: RetrieveProgress | None = None

    async def __anext__(self) -> RetrieveProgress:
        if self.done:
            raise StopAsyncIteration
        received = await self._next_response()
        klass = self.take(received)
        progress = self._progress(received)
        self.last = progress
        if klass is StatusClass.FAILURE:
            raise self.failure(progress)
        return progress

    def _progress(self, received: MessageReceived) -> RetrieveProgress:
        response = received.message
        failed_uids: tuple[str, ...] = ()
        if isinstance(received.dataset, MemorySink) and received.dataset.data:
            try:
                identifier = self.association._decode_identifier(received.dataset.data, self.context)
                element = identifier.get(FAILED_SOP_INSTANCE_UID_LIST)
                if element is not None and element.value:
                    failed_uids = _uid_list(element.value)
            except Exception:  # an unreadable list must not hide the counts
                failed_uids = ()
        return RetrieveProgress(
            operation=self.name,
            status=response.status,
            final=self.done,
            remaining=response.remaining_suboperations,
            completed=response.completed_suboperations,
            failed=response.failed_suboperations,
            warning=response.warning_suboperations,
            failed_sop_instance_uids=failed_uids,
            error_comment=response.error_comment,
            received=self.received,
        )


def _uid_list(value: object) -> tuple[str, ...]:
    if isinstance(value, str):  # one value (pydicom gives a str for VM 1)
        return tuple(uid for uid in value.split("\\") if uid)
    return tuple(str(uid) for uid in value)  # a MultiValue


class MoveProgress(Retrieval):
    name = "C-MOVE"
    service = Service.MOVE
    response_type = CMoveRSP


class GetProgress(Retrieval):
    name = "C-GET"
    service = Service.GET
    response_type = CGetRSP

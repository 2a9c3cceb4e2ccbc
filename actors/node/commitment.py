"""The storage commitment actor: checks what requestors ask it to commit, and reports.

For each request (from the N-ACTION service, `RequestCommitment`):

1. record it in the index (only then is the N-ACTION answered: a restart loses none);
2. check every referenced instance (storage/commitment.py: in the index under its SOP
   class, file readable, SHA-256 as recorded) and record the result;
3. report it with N-EVENT-REPORT: on the association the request came on while that is
   open (a `SendRequest` to the association, which sends it between its other work),
   else on a new association to the requestor's `[[remote]]` entry, proposing the SCP
   role by role selection (PS3.4 J.3.3);
4. if that fails (the requestor is down, unknown, or refuses), try again after a delay
   that doubles from `retry_initial` up to `retry_max`, at most `max_attempts` times;
   each attempt is recorded, so a restart picks the schedule up where it was.

At start the actor resumes whatever the index holds unfinished: requests not checked yet
are checked, results not delivered are delivered (on a new association: the one they
came on is gone). The checks, deliveries and timers run in the actor's nursery and report
back with messages (`Checked`, `DeliveryDue`); the mailbox never waits on them.
"""

import math
import ssl
import time
from collections.abc import Callable, Mapping

import attrs
import trio

from ...client.commitment import commitment_contexts, event_information
from ...client.connection import connect
from ...client.errors import ClientError, ConnectionFailed
from ...protocol.catalog import STORAGE_COMMITMENT_PUSH_MODEL, STORAGE_COMMITMENT_PUSH_MODEL_INSTANCE
from ...protocol.commands import NEventReportRQ
from ...protocol.status import Status
from ...storage.commitment import CommitmentResult, StoredCopy, check_instances
from ...storage.object_checks import ObjectCheck
from ...storage.commitment_db import CHECKING, CommitmentRequest
from ..runtime.actor import Actor
from ..runtime.errors import ActorError, ReplyError
from ..runtime.mailbox import Reply
from .ae_registry import LookupAE
from .commitment_messages import Checked, CommitmentAccepted, DeliveryDue, RequestCommitment
from .dimse_n_events import StorageCommitmentAbandoned, StorageCommitmentReported, StorageCommitmentRetrying
from .index_dimse_n import (
    ListUnfinishedCommitments,
    LookupStoredCopies,
    RecordCommitmentResult,
    RecordReportAttempt,
    RecordReported,
    SaveCommitmentRequest,
)
from .outgoing import PeerUnavailable, SendRequest
from .tiers import CheckObjects, tier_path


@attrs.frozen(kw_only=True)
class CommitmentSettings:
    ae_title: str  # ours: the calling AE title of the associations we open to report
    retry_initial: float = 10.0
    retry_max: float = 3600.0
    max_attempts: int = 50
    connect_timeout: float = 10.0
    dimse_timeout: float = 60.0
    # Makes our TLS client context for requestors marked tls ([tls]); None: they cannot be reached.
    tls_client: Callable[[], ssl.SSLContext] | None = None

    def delay(self, attempts: int) -> float:
        """Seconds before attempt `attempts + 1`, after `attempts` failures."""
        return min(self.retry_initial * 2 ** max(attempts - 1, 0), self.retry_max)


class Undelivered(Exception):
    pass


class CommitmentActor(Actor):
    accepts = (RequestCommitment, Checked, DeliveryDue)
    # No files of its own: the tiers check the instances (a replay has no tiers).
    resources: dict = {}

    def __init__(self, *, settings: CommitmentSettings, index_path: str, aes_path: str) -> None:
        self.settings = settings
        self.index_path = index_path
        self.aes_path = aes_path
        self._requests: dict[str, CommitmentRequest] = {}  # unfinished, by Transaction UID

    async def on_start(self) -> None:
        unfinished = (await self._index(ListUnfinishedCommitments())).requests
        for request in unfinished:
            # The associations they came on are gone with the previous run.
            request = attrs.evolve(request, association="")
            self._requests[request.transaction_uid] = request
            if request.state == CHECKING or request.result is None:
                self.ctx.nursery.start_soon(self._check, request)
            else:
                wait = 0.0 if request.next_attempt_at is None else max(0.0, request.next_attempt_at - time.time())
                self.ctx.nursery.start_soon(self._due_after, request.transaction_uid, wait)
        if unfinished:
            self.ctx.log.info("resuming storage commitment requests", count=len(unfinished))

    async def handle(self, message):
        match message:
            case RequestCommitment():
                self.ctx.nursery.start_soon(self._accept, message, self.ctx.defer_reply())
            case Checked(transaction_uid=uid, result=result):
                request = self._requests.get(uid)
                if request is not None:
                    self._requests[uid] = attrs.evolve(request, result=result)
                    self.ctx.nursery.start_soon(self._deliver, self._requests[uid])
            case DeliveryDue(transaction_uid=uid):
                request = self._requests.get(uid)
                if request is not None:
                    self.ctx.nursery.start_soon(self._check if request.result is None else self._deliver, request)

    async def _index(self, message):
        return await self.ctx.lookup(self.index_path).ask(message, timeout=None)

    # -- recording and checking -------------------------------------------------------------

    async def _accept(self, message: RequestCommitment, reply: Reply) -> None:
        request = CommitmentRequest(
            transaction_uid=message.transaction_uid,
            requestor_ae_title=message.requestor_ae_title,
            referenced=message.referenced,
            association=message.association,
            context_id=message.context_id,
            received_at=time.time(),
        )
        try:
            saved = await self._index(SaveCommitmentRequest(request=request))
        except (ActorError, ReplyError) as error:
            reply.fail(ReplyError(f"the request could not be recorded: {error}"))
            return
        reply.send(CommitmentAccepted(new=saved.new))
        if not saved.new:
            self.ctx.log.warning("storage commitment asked again while under way", transaction_uid=request.transaction_uid)
            return
        self._requests[request.transaction_uid] = request
        await self._check(request)

    async def _check_objects(self, copies: Mapping[str, StoredCopy]) -> dict[str, ObjectCheck | str]:
        """Each copy checked by the tier holding it (one question per tier); a tier that
        cannot be asked fails its instances, with why."""
        by_tier: dict[str, list[str]] = {}
        for uid, copy in copies.items():
            by_tier.setdefault(copy.tier, []).append(uid)
        found: dict[str, ObjectCheck | str] = {}
        for tier, uids in by_tier.items():
            try:
                checked = await self.ctx.lookup(tier_path(tier)).ask(
                    CheckObjects(expected=tuple(copies[uid].expected() for uid in uids)), timeout=None
                )
            except (ActorError, ReplyError) as error:
                found.update((uid, f"its tier could not check it: {error}") for uid in uids)
                continue
            found.update(zip(uids, checked.checks))
        return found

    async def _check(self, request: CommitmentRequest) -> None:
        uids = tuple(dict.fromkeys(i.sop_instance_uid for i in request.referenced))
        try:
            copies = (await self._index(LookupStoredCopies(sop_instance_uids=uids))).copies
            result, why = check_instances(request.referenced, copies, await self._check_objects(copies))
            await self._index(RecordCommitmentResult(transaction_uid=request.transaction_uid, result=result))
        except (ActorError, ReplyError) as error:
            # The index is restarting or failing: try again later (DeliveryDue re-checks).
            self.ctx.log.error("storage commitment check failed", transaction_uid=request.transaction_uid, error=str(error))
            await self._due_after(request.transaction_uid, self.settings.retry_initial)
            return
        for uid, reason in why.items():
            self.ctx.log.warning("instance not committed", transaction_uid=request.transaction_uid, sop_instance_uid=uid, reason=reason)
        self.ctx.log.info(
            "storage commitment checked", transaction_uid=request.transaction_uid, committed=len(result.success), failed=len(result.failed)
        )
        await self.ctx.ref.send(Checked(transaction_uid=request.transaction_uid, result=result))

    # -- reporting ------------------------------------------------------------------------------

    async def _deliver(self, request: CommitmentRequest) -> None:
        assert request.result is not None
        same = False
        try:
            if request.association and await self._on_same_association(request):
                same = True
            else:
                await self._on_new_association(request)
        except Undelivered as failure:
            await self._failed(request, str(failure))
            return
        try:
            await self._index(RecordReported(transaction_uid=request.transaction_uid))
        except (ActorError, ReplyError) as error:  # delivered all the same: at worst reported again after a restart
            self.ctx.log.error("could not record a delivered report", transaction_uid=request.transaction_uid, error=str(error))
        self._requests.pop(request.transaction_uid, None)
        self.ctx.log.info(
            "storage commitment reported", transaction_uid=request.transaction_uid, requestor=request.requestor_ae_title,
            same_association=same,
        )
        self.ctx.publish(
            StorageCommitmentReported(
                transaction_uid=request.transaction_uid,
                requestor_ae_title=request.requestor_ae_title,
                committed=len(request.result.success),
                failed=len(request.result.failed),
                same_association=same,
            )
        )

    def _report(self, result: CommitmentResult, transaction_uid: str):
        event_type, information = event_information(transaction_uid, result)
        rq = NEventReportRQ(
            message_id=1,  # the sender numbers it
            affected_sop_class_uid=STORAGE_COMMITMENT_PUSH_MODEL,
            affected_sop_instance_uid=STORAGE_COMMITMENT_PUSH_MODEL_INSTANCE,
            event_type_id=event_type,
            has_dataset=True,
        )
        return rq, information

    async def _on_same_association(self, request: CommitmentRequest) -> bool:
        """True once the report is answered on the request's association; False when that
        association is gone (then a new one is tried at once)."""
        rq, information = self._report(request.result, request.transaction_uid)
        try:
            association = self.ctx.lookup(request.association)
            answer = await association.ask(
                SendRequest(request=rq, context_id=request.context_id, dataset=information),
                timeout=self.settings.dimse_timeout * 2,
            )
        except (ActorError, PeerUnavailable) as gone:
            self.ctx.log.info("reporting on a new association", transaction_uid=request.transaction_uid, why=str(gone))
            return False
        self._check_answer(answer.response.status)
        return True

    async def _on_new_association(self, request: CommitmentRequest) -> None:
        try:
            remote = await self.ctx.lookup(self.aes_path).ask(LookupAE(ae_title=request.requestor_ae_title))
        except (ActorError, ReplyError) as error:
            raise Undelivered(str(error)) from None
        rq, information = self._report(request.result, request.transaction_uid)
        try:
            if remote.tls and self.settings.tls_client is None:
                raise ConnectionFailed(remote.host, remote.port, "the requestor needs TLS and [tls] has no certificates")
            async with connect(
                remote.host,
                remote.port,
                called_ae_title=remote.ae_title,
                calling_ae_title=self.settings.ae_title,
                contexts=commitment_contexts(as_scp=True),
                connect_timeout=self.settings.connect_timeout,
                dimse_timeout=self.settings.dimse_timeout,
                ssl_context=self.settings.tls_client() if remote.tls else None,
            ) as association:
                answer = await association.n_event_report(rq.affected_sop_class_uid, rq.affected_sop_instance_uid, rq.event_type_id, information)
        except ClientError as error:
            raise Undelivered(f"{remote.ae_title} at {remote.host}:{remote.port}: {error}") from None
        self._check_answer(answer.status)

    @staticmethod
    def _check_answer(status: int) -> None:
        if status != Status.SUCCESS:
            raise Undelivered(f"the requestor answered the report with status 0x{status:04X}")

    async def _failed(self, request: CommitmentRequest, error: str) -> None:
        attempts = request.attempts + 1
        give_up = attempts >= self.settings.max_attempts
        delay = math.inf if give_up else self.settings.delay(attempts)
        next_at = None if give_up else time.time() + delay
        try:
            await self._index(
                RecordReportAttempt(transaction_uid=request.transaction_uid, attempts=attempts, next_attempt_at=next_at, error=error)
            )
        except (ActorError, ReplyError) as failure:  # the schedule lives on in memory
            self.ctx.log.error("could not record a report attempt", transaction_uid=request.transaction_uid, error=str(failure))
        if give_up:
            self._requests.pop(request.transaction_uid, None)
            self.ctx.log.error("storage commitment report abandoned", transaction_uid=request.transaction_uid, attempts=attempts, error=error)
            self.ctx.publish(
                StorageCommitmentAbandoned(
                    transaction_uid=request.transaction_uid, requestor_ae_title=request.requestor_ae_title, attempts=attempts, error=error
                )
            )
            return
        self.ctx.log.warning(
            "storage commitment report not delivered", transaction_uid=request.transaction_uid, attempts=attempts,
            retry_in=delay, error=error,
        )
        self._requests[request.transaction_uid] = attrs.evolve(request, attempts=attempts, association="", next_attempt_at=next_at)
        self.ctx.publish(
            StorageCommitmentRetrying(
                transaction_uid=request.transaction_uid, requestor_ae_title=request.requestor_ae_title, attempts=attempts,
                retry_in=delay, error=error,
            )
        )
        await self._due_after(request.transaction_uid, delay)

    async def _due_after(self, transaction_uid: str, delay: float) -> None:
        await trio.sleep(delay)
        await self.ctx.ref.send(DeliveryDue(transaction_uid=transaction_uid))

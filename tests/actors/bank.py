"""A three-actor system for replay tests: a teller, a ledger it asks, an auditor it tells.

The auditor also acts on its own clock (an hourly summary), so replays exercise timers.
"""

import trio

from triopacs.actors import Actor, ReplyError, message


@message("bank.deposit")
class Deposit:
    account: str
    amount: int


@message("bank.withdraw")
class Withdraw:
    account: str
    amount: int


@message("bank.apply")
class Apply:
    account: str
    delta: int


@message("bank.balance")
class Balance:
    account: str
    amount: int


@message("bank.large-movement")
class LargeMovement:
    account: str
    amount: int


@message("bank.summary")
class Summary:
    flagged: int


class InsufficientFunds(ReplyError):
    pass


class Ledger(Actor):
    accepts = (Apply,)
    resources = {}  # all in memory

    def __init__(self) -> None:
        self.balances: dict[str, int] = {}

    async def handle(self, message):
        match message:
            case Apply(account=account, delta=delta):
                new = self.balances.get(account, 0) + delta
                if new < 0:
                    raise InsufficientFunds(f"{account} would go to {new}")
                self.balances[account] = new
                return Balance(account=account, amount=new)


class Teller(Actor):
    accepts = (Deposit, Withdraw)
    resources = {}  # all in memory

    def __init__(self, ledger: str, auditor: str, threshold: int = 100) -> None:
        self.ledger_path = ledger
        self.auditor_path = auditor
        self.threshold = threshold

    async def on_start(self) -> None:
        self.ledger = self.ctx.lookup(self.ledger_path)
        self.auditor = self.ctx.lookup(self.auditor_path)

    async def handle(self, message):
        match message:
            case Deposit(account=account, amount=amount):
                delta = amount
            case Withdraw(account=account, amount=amount):
                delta = -amount
        balance = await self.ledger.ask(Apply(account=account, delta=delta))
        if amount >= self.threshold:
            await self.auditor.send(LargeMovement(account=account, amount=delta))
        return balance


class Auditor(Actor):
    accepts = (LargeMovement,)
    resources = {}  # all in memory

    def __init__(self, report_to: str, every: float = 3600.0) -> None:
        self.report_to = report_to
        self.every = every
        self.flagged = 0

    async def on_start(self) -> None:
        self.ctx.nursery.start_soon(self._report_periodically)

    async def _report_periodically(self) -> None:
        target = self.ctx.lookup(self.report_to)
        while True:
            await trio.sleep(self.every)
            await target.send(Summary(flagged=self.flagged))

    async def handle(self, message):
        match message:
            case LargeMovement():
                self.flagged += 1


class Inbox(Actor):
    """Collects summaries (the outside world the auditor reports to)."""

    accepts = (Summary,)
    resources = {}  # all in memory

    def __init__(self) -> None:
        self.received: list[Summary] = []

    async def handle(self, message):
        self.received.append(message)

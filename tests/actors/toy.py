"""Small actors the runtime tests share."""

import trio

from triopacs.actors import Actor, ReplyError, message


@message("toy.add")
class Add:
    amount: int = 1


@message("toy.total?")
class GetTotal:
    pass


@message("toy.total")
class Total:
    value: int


@message("toy.fail")
class Fail:
    reason: str = "boom"


@message("toy.refuse")
class Refuse:
    pass


@message("toy.stop")
class StopNow:
    pass


@message("toy.wait")
class WaitForever:
    pass


class Overdrawn(ReplyError):
    pass


class Counter(Actor):
    """Keeps a running total; crashes or refuses on request."""

    accepts = (Add, GetTotal, Fail, Refuse, StopNow, WaitForever)

    def __init__(self, start: int = 0) -> None:
        self.total = start

    async def handle(self, message):
        match message:
            case Add(amount=amount):
                self.total += amount
            case GetTotal():
                return Total(value=self.total)
            case Fail(reason=reason):
                raise RuntimeError(reason)
            case Refuse():
                raise Overdrawn("not today")
            case StopNow():
                self.ctx.stop()
            case WaitForever():
                await trio.sleep_forever()


class FailsToStart(Actor):
    async def on_start(self) -> None:
        raise OSError("cannot open the database")

"""The remote AE registry: which application entities we know, and where they listen.

C-MOVE destinations are looked up here. It is an actor so that entries can change while
the node runs (an admin API, a test) without anyone sharing a dict.
"""

from ..runtime.actor import Actor
from ..runtime.errors import ReplyError
from ..runtime.messages import message


@message("aes.remote-ae")
class RemoteAE:
    ae_title: str
    host: str
    port: int
    tls: bool = False  # connect to it with DICOM TLS ([tls] gives our certificate and the CAs)


@message("aes.lookup")
class LookupAE:
    ae_title: str


@message("aes.register")
class RegisterAE:
    entry: RemoteAE


@message("aes.forget")
class ForgetAE:
    ae_title: str


@message("aes.list")
class ListAEs:
    pass


@message("aes.known")
class KnownAEs:
    entries: tuple[RemoteAE, ...]


class UnknownAE(ReplyError):
    def __init__(self, ae_title: str) -> None:
        super().__init__(f"no remote AE titled {ae_title!r} is configured")
        self.ae_title = ae_title


class AERegistry(Actor):
    accepts = (LookupAE, RegisterAE, ForgetAE, ListAEs)
    resources = {}  # its table lives in memory

    def __init__(self, remotes: tuple[RemoteAE, ...] = ()) -> None:
        self._entries = {entry.ae_title: entry for entry in remotes}

    async def handle(self, message):
        match message:
            case LookupAE(ae_title=title):
                try:
                    return self._entries[title]
                except KeyError:
                    raise UnknownAE(title) from None
            case RegisterAE(entry=entry):
                self._entries[entry.ae_title] = entry
            case ForgetAE(ae_title=title):
                self._entries.pop(title, None)
            case ListAEs():
                return KnownAEs(entries=tuple(sorted(self._entries.values(), key=lambda e: e.ae_title)))

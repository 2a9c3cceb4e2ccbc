"""Which transfer syntax to accept on presentation contexts the acceptor will send on.

On a C-GET association the requestor takes the storage SCP role (role selection), so the
node, the acceptor, sends the instances as C-STORE requests on the storage contexts it
accepted. Its usual rule for picking a context's transfer syntax (its own preference,
uncompressed first) is wrong there: what can be sent as stored depends on what the node
holds, and the receiving side lists what it would like to receive.

The rule, for all the contexts proposed for one SOP class (several are common with role
selection: one per transfer syntax, or one uncompressed and one compressed):

1. Exact: each transfer syntax the node holds instances of gets a context of its own,
   when a context not yet chosen offers it (first the held syntax that context lists
   first). Those instances go as stored.
2. Fallback: if something held is left without its own context (or what is held is not
   known), one context must carry a syntax the node can write any dataset in (explicit
   or implicit VR little endian, deflated): the others are converted into it, compressed
   ones decompressed. A context that offers one is taken for it, an unchosen one first;
   of its syntaxes, a held one first, else the first the requestor lists.
3. The rest take the first syntax the requestor lists that no other context of the
   class has yet (else its first): nothing held needs them, the receiver's order decides.

Pure: no pydicom, no I/O. `choose_sending_syntaxes` gets each context's candidate
syntaxes (proposed and supported, in the requestor's order) and what is held.
"""

from collections.abc import Collection, Sequence

from .catalog import DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN

# Syntaxes any stored dataset can be re-encoded in (big endian is retired: never written).
WRITABLE = (EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN, DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN)


def choose_sending_syntaxes(candidates: Sequence[Sequence[str]], held: Collection[str] | None) -> list[str | None]:
    """One chosen syntax per context (None where a context has no candidate).

    held: the transfer syntaxes the node stores instances of this SOP class in; None when
    unknown (then any may be held, and a writable fallback is always chosen if offered).
    """
    chosen: list[str | None] = [None] * len(candidates)
    held_set = frozenset(held) if held is not None else None
    if held_set:
        for index, syntaxes in enumerate(candidates):
            chosen[index] = next((ts for ts in syntaxes if ts in held_set and ts not in chosen), None)
    uncovered = held_set is None or any(ts not in chosen for ts in held_set)
    if uncovered and not any(ts in WRITABLE for ts in chosen):
        _take_fallback(candidates, chosen, held_set or frozenset())
    for index, syntaxes in enumerate(candidates):
        if chosen[index] is None and syntaxes:
            chosen[index] = next((ts for ts in syntaxes if ts not in chosen), syntaxes[0])
    return chosen


def _take_fallback(candidates: Sequence[Sequence[str]], chosen: list[str | None], held: frozenset[str]) -> None:
    offering = [index for index, syntaxes in enumerate(candidates) if any(ts in WRITABLE for ts in syntaxes)]
    if not offering:
        return  # nothing can carry a converted dataset: the held syntaxes without a context will fail
    unchosen = [index for index in offering if chosen[index] is None]
    index = (unchosen or offering)[0]
    writable = [ts for ts in candidates[index] if ts in WRITABLE]
    chosen[index] = next((ts for ts in writable if ts in held), writable[0])

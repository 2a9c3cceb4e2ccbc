"""Typed messages: frozen, keyword-only attrs classes registered once under a type tag.

The tag is what a trace records and what a replay uses to rebuild the message, so it is
part of the wire format: keep tags stable across releases.
"""

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs

T = TypeVar("T", bound=type)

_BY_TAG: dict[str, type] = {}
_TAG_OF: dict[type, str] = {}


def message(tag: str) -> Callable[[T], T]:
    """Class decorator: make `cls` a frozen keyword-only attrs class and register it."""

    def register(cls: T) -> T:
        cls = attrs.frozen(kw_only=True)(cls)
        previous = _BY_TAG.get(tag)
        if previous is not None and _qualified(previous) != _qualified(cls):
            raise ValueError(f"message tag {tag!r} is already used by {_qualified(previous)}")
        if previous is not None:
            del _TAG_OF[previous]  # the same class imported again (module reload)
        _BY_TAG[tag] = cls
        _TAG_OF[cls] = tag
        return cls

    return register


def tag_of(message_or_type: object) -> str:
    cls = message_or_type if isinstance(message_or_type, type) else type(message_or_type)
    try:
        return _TAG_OF[cls]
    except KeyError:
        raise TypeError(f"{_qualified(cls)} is not a registered message") from None


def message_type(tag: str) -> type:
    try:
        return _BY_TAG[tag]
    except KeyError:
        raise KeyError(f"no message type is registered under {tag!r}") from None


def is_message(obj: object) -> bool:
    return type(obj) in _TAG_OF


def registered() -> Mapping[str, type]:
    """Every registered message type by tag (a read-only view)."""
    return dict(_BY_TAG)


def _qualified(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def qualified_name(cls: type) -> str:
    """`module:QualName`, the form traces use to name actor classes and errors."""
    return _qualified(cls)


def resolve(name: str) -> Any:
    """Import the object named `module:QualName`."""
    import importlib

    module_name, _, qualname = name.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj

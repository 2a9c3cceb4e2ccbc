"""What a storage tier is, as the configuration names it: `[[tier]]` tables of a name,
a kind (local, s3, azure), a key prefix and the kind's own settings.

The built-in hot tier is named `local` (the name the index gives instances in the data
directory); configured tiers take other names. The S3 and Azure modules are imported
only when a tier of their kind is configured: their SDKs are slow to import.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

HOT = "local"  # the data directory's tier, always present
KINDS = ("local", "s3", "azure")
_NAME_CHARACTERS = set("abcdefghijklmnopqrstuvwxyz0123456789-_")


@attrs.frozen(kw_only=True)
class LocalSettings:
    path: str
    fsync: bool = True


@attrs.frozen(kw_only=True)
class TierDefinition:
    name: str
    kind: str
    prefix: str = ""
    settings: Any = None  # LocalSettings, S3Settings or AzureSettings


class TierSettingError(ValueError):
    def __init__(self, key: str, value: object, allowed: str) -> None:
        super().__init__(f"{key} = {value!r}: {allowed}")
        self.key, self.value, self.allowed = key, value, allowed


def _settings_class(kind: str) -> type:
    if kind == "s3":
        from .s3 import S3Settings

        return S3Settings
    if kind == "azure":
        from .azure_blob import AzureSettings

        return AzureSettings
    return LocalSettings


def _check_type(key: str, value: Any, field: attrs.Attribute) -> Any:
    text = str(field.type)  # annotations are text here (from __future__ import annotations)
    if isinstance(value, bool) and "bool" not in text:
        raise TierSettingError(key, value, f"must be {text}")
    if "int" in text and "str" not in text and not isinstance(value, int):
        raise TierSettingError(key, value, "must be an integer")
    if "float" in text and not isinstance(value, (int, float)):
        raise TierSettingError(key, value, "must be a number")
    if "str" in text and not isinstance(value, str):
        raise TierSettingError(key, value, "must be a string")
    if "bool" in text and not isinstance(value, bool):
        raise TierSettingError(key, value, "must be true or false")
    return float(value) if text == "float" else value


def tier_definition(where: str, table: Mapping[str, Any]) -> TierDefinition:
    """A `[[tier]]` table as a definition; errors name the key (`tier[1].bucket`)."""
    name, kind, prefix = table.get("name"), table.get("kind"), table.get("prefix", "")
    if not isinstance(name, str) or not name or set(name) - _NAME_CHARACTERS or name == HOT:
        raise TierSettingError(f"{where}.name", name, f"must be lower-case letters, digits, - or _ (not {HOT!r}, the data directory's tier)")
    if kind not in KINDS:
        raise TierSettingError(f"{where}.kind", kind, f"must be one of {', '.join(KINDS)}")
    if not isinstance(prefix, str) or prefix.startswith("/") or ".." in prefix.split("/"):
        raise TierSettingError(f"{where}.prefix", prefix, "must be a relative key prefix such as 'cold/'")
    cls = _settings_class(kind)
    fields = {field.name: field for field in attrs.fields(cls)}
    options = {key: value for key, value in table.items() if key not in ("name", "kind", "prefix")}
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise TierSettingError(f"{where}.{unknown[0]}", options[unknown[0]], f"unknown key for a {kind} tier; known: {', '.join(fields)}")
    values = {key: _check_type(f"{where}.{key}", value, fields[key]) for key, value in options.items()}
    try:
        settings = cls(**values)
    except TypeError as error:
        missing = [f for f, a in fields.items() if a.default is attrs.NOTHING and f not in values]
        raise TierSettingError(f"{where}.{missing[0] if missing else 'kind'}", None, f"is required for a {kind} tier ({error})") from None
    return TierDefinition(name=name, kind=kind, prefix=prefix, settings=settings)


def hot_tier(data_dir: Path, *, fsync: bool = True) -> TierDefinition:
    """The data directory as a tier: keys are the index's paths relative to it."""
    return TierDefinition(name=HOT, kind="local", settings=LocalSettings(path=str(data_dir), fsync=fsync))

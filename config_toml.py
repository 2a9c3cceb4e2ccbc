"""The complete default configuration written out as commented TOML (`triopacs config
--print-default`): every section's keys with their defaults, help and examples, read
from the settings classes in config.py so that the two never disagree."""

from typing import Any

import attrs

from .config import SECTIONS, Config


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_value(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML form for {value!r}")


def default_toml() -> str:
    """The complete default configuration as commented TOML."""
    lines = ["# triopacs configuration. Every key is shown with its default.", ""]
    for name, cls in SECTIONS.items():
        lines.append(f"[{name}]")
        for field in attrs.fields(cls):
            lines.append(f"# {field.metadata['help']}")
            lines.append(f"{field.name} = {_toml_value(field.default)}")
            if field.metadata.get("example") is not None:
                lines.append(f"# for example: {field.name} = {_toml_value(field.metadata['example'])}")
        lines.append("")
    remote = attrs.fields(Config).remote
    lines.append(f"# {remote.metadata['help']} One [[remote]] table per AE, for example:")
    for example in remote.metadata["example"]:
        lines.append("# [[remote]]")
        lines.extend(f"# {key} = {_toml_value(value)}" for key, value in example.items())
    tier = attrs.fields(Config).tier
    lines.append(f"# {tier.metadata['help']} One [[tier]] table each, for example:")
    for example in tier.metadata["example"]:
        lines.append("# [[tier]]")
        lines.extend(f"# {key} = {_toml_value(value)}" for key, value in example.items())
    return "\n".join(lines) + "\n"

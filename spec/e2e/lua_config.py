"""Python values written as Lua, for the generated Prosody configuration."""

from __future__ import annotations

import re
from pathlib import Path


class LuaRaw:
    """A value written into the config verbatim (a Lua expression)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self):
        return f"LuaRaw({self.text!r})"


_LUA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LUA_KEYWORDS = frozenset(
    "and break do else elseif end false for function goto if in local nil not or "
    "repeat return then true until while".split()
)


def lua_string(s: str) -> str:
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif code < 32 or code == 127:
            out.append(f"\\{code:03d}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def to_lua(value, indent: int = 0) -> str:
    """Python value -> Lua expression (str, int, float, bool, None, list/tuple/set, dict, LuaRaw)."""
    pad = "\t" * (indent + 1)
    if isinstance(value, LuaRaw):
        return value.text
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"cannot write {value!r} into a Lua config")
        return repr(value)
    if isinstance(value, (str, Path)):
        return lua_string(str(value))
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        if not items:
            return "{}"
        return "{ " + ", ".join(to_lua(v, indent + 1) for v in items) + " }"
    if isinstance(value, dict):
        if not value:
            return "{}"
        parts = []
        for k, v in value.items():
            if isinstance(k, str) and _LUA_NAME.match(k) and k not in _LUA_KEYWORDS:
                key = k
            elif isinstance(k, (str, int)) and not isinstance(k, bool):
                key = "[" + to_lua(k) + "]"
            else:
                raise TypeError(f"unsupported Lua table key {k!r}")
            parts.append(f"{pad}{key} = {to_lua(v, indent + 1)};")
        return "{\n" + "\n".join(parts) + "\n" + "\t" * indent + "}"
    raise TypeError(f"cannot write {type(value).__name__} into a Lua config: {value!r}")


def lua_assignments(options: dict, indent: int = 0) -> str:
    lines = []
    for key, value in options.items():
        if not _LUA_NAME.match(key):
            raise ValueError(f"bad config option name {key!r}")
        lines.append("\t" * indent + f"{key} = {to_lua(value, indent)}")
    return "\n".join(lines)

"""Keyword settings of an API call checked against the config they fill: an unknown name is a
`UserError` with the closest known one, never a bare TypeError."""

from __future__ import annotations

from dataclasses import fields

from ..core.errors import UserError, did_you_mean


def checked_settings(cls, settings: dict, where: str, taken=()) -> dict:
    """`settings` if every name is a field of dataclass `cls` not in `taken` (the call's own
    arguments), else a `UserError` naming the first unknown one and the closest field."""
    known = [f.name for f in fields(cls) if f.name not in taken]
    for name in settings:
        if name in taken:
            raise UserError(f"{where}: {name!r} is an argument of its own here; pass it as "
                            f"{name}=..., once")
        if name not in known:
            raise UserError(f"{where}: unknown setting {name!r}{did_you_mean(name, known)}; the "
                            f"settings are {', '.join(known)}")
    return settings

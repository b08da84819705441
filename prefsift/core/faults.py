"""Named points where a test may kill the process, to prove that a killed run loses nothing.

`PREFSIFT_KILL_AT=NAME` (or `NAME:N`, the N-th time the point is reached; a trailing `*` in NAME
matches any suffix) makes `point(NAME)` send SIGKILL to its own process: no cleanup, no `finally`,
exactly what a crash or an OOM kill does. Unset (always, outside the fault tests), a point costs one
dictionary lookup."""

from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}


def _target() -> tuple[str, int] | None:
    spec = os.environ.get("PREFSIFT_KILL_AT")
    if not spec:
        return None
    name, _, n = spec.rpartition(":")
    if not n.isdigit():  # no count: the first time
        return spec, 1
    return name, int(n)


def point(name: str) -> None:
    target = _target()
    if target is None:
        return
    want, nth = target
    if not (name == want or (want.endswith("*") and name.startswith(want[:-1]))):
        return
    _counts[want] = _counts.get(want, 0) + 1
    if _counts[want] == nth:
        os.kill(os.getpid(), signal.SIGKILL)

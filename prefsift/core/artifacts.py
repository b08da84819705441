"""What a run directory can trust: atomic writes, recorded checksums, and one writer at a time.

- Every artifact is written to a temporary sibling and renamed into place, so a killed writer
  leaves either the old file or the new one, never half of one.
- Every artifact that a later run reuses has its size and SHA-256 recorded when it is written (a
  `NAME.sha256` file beside it, or a `files` entry in a stage's `stage.json` for a model folder).
  Before reuse the file is checked; a missing record, a wrong size or a wrong checksum means the
  artifact is recomputed, with one line saying what and why. Nothing unverified is trusted.
- `RunLock` lets one process at a time write a run directory. It is an advisory `flock` on
  `.prefsift.lock`, so the kernel releases it when the holder dies, even by SIGKILL; the file
  holds the holder's pid and command, to name it to a second process."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Callable

from . import faults
from .errors import UserError

CHUNK = 1 << 20


def stable_key(obj) -> str:
    """A 16-hex key of a JSON-able value (dict keys sorted, other objects by their text): the same
    settings give the same key in every process and on every machine."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def stage_key(*parts) -> str:
    """A stage's key: its own settings and the keys of the stages (or data) it reads."""
    return stable_key(list(parts))


def file_digest(path: Path) -> dict:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
            size += len(block)
    return {"size": size, "sha256": h.hexdigest()}


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def atomic_write(path: str | Path, write: Callable[[Path], None], *, seal: bool = True) -> Path:
    """`write(tmp)` writes the artifact to a temporary sibling, which is then renamed to `path`;
    with `seal`, its size and checksum are recorded beside it (see `verify`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keep the suffix last: numpy's savez and some writers pick the format from it.
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        faults.point(f"write:{path.name}")  # a test may kill the process here, mid-write
        digest = file_digest(tmp) if seal else None
        if seal:
            # The old record goes first: a kill between the two renames leaves a file with no
            # record, which is recomputed, never a new file under an old record that happens to be
            # trusted.
            _sidecar(path).unlink(missing_ok=True)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if seal:
        side = _sidecar(path)
        side_tmp = side.with_name(f".{side.name}.tmp{os.getpid()}")
        side_tmp.write_text(json.dumps(digest))
        os.replace(side_tmp, side)
    return path


def write_text(path: str | Path, text: str, *, seal: bool = True) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), seal=seal)


def write_json(path: str | Path, obj, *, seal: bool = True) -> Path:
    return write_text(path, json.dumps(obj, indent=1, default=str), seal=seal)


def write_parquet(path: str | Path, frame) -> Path:
    return atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


def verify(path: str | Path) -> str | None:
    """None when `path` is what was recorded when it was written; otherwise why it is not."""
    path = Path(path)
    if not path.exists():
        return "it is missing"
    side = _sidecar(path)
    try:
        recorded = json.loads(side.read_text())
        size, sha = int(recorded["size"]), str(recorded["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return "its checksum record is missing or unreadable (an interrupted write?)"
    actual = path.stat().st_size
    if actual != size:
        return f"it has {actual} bytes where {size} were written (truncated or overwritten)"
    if file_digest(path)["sha256"] != sha:
        return "its checksum does not match what was written (corrupted)"
    return None


def discard(path: str | Path) -> None:
    path = Path(path)
    path.unlink(missing_ok=True)
    _sidecar(path).unlink(missing_ok=True)


def trusted(path: str | Path, what: str, log=print) -> bool:
    """True when `path` exists and verifies. An artifact that exists but does not verify is
    discarded with one line saying so, and False tells the caller to recompute it."""
    path = Path(path)
    if not path.exists() and not _sidecar(path).exists():
        return False  # never written: nothing to say
    problem = verify(path)
    if problem is None:
        return True
    log(f"note: recomputing {what}: {path} cannot be trusted, {problem}")
    discard(path)
    return False


def folder_digest(folder: Path) -> dict:
    """Size and checksum of every file in a folder (relative paths, sorted)."""
    return {str(p.relative_to(folder)): file_digest(p)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def verify_folder(folder: Path, recorded: dict | None) -> str | None:
    """None when every recorded file is in the folder with its recorded size and checksum (files
    added later, such as a stage's own stamp, are not checked)."""
    if not isinstance(recorded, dict) or not recorded:
        return "no checksums were recorded for it"
    if not folder.is_dir():
        return "it is missing"
    present = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    missing = sorted(set(recorded) - present)
    if missing:
        return f"{missing[0]} is missing"
    for name, rec in recorded.items():
        actual = (folder / name).stat().st_size
        if actual != rec.get("size"):
            return f"{name} has {actual} bytes where {rec.get('size')} were written (truncated?)"
    for name, rec in recorded.items():
        if file_digest(folder / name)["sha256"] != rec.get("sha256"):
            return f"{name} does not match its recorded checksum (corrupted)"
    return None


# ---------------------------------------------------------------------------------------------
# One writer per run directory


class RunDirBusy(UserError):
    """Another live process is writing this run directory."""


class RunLock:
    """An exclusive lock on a run directory for the life of one command (a context manager)."""

    NAME = ".prefsift.lock"

    def __init__(self, directory: str | Path, log=print):
        self.dir = Path(directory)
        self.path = self.dir / self.NAME
        self.log = log
        self._fh = None

    def __enter__(self) -> "RunLock":
        self._created = not self.dir.exists()
        self.dir.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = self._holder(fh)
            fh.close()
            who = (f"process {holder.get('pid')} ({holder.get('command', '?')}, started "
                   f"{holder.get('started', '?')} on "
                   f"{holder.get('host', '?')})") if holder else "another process"
            raise RunDirBusy(f"{self.dir} is in use by {who}; wait for it to finish or stop it, or "
                             "give another run directory (--out)") from None
        previous = self._holder(fh)
        if previous and previous.get("pid") != os.getpid():
            # We hold the flock, so its holder is gone: a stale lock of a process that died.
            self.log(f"note: {self.dir} was last locked by process {previous.get('pid')} "
                     f"({previous.get('command', '?')}), which is no longer running; taking it "
                     f"over")
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "command": " ".join(Path(sys.argv[0]).name.split()
                                                 + sys.argv[1:])[:200],
                             "started": time.strftime("%Y-%m-%d %H:%M:%S")}))
        fh.flush()
        self._fh = fh
        return self

    @staticmethod
    def _holder(fh) -> dict | None:
        try:
            fh.seek(0)
            text = fh.read()
            return json.loads(text) if text.strip() else None
        except (OSError, ValueError):
            return None

    def __exit__(self, exc_type, *exc) -> None:
        if self._fh is None:
            return
        # Empty the file before unlocking, so the next holder does not report us as stale.
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.flush()
        if (exc_type is not None and self._created
            and [p.name for p in self.dir.iterdir()] == [self.NAME]):
            # Refused before any work (a bad setting, a missing file): leave no empty run directory.
            self.path.unlink(missing_ok=True)
            self.dir.rmdir()
        self._fh.close()
        self._fh = None

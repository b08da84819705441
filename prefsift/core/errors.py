"""Errors a user can cause and fix.

Anything raised as a :class:`UserError` is a mistake in what the user gave prefsift (a path, a
flag, a setting, a data file), not a bug. The CLI prints its message as one ``error: ...`` line and
exits 2; ``--debug`` (or ``PREFSIFT_DEBUG=1``) shows the traceback as well. Every other exception
is treated as a bug in prefsift.

A message says what is wrong, where (file, line, key or flag) and how to fix it, on one line.
"""

from __future__ import annotations

import difflib
from pathlib import Path

__all__ = ["UserError", "ConfigError", "MissingFileError", "missing_file_error", "require_path",
           "did_you_mean"]


class UserError(ValueError):
    """A mistake the user can fix; the CLI prints its message as one ``error:`` line and exits 2."""


class ConfigError(UserError):
    """A setting (a config field, a YAML key, a flag value) that is unknown, of the wrong type or
    out of range.

    ``ConfigError("beta must be > 0")`` works as any exception. Raised with ``key`` (the setting's
    name, e.g. ``"learning_rate"``) and ``problem`` (e.g. ``"must be > 0, got -1"``), the message is
    ``"{key} {problem}"``, and a caller that knows more can re-place it: :meth:`within` puts the key
    under a section (``warmup.learning_rate``), :meth:`at` prefixes where it was read (``run.yaml,
    line 3``), :meth:`as_flag` names the command-line flag instead (``--learning-rate``)."""

    def __init__(self, message: str | None = None, *, key: str | None = None,
                 problem: str | None = None, where: str | None = None):
        self.key, self.problem, self.where = key, problem, where
        if message is None:
            sep = "" if str(problem).startswith((":", ",", ";")) else " "
            message = f"{key}{sep}{problem}" if key else str(problem)
            if where:
                message = f"{where}: {message}"
        super().__init__(message)

    def _replace(self, **changes) -> "ConfigError":
        return type(self)(**{"key": self.key, "problem": self.problem, "where": self.where,
                             **changes})

    def within(self, section: str) -> "ConfigError":
        """The same error for the key inside ``section`` (``warmup`` + ``epochs`` →
        ``warmup.epochs``)."""
        if self.key is None:
            return type(self)(f"{section}: {self}", where=self.where)
        return self._replace(key=f"{section}.{self.key}")

    def at(self, where: str) -> "ConfigError":
        """The same error, read at ``where`` (a file and line, an override)."""
        if self.key is None:
            return type(self)(f"{where}: {self}", where=where)
        return self._replace(where=where)

    def as_flag(self, flags: dict[str, str] | None = None) -> "ConfigError":
        """The same error naming the command-line flag of its key (``val_lr`` → ``--val-lr``)."""
        if self.key is None or self.key.startswith("-"):
            return self
        flag = (flags or {}).get(self.key) or "--" + self.key.replace("_", "-")
        return self._replace(key=flag)


class MissingFileError(ConfigError, FileNotFoundError):
    """A user-given path that does not exist (still a FileNotFoundError for callers that catch
    one)."""


def missing_file_error(path, what: str = "file", key: str | None = None, exc: OSError | None = None,
                       hint: str = "check the path") -> ConfigError:
    """The error for a user-given path that cannot be read.

    ``what`` names the thing (``"validation pairs"``), ``key`` the setting or flag that gave it
    (``"validation"``; the CLI shows it as ``--validation``), ``exc`` the OSError met when reading
    it (None: it does not exist)."""
    cls = ConfigError
    if isinstance(exc, IsADirectoryError):
        reason = "is a folder, not a file"
    elif isinstance(exc, NotADirectoryError):
        reason = "is not a folder"
    elif isinstance(exc, PermissionError):
        reason, hint = "cannot be read (permission denied)", "fix its permissions"
    elif exc is not None and not isinstance(exc, FileNotFoundError):
        reason = f"cannot be read ({exc.strerror or exc})"
    else:
        cls, reason = MissingFileError, "does not exist"
    problem = f"{what} {str(path)!r} {reason}: {hint}"
    return cls(key=key, problem=f": {problem}") if key else cls(problem)


def require_path(path, what: str = "file", key: str | None = None, kind: str = "file",
                 hint: str = "check the path") -> Path:
    """``path`` as a Path, checked to exist (``kind``: ``"file"``, ``"dir"`` or ``"any"``) and, for
    a file, to be readable; otherwise the error of :func:`missing_file_error`."""
    p = Path(path).expanduser()
    if not p.exists():
        raise missing_file_error(path, what, key, hint=hint)
    if kind == "file" and p.is_dir():
        raise missing_file_error(path, what, key, IsADirectoryError(), hint=hint)
    if kind == "dir" and not p.is_dir():
        raise missing_file_error(path, what, key, NotADirectoryError(), hint=hint)
    if kind == "file":
        try:
            with open(p, "rb"):
                pass
        except OSError as e:
            raise missing_file_error(path, what, key, e, hint=hint) from None
    return p


def did_you_mean(name: str, known) -> str:
    """`` (did you mean 'beta'?)`` when ``name`` is close to one of ``known``, else ``""``."""
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""

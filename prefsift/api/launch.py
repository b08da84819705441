"""Work shared by N local processes: a command of prefsift started in N workers through torchrun
(gloo on the CPU, one GPU each), the same command line a user would type under a launcher."""

from __future__ import annotations

from dataclasses import MISSING, fields

from ..core.errors import UserError


def config_flags(cfg, skip=()) -> list[str]:
    """The command-line flags that give a dataclass config's non-default values (`--val-lr 0.1`,
    `--warmup` / `--no-warmup`)."""
    out = []
    for f in fields(cfg):
        if f.name in skip:
            continue
        value = getattr(cfg, f.name)
        default = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING  # type: ignore[misc]
                else MISSING)
        if (value is None
            or (default is not MISSING and value == default and type(value) is type(default))):
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            out.append(flag if value else "--no-" + flag[2:])
        else:
            out += [flag, str(value)]
    return out


def column_flags(columns) -> list[str]:
    """The flags of a `ColumnMap` (None: the defaults)."""
    if columns is None:
        return []
    out = ["--implicit-prompt"] if columns.prompt is None else ["--prompt-key", columns.prompt]
    return (out
            + ["--chosen-key", columns.chosen, "--rejected-key", columns.rejected, "--id-key",
               columns.id])


def launch(processes: int, argv: list[str], threads: int | None = None,
           progress: bool = True) -> None:
    """Run `prefsift ARGV` in `processes` workers and wait; a `UserError` if they did not all
    finish."""
    from ..runtime.distributed import launch_local

    head = ["--threads", str(threads)] if threads else []
    rc = launch_local(processes, head + list(argv) + ([] if progress else ["--quiet"]),
                      threads=threads)
    if rc != 0:
        raise UserError(f"{argv[0]}: the {processes} worker processes stopped (exit code {rc}); "
                        "their messages are above")

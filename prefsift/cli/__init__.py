"""`prefsift ...`: a thin layer that parses arguments, calls the library, and prints.

`parser` builds the argument parser, `commands` holds one function per command; `main` runs one and
turns a mistake in the input into one `error:` line (exit 2) and anything else into a bug report."""

from __future__ import annotations

import os
import sys
import traceback

from ..core.errors import ConfigError, UserError
from ..core.version import __version__
from . import commands  # noqa: F401  (the commands, reachable as prefsift.cli.commands)
from .parser import build_parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever fetched from the hub at run time
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    given = list(argv)  # as typed: what a command that starts worker processes hands on to them
    # --debug and --verbose are top-level flags, but are also understood after the command
    # (`prefsift run x.yaml --debug`).
    end = argv.index("--") if "--" in argv else len(argv)
    late_flags = {flag: flag in argv[1:end] for flag in ("--debug", "--verbose")}
    argv = [a for i, a in enumerate(argv) if not (late_flags.get(a) and 0 < i < end)]
    args, extra = parser.parse_known_args(argv)
    # `run`/`plan` take KEY=VALUE overrides after their flags too (`run x.yaml --out d seeds=[0]`).
    extra = [a for a in extra if a != "--"]  # `run c.yaml --out d -- beta=1`
    late = [a for a in extra if "=" in a and not a.startswith("-")]
    if extra and (late != extra or not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if late:
        args.overrides = list(args.overrides or []) + late
    args.argv = given
    args.debug = args.debug or late_flags["--debug"]
    args.verbose = args.verbose or late_flags["--verbose"]
    if not getattr(args, "func", None):
        # `prefsift data` with no subcommand: show that level's help.
        target = {"data": "data", "lab": "lab"}.get(args.command or "")
        if target:
            parser.parse_args([target, "--help"])
        parser.print_help()
        return 0

    debug = args.debug or os.environ.get("PREFSIFT_DEBUG", "").strip() not in ("", "0")
    try:
        if args.verbose:  # an environment variable: the workers `launch_local` starts inherit it
            from ..api import set_verbose

            set_verbose(True)
        if args.threads is not None:
            if args.threads < 1:
                raise ConfigError(key="--threads", problem=f"must be >= 1, got {args.threads}")
            import torch

            torch.set_num_threads(args.threads)
        return args.func(args)
    except UserError as e:  # a mistake the user can fix: one line, no traceback
        if debug:
            raise
        if isinstance(e, ConfigError) and getattr(args, "keys_are_flags", True):
            e = e.as_flag()  # name the command's flag (--val-lr), not the field (val_lr)
        print(f"error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        print("error: interrupted; `prefsift run` and `prefsift score` continue where they stopped "
              "when run again",
              file=sys.stderr)
        return 130
    except Exception:  # anything else is a bug in prefsift
        if debug:
            raise
        traceback.print_exc()
        print(f"error: this is a bug in prefsift {_version()}, not a mistake in your input; please "
              "report it with the traceback above", file=sys.stderr)
        return 1


def _one_line(message: str) -> str:
    return "; ".join(part.strip() for part in message.splitlines() if part.strip())


def _version() -> str:
    return __version__


if __name__ == "__main__":
    sys.exit(main())

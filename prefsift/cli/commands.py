"""The commands of `prefsift`: each reads its parsed arguments, calls the library, and prints."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path


def _dataclass_from_args(cls, args: argparse.Namespace):
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in vars(args).items() if k in names})


def _columns_from_args(args):
    from ..data import ColumnMap

    return ColumnMap(prompt=None if args.implicit_prompt else args.prompt_key, chosen=args.chosen_key,
                     rejected=args.rejected_key, id=args.id_key)


def _load_from_args(args):
    from ..data import load_pairs

    return load_pairs(args.file, columns=_columns_from_args(args), strict=args.strict, file_format=args.file_format,
                      split=args.split)


def cmd_data_check(args) -> int:
    from ..data import check_lengths

    pairs = _load_from_args(args)
    if args.tokenizer:
        from ..models import load_tokenizer

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
    from ..data import write_pairs
    from ..errors import ConfigError, require_path

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
    from ..models import load_model, load_tokenizer, resolve_model_path

    from ..devices import placement

    t0 = time.time()
    place = placement(args.device, args.dtype)
    path = resolve_model_path(args.spec)
    model = load_model(args.spec, **place)
    tok = load_tokenizer(args.spec)
    n = sum(p.numel() for p in model.parameters())
    print(f"{args.spec}: {type(model).__name__}, {n / 1e6:.1f} M parameters, {next(model.parameters()).dtype} on "
          f"{place['device']}")
    print(f"  folder: {path}")
    print(f"  tokenizer: vocab {len(tok)}, bos={tok.bos_token!r} eos={tok.eos_token!r} pad={tok.pad_token!r}, "
          f"chat template: {'yes' if tok.chat_template else 'no'}")
    print(f"  loaded in {time.time() - t0:.1f} s")
    return 0


def cmd_lab_make(args) -> int:
    from ..lab import LabConfig, format_summary, make_lab

    cfg = _dataclass_from_args(LabConfig, args)
    _check_out_folder(args.out)
    summary = make_lab(cfg, args.out)
    print(format_summary(summary))
    return 0


def cmd_lab_sentiment(args) -> int:
    import json

    from ..quiet import quiet_libraries
    from ..lab.sentiment import SentimentConfig, make_sentiment_lab

    quiet_libraries()
    cfg = _dataclass_from_args(SentimentConfig, args)
    _check_out_folder(args.out)
    summary = make_sentiment_lab(cfg, args.out, progress=not args.quiet)
    print(json.dumps(summary["splits"], indent=1))
    print(f"wrote {args.out}/train.jsonl, validation.jsonl, test_prompts.jsonl in {summary['seconds']:.0f} s")
    return 0


def cmd_score(args) -> int:
    from ..scoring.table import ScoreConfig, compute_scores

    from ..distributed import check_processes, launch_local, world

    cfg = _dataclass_from_args(ScoreConfig, args)
    here = world()
    processes = check_processes(args.processes, here)
    if args.plan:
        from ..errors import ConfigError
        from ..planning import plan_scores

        if here.sharded:
            raise ConfigError(key="plan", problem="runs its probes in one process: run `prefsift score ... --plan "
                                                  f"--processes {here.size}` without the launcher")
        plan = plan_scores(cfg, processes=processes)
        print(plan.describe())
        print(f"plan: {plan.save(Path(cfg.out))}")
        return 0
    if processes > 1 and not here.sharded:
        # Checked here, once, before N processes start and load models.
        from ..scoring.table import check_score_inputs, check_sharding

        check_sharding(cfg, processes)
        check_score_inputs(cfg, _columns_from_args(args))
        return launch_local(processes, args.argv, threads=args.threads)
    compute_scores(cfg, columns=_columns_from_args(args), progress=not args.quiet)
    if here.is_main:
        print(f"\nscores table: {Path(cfg.out) / 'scores.parquet'}")
        _print_predicted_vs_actual(Path(cfg.out), Path(cfg.out) / "score_timings.json")
    return 0


def _print_predicted_vs_actual(folder: Path, timings: Path | None = None, cfg=None) -> None:
    """After a score or a run whose folder holds a plan (`prefsift plan`, `score --plan`)."""
    import json

    from ..planning import actual_run_seconds, predicted_vs_actual

    if timings is not None:
        actual = json.loads(timings.read_text()) if timings.exists() else {}
    else:
        from ..pipeline.rundir import RunDir

        actual = actual_run_seconds(RunDir(folder), cfg.arms, cfg.seeds)
    table = predicted_vs_actual(folder, actual)
    if table:
        print("\n" + table)


def cmd_select(args) -> int:
    from .. import artifacts
    from ..errors import require_path
    from ..pipeline.arms import check_selectable as check_rule
    from ..selection import (apply_rule, check_keep, check_rule_columns, check_windows,
                             overlap_coefficient, read_scores_table, selection_frame, window_of)

    # Every flag checked before the table is read.
    check_keep(args.keep)
    if args.window:
        check_windows(args.window)
    else:
        check_rule(args.rule)
    for other in args.overlap or []:
        check_rule(other, key="overlap")
    table = read_scores_table(args.scores)
    if args.train:
        require_path(args.train, "scored pairs", "train", kind="any")
    for other in ([] if args.window else [args.rule]) + list(args.overlap or []):
        check_rule_columns(table, other, key="rule" if other == args.rule and not args.window else "overlap")
    n_scored = int(table["valid"].sum())
    if args.window:
        mask, label = window_of(table, args.window)
    else:
        mask, label = apply_rule(table, args.rule, args.keep, seed=args.seed), f"{args.rule} at keep {args.keep}"
    print(f"{label}: kept {int(mask.sum())} of {n_scored} scored pairs ({mask.sum() / max(n_scored, 1):.1%}); "
          f"{len(table)} pairs in the table")
    for other in args.overlap or []:
        omask = apply_rule(table, other, args.keep, seed=args.seed)
        print(f"  overlap coefficient with {other}: {overlap_coefficient(mask, omask):.3f}")
    sel = selection_frame(table, {"selected": mask})
    sel["rule"] = label
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    artifacts.write_parquet(out / "selection.parquet", sel)
    artifacts.write_text(out / "selected_ids.txt", "\n".join(table.loc[mask, "id"].astype(str)) + "\n", seal=False)
    print(f"selection table: {out / 'selection.parquet'}")
    if args.train:
        from ..api import write_subset

        pairs = _load_from_args(argparse.Namespace(**{**vars(args), "file": args.train}))
        suffix = "" if pairs.raw.file_format == "hf" else Path(args.train).suffix
        ids = set(table.loc[mask, "id"].astype(str))
        n = write_subset(pairs, [r.id in ids for r in pairs.rows], out / f"selected{suffix}")
        print(f"selected pairs in the input's format: {out / f'selected{suffix}'} ({n} rows)")
    return 0


def _check_out_folder(path) -> None:
    """An output folder that exists as a file is refused before any work."""
    from ..errors import ConfigError

    if path and Path(path).exists() and not Path(path).is_dir():
        raise ConfigError(key="out", problem=f": {str(path)!r} is a file; give a folder")


def cmd_run(args) -> int:
    from ..pipeline import RunConfig, run_pipeline

    from ..distributed import check_processes, launch_local, world
    from ..errors import ConfigError

    cfg = RunConfig.from_yaml(args.config, args.overrides, out=args.out)
    here = world()
    processes = check_processes(args.processes, here)
    if processes > 1 and not here.sharded:
        # Checked here, once, before N processes start and load models.
        from ..pipeline.inputs import check_run_inputs
        from ..pipeline.run import check_run_sharding

        try:
            check_run_sharding(cfg, processes)
            check_run_inputs(cfg)
        except ConfigError as e:
            raise cfg.locate(e) from None
        return launch_local(processes, args.argv, threads=args.threads)
    run_pipeline(cfg, progress=not args.quiet)
    if here.is_main:
        _print_predicted_vs_actual(Path(cfg.out), cfg=cfg)
    return 0


def cmd_plan(args) -> int:
    """The plan of `prefsift run CONFIG.yaml` with N processes, saved as OUT/plan.json."""
    from ..distributed import check_processes
    from ..errors import ConfigError
    from ..pipeline import RunConfig
    from ..planning import plan_run

    cfg = RunConfig.from_yaml(args.config, args.overrides, out=args.out)
    processes = check_processes(args.processes)
    try:
        from ..pipeline.run import check_run_sharding

        check_run_sharding(cfg, processes)
        plan = plan_run(cfg, processes)
    except ConfigError as e:
        raise cfg.locate(e) from None
    print(plan.describe())
    print(f"plan: {plan.save(Path(cfg.out))} (`prefsift run` on this folder prints predicted vs actual)")
    return 0


def cmd_demo(args) -> int:
    """`prefsift run` with the default `RunConfig` (the embedded lab) into --out."""
    from ..pipeline import RunConfig, run_pipeline

    cfg = RunConfig(out=str(args.out), keep=args.keep, device=args.device, dtype=args.dtype)
    print(f"prefsift demo: the whole protocol on the embedded lab -> {args.out}\n"
          f"  arms {cfg.arms}, seeds {cfg.seeds}, kept fraction {cfg.keep}, judge {cfg.judge}")
    run_pipeline(cfg, progress=not args.quiet)
    return 0



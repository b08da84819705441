"""The commands of `prefsift`: each reads its parsed arguments, makes ONE call of the public API
(`prefsift.api`), and prints what it returned. Nothing else happens here."""

from __future__ import annotations

import argparse
import dataclasses
import json

from .. import api
from ..api import configs


def _settings(cls, args: argparse.Namespace, skip=()) -> dict:
    """The parsed flags that are fields of the config dataclass `cls`."""
    names = {f.name for f in dataclasses.fields(cls)} - set(skip)
    return {k: v for k, v in vars(args).items() if k in names}


def _columns(args):
    return api.ColumnMap(prompt=None if args.implicit_prompt else args.prompt_key,
                     chosen=args.chosen_key, rejected=args.rejected_key, id=args.id_key)


def _reading(args) -> dict:
    """How the pair files are read: columns, strictness, format, split."""
    return dict(columns=_columns(args), strict=args.strict, file_format=args.file_format,
                split=args.split)


def cmd_data_check(args) -> int:
    pairs = api.check_pairs(args.file, **_reading(args), tokenizer=args.tokenizer,
                            max_length=args.max_length,
                            overlength=args.overlength, report=args.report)
    print(pairs.summary())
    bad = pairs.invalid_rows
    if bad:
        print("\nRows that cannot be used:")
        print(pairs.bad_rows_report(limit=None if args.all else 20))
    bad_ratings = pairs.bad_rating_rows
    if bad_ratings:
        print("\nUsable rows whose ratings are not numbers (scored, but left out of the score_gap "
              "baseline):")
        print(pairs.bad_ratings_report(limit=None if args.all else 20))
    if args.tokenizer:
        lengths = sorted(r.n_tokens for r in pairs.rows if r.n_tokens is not None)
        if lengths:
            print(f"\nTokens per pair (longest side, prompt included): median "
                  f"{lengths[len(lengths) // 2]}, max {lengths[-1]}; max_length {args.max_length}, "
                  f"over-length policy: {args.overlength}")
    if args.report:
        print(f"\nPer-row report ({len(pairs)} rows): {args.report}")
    return 1 if bad or bad_ratings else 0


def cmd_audit(args) -> int:
    report = api.audit(args.train, validation=args.validation, scores=args.scores,
                       test_prompts=args.test_prompts,
                       tokenizer=args.tokenizer, by=args.by, max_length=args.max_length,
                       max_prompt_length=args.max_prompt_length, rating_scale=args.rating_scale,
                       seed=args.seed, json_out=args.json, html_out=args.html, **_reading(args))
    print("\n".join(report.lines()))
    for what, path in (("audit.json", args.json), ("view", args.html)):
        if path:
            print(f"{what}: {path}")
    return 1 if report.reported else 0


def cmd_data_subset(args) -> int:
    written, asked, file_format = api.subset(args.file, args.ids, args.out, **_reading(args))
    print(f"wrote {written} of {asked} requested rows to {args.out} ({file_format}); "
          f"{asked - written} requested rows were not usable")
    return 0


def cmd_model(args) -> int:
    print(api.describe_model(args.spec, device=args.device, dtype=args.dtype))
    return 0


def cmd_lab_make(args) -> int:
    print(api.make_lab(args.out, **_settings(configs.LabConfig, args)))
    return 0


def cmd_lab_sentiment(args) -> int:
    summary = api.make_sentiment_lab(args.out, progress=not args.quiet,
                                     **_settings(configs.SentimentConfig, args))
    print(json.dumps(summary["splits"], indent=1))
    print(f"wrote {args.out}/train.jsonl, validation.jsonl, test_prompts.jsonl in "
          f"{summary['seconds']:.0f} s")
    return 0


def cmd_warmup(args) -> int:
    settings = _settings(configs.WarmupConfig, args,
                         skip=("reference", "train", "out", "validation"))
    folder = api.warmup(args.reference, args.train, out=args.out, validation=args.validation,
                        columns=_columns(args),
                        processes=args.processes, threads=args.threads, **settings)
    print(f"\nθ (the warmed-up model): {folder}\n"
          f"next: prefsift score --reference {args.reference} --policy {folder} --train "
          f"{args.train} --validation VAL --out {args.out}")
    return 0


_SCORE_OWN = ("policy", "reference", "train", "validation", "out", "scores", "objective", "beta")


def cmd_score(args) -> int:
    settings = _settings(configs.ScoreConfig, args, skip=_SCORE_OWN)
    own = dict(validation=args.validation, out=args.out, scores=args.scores,
               objective=args.objective, beta=args.beta)
    if args.plan:
        plan = api.plan_scores(args.policy, args.reference, args.train, processes=args.processes,
                               **own, **settings)
        print(plan.describe())
        print(f"plan: {plan.saved_to}")
        return 0
    api.score(args.policy, args.reference, args.train, columns=_columns(args),
              progress=not args.quiet,
              processes=args.processes, threads=args.threads, **own, **settings)
    return 0


def cmd_select(args) -> int:
    print(api.select_to_folder(args.scores, args.out, rule=args.rule, keep=args.keep,
                               window=args.window, overlap=args.overlap, seed=args.seed,
                               train=args.train, **_reading(args)))
    return 0


def cmd_view(args) -> int:
    path = api.view(args.run, scores=args.scores, train=args.train, out=args.out, rules=args.rules,
                    keep=args.keep,
                    seed=args.seed, title=args.title, audit=args.audit, **_reading(args))
    print(f"view: {path} (open it in a browser; no server needed)")
    return 0


def cmd_run(args) -> int:
    api.run(args.config, overrides=args.overrides, out=args.out, progress=not args.quiet,
            processes=args.processes, threads=args.threads)
    return 0


def cmd_recommend(args) -> int:
    found = api.recommend(args.config, overrides=args.overrides, out=args.out,
                          progress=not args.quiet, threads=args.threads)
    test = found["test"]
    wr = sum(r["win_rate"] for r in test) / len(test) if test else float("nan")
    print(f"\nrecommended: {found['chosen']} ({found['why']}); the probes took "
          f"{found['probe_seconds']:.0f} s.\n"
          f"Trained on it: WinRate {100 * wr:.1f} % against π_ref on the test prompts (mean over "
          f"{len(test)} seed(s)). Every probe: {found['out']}/recommend/recommendation.json")
    return 0


def cmd_plan(args) -> int:
    """The plan of `prefsift run CONFIG.yaml` with N processes, saved as OUT/plan.json."""
    plan = api.plan(args.config, overrides=args.overrides, out=args.out, processes=args.processes)
    print(plan.describe())
    print(f"plan: {plan.saved_to} (`prefsift run` on this folder prints predicted vs actual)")
    return 0


def cmd_demo(args) -> int:
    """`prefsift run` with the lab's own settings into --out."""
    api.demo(args.out, keep=args.keep, device=args.device, dtype=args.dtype,
             progress=not args.quiet)
    return 0

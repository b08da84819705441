"""Cost of scoring: LossDiff-IRM against exact IF on the same pairs and model, at several sizes.

Each size is scored twice from a cold cache, in one process, one after the other:
  cheap  `compute_scores(scores="irm,lossdiff")`: reference and policy log-probs, θ_val (one epoch
  on
         the validation pairs), θ_val log-probs — everything LossDiff-IRM needs;
  exact  `compute_scores(scores="irm,if")`: the same log-probs, the validation gradient and one
         gradient per training pair — everything TIF needs.
Both include loading and the shared log-probs, so the ratio is what a user waits, not a kernel
timing. Prints a table, the ratio and each size's Pearson r of LossDiff and of IRM with the exact
IF, writes JSON and a log-log plot.

    python benchmarks/cost.py --run runs/demo --sizes 250,500,1000,2000 [--out docs/figures]

    python benchmarks/cost.py --run runs/smollm2-sentiment --sizes 15,30,60,120 --name cost_smollm2

`--run` is a finished `prefsift run`/`prefsift demo` directory: its warm-up model is θ, its
reference π_ref, its training pairs are subset, and its own scoring settings (θ_val's learning
rate, max_length) are used. `--if-params` sets the IF parameter set (default: every parameter,
whatever the run used).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _subset(src: Path, n: int, dst: Path) -> Path:
    lines = [line for line in src.read_text(encoding="utf-8").splitlines() if line.strip()]
    if n > len(lines):
        raise SystemExit(f"{src} has {len(lines)} pairs; asked for {n}")
    dst.write_text("\n".join(lines[:n]) + "\n", encoding="utf-8")
    return dst


def _run_inputs(run: Path):
    """θ, π_ref, training and validation pairs of a finished run, wherever its data came from (the
    lab, the sentiment lab, or the user's files), and the run's config."""
    import yaml

    cfg_path = run / "config.yaml"
    if not cfg_path.exists():
        raise SystemExit(f"{run} has no config.yaml: pass a directory written by `prefsift run`")
    cfg = yaml.safe_load(cfg_path.read_text()) or {}
    if cfg.get("lab") is not None:
        data, reference = run / "lab", str(run / "lab" / "sft_model")
        train, val = data / "train.jsonl", data / "validation.jsonl"
    elif cfg.get("sentiment") is not None:
        from prefsift.lab.sentiment import SentimentConfig

        data = run / "sentiment-lab"
        reference = cfg.get("reference") or SentimentConfig(**cfg["sentiment"]).model
        train, val = data / "train.jsonl", data / "validation.jsonl"
    else:
        reference, train, val = cfg["reference"], Path(cfg["train"]), Path(cfg["validation"])
    policy = run / "warmup" / "model"
    if not policy.exists():
        raise SystemExit(f"{policy} does not exist: the run has not finished its warm-up")
    return policy, reference, train, val, cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/demo",
                    help="a finished run directory (default: runs/demo)")
    ap.add_argument("--sizes", default="250,500,1000,2000", help="numbers of training pairs")
    ap.add_argument("--if-params", default="all", help="IF parameter set (default: all)")
    ap.add_argument("--if-method", default="auto", choices=["auto", "vmap", "loop", "jvp"],
                    help="how exact IF is computed (default: auto, per-pair gradients); jvp: "
                         "forward mode")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: torch's choice)")
    ap.add_argument("--out", default="docs/figures", help="folder for NAME.json and NAME.png")
    ap.add_argument("--name", default="cost", help="file stem of the outputs (default: cost)")
    args = ap.parse_args()

    import pandas as pd
    import torch

    from prefsift.core.quiet import quiet_libraries
    from prefsift.scoring.table import ScoreConfig, compute_scores

    quiet_libraries()
    if args.threads:
        torch.set_num_threads(args.threads)
    run = Path(args.run)
    policy, reference, train, val, run_cfg = _run_inputs(run)
    objective, beta = run_cfg.get("objective", "dpo"), float(run_cfg.get("beta", 0.5))
    # The run's own scoring settings (θ_val's learning rate, max_length, ...), except what is
    # measured. Projection, preconditioning and the TIF window are not carried over: "exact" means
    # exact here.
    settings = {k: v for k, v in (run_cfg.get("scores") or {}).items()
                if k not in ("if_params", "scores", "out", "projection_dim", "precondition",
                             "tif_low", "tif_high", "keep", "if_method")}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for n in [int(x) for x in args.sizes.split(",")]:
            sub = _subset(train, n, tmp / f"train-{n}.jsonl")
            row = {"pairs": n}
            for name, scores in (("cheap", "irm,lossdiff"), ("exact", "irm,if")):
                out = tmp / f"{name}-{n}"
                cfg = ScoreConfig(policy=str(policy), reference=str(reference), train=str(sub),
                                  validation=str(val),
                                  out=str(out), objective=objective, beta=beta, scores=scores,
                                  if_params=args.if_params,
                                  if_method=args.if_method if name == "exact" else "auto",
                                  **settings)
                t0 = time.perf_counter()
                compute_scores(cfg, progress=False, log=lambda *a, **k: None)
                row[f"{name}_s"] = time.perf_counter() - t0
                row[f"{name}_stages"] = json.loads((out / "score_timings.json").read_text())
            row["ratio"] = row["exact_s"] / row["cheap_s"]
            # What the cheap scores buy: how closely they track the exact IF of the same pairs.
            both = pd.read_parquet(tmp / f"cheap-{n}"
                                   / "scores.parquet")[["id", "lossdiff", "irm"]].merge(
                pd.read_parquet(tmp / f"exact-{n}" / "scores.parquet")[["id", "if"]],
                on="id").dropna()
            for score in ("lossdiff", "irm"):
                row[f"pearson_{score}_if"] = float(both[score].corr(both["if"]))
                row[f"spearman_{score}_if"] = float(both[score].corr(both["if"], method="spearman"))
            rows.append(row)
            print(f"{n:>6} pairs: LossDiff-IRM {row['cheap_s']:7.1f} s   exact IF "
                  f"{row['exact_s']:7.1f} s   IF / LossDiff-IRM = {row['ratio']:.2f}   r(LossDiff, "
                  f"IF) {row['pearson_lossdiff_if']:.3f}  r(IRM, IF) {row['pearson_irm_if']:.3f}",
                  flush=True)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"run": str(run), "reference": str(reference), "if_params": args.if_params,
            "if_method": args.if_method, "score_settings": settings,
            "threads": torch.get_num_threads(), "torch": torch.__version__, "rows": rows}
    (out / f"{args.name}.json").write_text(json.dumps(meta, indent=1))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np

        n = np.array([r["pairs"] for r in rows], dtype=float)
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for key, label in (("cheap_s", "LossDiff-IRM"), ("exact_s", "exact IF (TIF)")):
            y = np.array([r[key] for r in rows])
            slope = np.polyfit(np.log(n), np.log(y), 1)[0] if len(n) > 1 else float("nan")
            ax.loglog(n, y, "o-", label=f"{label} (log-log slope {slope:.2f})")
        ax.set_xlabel("training pairs"), ax.set_ylabel("wall time (s)")
        ax.set_title(f"Scoring cost, {Path(str(reference)).name}, IF over {args.if_params}",
                     fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / f"{args.name}.png", dpi=120)
        print(f"wrote {out / f'{args.name}.json'} and {out / f'{args.name}.png'}")
    except ImportError:
        print(f"wrote {out / f'{args.name}.json'} (matplotlib not installed: no plot)")


if __name__ == "__main__":
    main()

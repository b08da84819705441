"""`prefsift demo`: what exists of the pipeline, end to end on the embedded lab.

lab (task, SFT model = π_ref, pairs) → DPO warm-up, one epoch on all pairs, through TRL (θ) →
scores (IRM, LossDiff, IF per layer group, TIF) → selections at one kept fraction, their overlap
with the TIF set, and what each kept by true pair type. Training the selections and judging them
come with the pipeline issue."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd


def quiet_libraries() -> None:
    """Keep the output to what a person needs: our progress bars, not every library's notices."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="trl")
    try:
        import datasets
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        datasets.disable_progress_bars()
    except ImportError:  # pragma: no cover
        pass


def kept_by_type(table: pd.DataFrame, masks: dict[str, np.ndarray]) -> pd.DataFrame:
    """Share of each true pair type that each selection kept (the lab knows every pair's type)."""
    rows = {}
    for name, mask in masks.items():
        kept = pd.Series(mask, index=table.index)
        rows[name] = kept.groupby(table["pair_type"]).mean()
    return pd.DataFrame(rows).T


def run_demo(out: str | Path, keep: float = 0.64, progress: bool = True, log=print) -> dict:
    from .data import load_pairs
    from .lab import LabConfig, format_summary, make_lab
    from .logprobs import model_fingerprint
    from .models import load_model, load_tokenizer
    from .objectives import PairwiseObjective
    from .scores import ScoreConfig, compute_scores
    from .select import apply_rule, overlap_coefficient
    from .train import StageSettings, train_stage

    quiet_libraries()
    out = Path(out)
    t0 = time.time()
    times = {}
    log(f"[1/4] lab: synthetic task, tiny SFT model (= π_ref), preference pairs -> {out / 'lab'}")
    summary = make_lab(LabConfig(progress=progress), out / "lab")
    log(format_summary(summary))
    times["lab"] = time.time() - t0

    t = time.time()
    log("\n[2/4] DPO warm-up through TRL: one epoch on all training pairs from π_ref gives θ")
    lab = out / "lab"
    tok, ref = load_tokenizer(lab / "sft_model"), load_model(lab / "sft_model")
    train = load_pairs(lab / "train.jsonl")
    _, info = train_stage(ref, ref, tok, train.records(), PairwiseObjective("dpo", 0.1),
                          StageSettings(epochs=1, learning_rate=5e-4, batch_size=16), out / "warmup",
                          start_key=model_fingerprint(ref), data_key=str(lab / "train.jsonl"), name="warmup")
    log(f"  {info['steps']} steps, mean training loss {info['train_loss']:.4f}, {info['seconds']:.0f} s")
    times["warmup"] = time.time() - t

    t = time.time()
    log("\n[3/4] scoring every pair: IRM, LossDiff (θ_val = θ + one epoch on validation), IF, TIF")
    cfg = ScoreConfig(policy=str(out / "warmup" / "model"), reference=str(lab / "sft_model"),
                      train=str(lab / "train.jsonl"), validation=str(lab / "validation.jsonl"),
                      out=str(out / "score"), keep=keep)
    table = compute_scores(cfg, progress=progress, log=log)
    times["score"] = time.time() - t

    log(f"\n[4/4] selections keeping {keep:.0%} of the pairs")
    rules = ["lossdiff_irm", "lossdiff", "irm", "tif", "top_if", "abs_irm_small", "score_gap", "random"]
    masks = {r: apply_rule(table, r, keep) for r in rules}
    lines = [f"  {'rule':<14} {'kept':>6} {'overlap with TIF':>17}"]
    for r, m in masks.items():
        lines.append(f"  {r:<14} {int(m.sum()):>6} {overlap_coefficient(m, masks['tif']):>17.3f}")
    log("\n".join(lines))
    by_type = kept_by_type(table, masks)
    log("\n  share of each true pair type kept:")
    log("  " + by_type.round(2).to_string().replace("\n", "\n  "))
    sel = table[["id", "valid", "reason"]].copy()
    for r, m in masks.items():
        sel[r] = m
    sel.to_parquet(out / "selection.parquet", index=False)
    times["total"] = time.time() - t0
    log(f"\nDone in {times['total']:.0f} s (lab {times['lab']:.0f} s, warm-up {times['warmup']:.0f} s, "
        f"scoring {times['score']:.0f} s).")
    log(f"  scores:     {out / 'score' / 'scores.parquet'}\n  selections: {out / 'selection.parquet'}")
    log("Not built yet: training each selection for two more epochs from θ and judging the result "
        "(WinRate against π_ref); until then these selections are unproven.")
    return {"times": times, "kept_by_type": by_type, "lab": summary}

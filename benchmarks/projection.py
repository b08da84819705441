"""Random projection of per-pair gradients on SmolLM2-135M-Instruct with LoRA: seconds per pair and
peak memory, exact and projected, each setting in its own process so peak memory is its own.

    python benchmarks/projection.py [--pairs 32] [--val 16] [--threads 2] [--k 2048,8192]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def one(pairs: int, val: int, k: int, threads: int) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    sys.path.insert(0, os.path.dirname(__file__))
    from logprobs import mixed_pairs

    from prefsift.data.tokenization import tokenize_pairs
    from prefsift.models.loading import LoraSettings, add_lora, load_model, load_tokenizer
    from prefsift.models.objectives import PairwiseObjective
    from prefsift.scoring.influence import InfluenceSettings, compute_influence
    from prefsift.scoring.logprobs import LogprobSettings, compute_pair_logps

    tok = load_tokenizer("smollm2")
    base = load_model("smollm2")
    recs = mixed_pairs(pairs + val, 1, lab=False)
    # Moderate lengths (cut to 256 tokens), as LoRA scoring runs would use.
    toks = tokenize_pairs(tok, [r["prompt"] for r in recs], [r["chosen"] for r in recs],
                          [r["rejected"] for r in recs], "standard")
    ls = LogprobSettings(max_length=256)
    ref = compute_pair_logps(base, toks, tok.pad_token_id, ls, progress=False)
    model = add_lora(base, LoraSettings(r=8, alpha=16))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    res = compute_influence(model, toks[:pairs], (ref.chosen[:pairs], ref.rejected[:pairs]),
                            toks[pairs:], (ref.chosen[pairs:], ref.rejected[pairs:]),
                            PairwiseObjective("dpo", 0.1), tok.pad_token_id,
                            InfluenceSettings(params="lora", projection_dim=k or None,
                                              max_length=256, method="loop"), progress=False)
    dt = time.perf_counter() - t0
    n_lora = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    return {"k": k, "seconds_per_pair": dt / pairs, "seconds": dt,
            "peak_rss_mb": resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_before_if_mb": rss0 / 1024,
        "lora_params": n_lora, "if": np.asarray(res.total).tolist()}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=32)
    ap.add_argument("--val", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--k", default="2048,8192",
                    help="projection dimensions to compare with exact IF")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child is not None:
        print(json.dumps(one(a.pairs, a.val, a.child, a.threads)))
        return
    import numpy as np
    from scipy.stats import spearmanr

    rows = []
    for k in [0] + [int(x) for x in a.k.split(",") if x]:
        out = subprocess.run([sys.executable, __file__, "--child", str(k), "--pairs", str(a.pairs),
                              "--val", str(a.val), "--threads", str(a.threads)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    exact = np.array(rows[0]["if"])
    print(f"SmolLM2-135M-Instruct + LoRA r=8 on q,k,v,o ({rows[0]['lora_params']:,} parameters), "
          f"{a.pairs} pairs, {a.val} validation pairs, max 256 tokens, {a.threads} threads")
    print(f"{'setting':<16} {'s/pair':>8} {'peak RSS MB':>12} {'RSS before IF':>14} "
          f"{'Spearman vs exact':>18}")
    for r in rows:
        rho = 1.0 if r["k"] == 0 else spearmanr(exact, r["if"])[0]
        name = "exact" if r["k"] == 0 else f"projected k={r['k']}"
        print(f"{name:<16} {r['seconds_per_pair']:>8.3f} {r['peak_rss_mb']:>12.0f} "
              f"{r['rss_before_if_mb']:>14.0f} {rho:>18.3f}")


if __name__ == "__main__":
    main()

"""The GPU check (a few minutes on one CUDA GPU; skips cleanly without one).

    python benchmarks/gpu_check.py [--pairs 512] [--cpu-pairs 32]

On SmolLM2-135M-Instruct and the chat pairs of benchmarks/precision.py, side by side in one run:
the log-prob engine on the CPU in fp32 (a subset, the reference values), on CUDA in fp32 and in bf16
(pairs/s, tokens/s, the fraction of the GPU's dense bf16 peak that the forward FLOPs reach, and
max |Δ| against the CPU values on the common pairs), and exact IF by forward mode on CUDA (pairs/s).
Not yet here: the sharded multi-GPU run and the TRL baseline on GPU (issue 12 items 2 and 6)."""

from __future__ import annotations

import argparse
import os
import sys
import time

# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity), from the vendors' data sheets.
PEAK_BF16 = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "L4": 121.0, "4090": 165.0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=512)
    ap.add_argument("--cpu-pairs", type=int, default=32)
    ap.add_argument("--device", default="cuda", help="cuda (default), or cpu for a dry run of the same code here")
    args = ap.parse_args()
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here: skipped")
        return 0
    import numpy as np

    sys.path.insert(0, os.path.dirname(__file__))
    from precision import make_pairs

    import prefsift
    from prefsift.data.tokenization import tokenize_pairs
    from prefsift.models import load_model, load_tokenizer
    from prefsift.objectives import PairwiseObjective
    from prefsift.quiet import quiet_libraries
    from prefsift.scoring.influence import select_parameters, layer_group
    from prefsift.scoring.gradients import validation_gradient
    from prefsift.scoring.influence_jvp import jvp_influence
    from prefsift.scoring.logprobs import LogprobSettings, compute_pair_logps

    quiet_libraries()
    gpu = args.device
    sync = torch.cuda.synchronize if gpu == "cuda" else (lambda: None)
    name = torch.cuda.get_device_name(0) if gpu == "cuda" else "the CPU (dry run)"
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    tok = load_tokenizer("smollm2")
    pairs = prefsift.load_pairs(make_pairs(args.pairs, 0))
    toks = tokenize_pairs(tok, [r.prompt for r in pairs.valid_rows], [r.chosen for r in pairs.valid_rows],
                          [r.rejected for r in pairs.valid_rows], pairs.kind)
    n_tokens = sum(len(t.prompt_ids) * 2 + len(t.chosen_ids) + len(t.rejected_ids) for t in toks)
    n_params = None
    settings = LogprobSettings(max_length=192, token_budget=8192)
    print(f"gpu_check on {name} (torch {torch.__version__}), {len(toks)} pairs, {n_tokens} tokens")
    cpu = load_model("smollm2", device="cpu", dtype="fp32")
    n_params = sum(p.numel() for p in cpu.parameters())
    t0 = time.perf_counter()
    ref = compute_pair_logps(cpu, toks[: args.cpu_pairs], tok.pad_token_id, LogprobSettings(max_length=192),
                             progress=False)
    cpu_s = time.perf_counter() - t0
    print(f"  cpu fp32: {args.cpu_pairs / cpu_s:.1f} pairs/s ({args.cpu_pairs} pairs)")
    del cpu
    for dtype in ("fp32", "bf16"):
        model = load_model("smollm2", device=gpu, dtype=dtype)
        compute_pair_logps(model, toks[:8], tok.pad_token_id, settings, progress=False)  # warm-up
        sync()
        t0 = time.perf_counter()
        got = compute_pair_logps(model, toks, tok.pad_token_id, settings, progress=False)
        sync()
        s = time.perf_counter() - t0
        k = args.cpu_pairs
        dmax = max(np.abs(np.asarray(got.chosen[:k]) - ref.chosen).max(), np.abs(np.asarray(got.rejected[:k]) -
                                                                                  ref.rejected).max())
        frac = f"{2 * n_params * n_tokens / s / 1e12 / peak:.1%} of {peak:.0f} TFLOP/s" if peak else "peak unknown"
        print(f"  {gpu} {dtype}: {len(toks) / s:.1f} pairs/s, {n_tokens / s:.0f} tokens/s, forward FLOPs {frac}; "
              f"max |Δ log-prob| vs cpu fp32 {dmax:.4f} nats")
        params = select_parameters(model, "all")
        objective = PairwiseObjective("dpo", 0.1)
        val, train = toks[:min(32, len(toks) // 4)], toks[min(32, len(toks) // 4):160]
        rv = compute_pair_logps(model, val, tok.pad_token_id, settings, progress=False)
        rt = compute_pair_logps(model, train, tok.pad_token_id, settings, progress=False)
        g = [x.detach() for x in validation_gradient(model, params, val, rv.chosen, rv.rejected, objective,
                                                       tok.pad_token_id, 192)]
        sync()
        t0 = time.perf_counter()
        jvp_influence(model, params, g, train, rt.chosen, rt.rejected, objective, tok.pad_token_id,
                      groups=[layer_group(n) for n in params], per_group=False, max_length=192, progress=False)
        sync()
        print(f"  {gpu} {dtype}: exact IF by forward mode, all {n_params / 1e6:.0f} M parameters: "
              f"{len(train) / (time.perf_counter() - t0):.1f} pairs/s")
        del model
        if gpu == "cuda":
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())

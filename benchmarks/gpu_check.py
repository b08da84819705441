"""The GPU check (a few minutes on one CUDA GPU; skips cleanly without one).

    python benchmarks/gpu_check.py [--pairs 512] [--cpu-pairs 32]

On SmolLM2-135M-Instruct and the chat pairs of benchmarks/precision.py, side by side in one run:
the log-prob engine on the CPU in fp32 (a subset, the reference values), on CUDA in fp32 and in bf16
(pairs/s, tokens/s, the fraction of the GPU's dense bf16 peak that the forward FLOPs reach, and
max |Δ| against the CPU values on the common pairs), exact IF by forward mode on CUDA (pairs/s), and
TRL's own reference log-prob pass (DPOTrainer._precompute_ref_logps, bf16, batch 8) on the same
pairs. With two or more GPUs, `prefsift score --scores irm` on the pairs through torchrun on 2 GPUs
against 1 GPU: both wall times and the largest difference between the two tables."""

from __future__ import annotations

import argparse
import os
import sys
import time

# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity), from the vendors' data sheets.
PEAK_BF16 = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "L4": 121.0,
             "4090": 165.0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=512)
    ap.add_argument("--cpu-pairs", type=int, default=32)
    ap.add_argument("--device", default="cuda",
                    help="cuda (default), or cpu for a dry run of the same code here")
    args = ap.parse_args()
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here: skipped")
        return 0
    import numpy as np

    sys.path.insert(0, os.path.dirname(__file__))
    from precision import make_pairs

    import prefsift
    from prefsift.core.quiet import quiet_libraries
    from prefsift.data.tokenization import tokenize_pairs
    from prefsift.models.loading import load_model, load_tokenizer
    from prefsift.models.objectives import PairwiseObjective
    from prefsift.scoring.gradients import validation_gradient
    from prefsift.scoring.influence import layer_group, select_parameters
    from prefsift.scoring.influence_jvp import jvp_influence
    from prefsift.scoring.logprobs import LogprobSettings, compute_pair_logps

    quiet_libraries()
    gpu = args.device
    sync = torch.cuda.synchronize if gpu == "cuda" else (lambda: None)
    name = torch.cuda.get_device_name(0) if gpu == "cuda" else "the CPU (dry run)"
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    tok = load_tokenizer("smollm2")
    pairs = prefsift.load_pairs(make_pairs(args.pairs, 0))
    toks = tokenize_pairs(tok, [r.prompt for r in pairs.valid_rows],
                          [r.chosen for r in pairs.valid_rows],
                          [r.rejected for r in pairs.valid_rows], pairs.kind)
    n_tokens = sum(len(t.prompt_ids) * 2 + len(t.chosen_ids) + len(t.rejected_ids) for t in toks)
    n_params = None
    settings = LogprobSettings(max_length=192, token_budget=8192)
    print(f"gpu_check on {name} (torch {torch.__version__}), {len(toks)} pairs, {n_tokens} tokens")
    cpu = load_model("smollm2", device="cpu", dtype="fp32")
    n_params = sum(p.numel() for p in cpu.parameters())
    t0 = time.perf_counter()
    ref = compute_pair_logps(cpu, toks[: args.cpu_pairs], tok.pad_token_id,
                             LogprobSettings(max_length=192), progress=False)
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
        dmax = max(np.abs(np.asarray(got.chosen[:k]) - ref.chosen).max(),
                   np.abs(np.asarray(got.rejected[:k]) -
                          ref.rejected).max())
        frac = (f"{2 * n_params * n_tokens / s / 1e12 / peak:.1%} of {peak:.0f} TFLOP/s" if peak
                else "peak unknown")
        print(f"  {gpu} {dtype}: {len(toks) / s:.1f} pairs/s, {n_tokens / s:.0f} tokens/s, forward "
              f"FLOPs {frac}; max |Δ log-prob| vs cpu fp32 {dmax:.4f} nats")
        params = select_parameters(model, "all")
        objective = PairwiseObjective("dpo", 0.1)
        val, train = toks[:min(32, len(toks) // 4)], toks[min(32, len(toks) // 4):160]
        rv = compute_pair_logps(model, val, tok.pad_token_id, settings, progress=False)
        rt = compute_pair_logps(model, train, tok.pad_token_id, settings, progress=False)
        g = [x.detach() for x in validation_gradient(model, params, val, rv.chosen, rv.rejected,
                                                       objective, tok.pad_token_id, 192)]
        sync()
        t0 = time.perf_counter()
        jvp_influence(model, params, g, train, rt.chosen, rt.rejected, objective, tok.pad_token_id,
                      groups=[layer_group(n) for n in params], per_group=False, max_length=192,
                      progress=False)
        sync()
        print(f"  {gpu} {dtype}: exact IF by forward mode, all {n_params / 1e6:.0f} M parameters: "
              f"{len(train) / (time.perf_counter() - t0):.1f} pairs/s")
        if dtype == "bf16":
            trl_pairs_per_s = _trl_reference_pass(model, tok, pairs, sync)
            print(f"  {gpu} bf16: TRL's reference pass (DPOTrainer, batch 8): "
                  f"{trl_pairs_per_s:.1f} pairs/s, against prefsift's {len(toks) / s:.1f} pairs/s "
                  f"above")
        del model
        if gpu == "cuda":
            torch.cuda.empty_cache()
    if gpu == "cuda" and torch.cuda.device_count() >= 2:
        _sharded(pairs)
    return 0


def _trl_reference_pass(model, tok, pairs, sync) -> float:
    """Pairs/s of TRL 1.16's reference log-prob pass (what precompute_ref_log_probs=True runs)."""
    import copy
    import tempfile

    import torch
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    records = [{"prompt": r.prompt, "chosen": r.chosen, "rejected": r.rejected}
               for r in pairs.valid_rows]
    with tempfile.TemporaryDirectory() as tmp:
        on_cpu = next(model.parameters()).device.type == "cpu"  # the dry run
        args = DPOConfig(output_dir=tmp, bf16=True, use_cpu=on_cpu, report_to=[], max_length=192,
                         per_device_train_batch_size=8, precompute_ref_batch_size=8,
                         disable_tqdm=True)
        trainer = DPOTrainer(model=copy.deepcopy(model), ref_model=model, args=args,
                             train_dataset=Dataset.from_list(records), processing_class=tok)
        sync()
        t0 = time.perf_counter()
        with torch.no_grad():
            trainer._precompute_ref_logps(trainer.train_dataset, "gpu_check", 8)
        sync()
        return len(records) / (time.perf_counter() - t0)


def _sharded(pairs) -> None:
    """`prefsift score --scores irm` on 1 GPU and through torchrun on 2: wall times, largest
    difference."""
    import json
    import subprocess
    import tempfile
    from pathlib import Path

    import numpy as np
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        train = Path(tmp) / "train.jsonl"
        train.write_text("".join(json.dumps({"prompt": r.prompt, "chosen": r.chosen,
                                             "rejected": r.rejected}) + "\n"
                                 for r in pairs.valid_rows))
        args = ["score", "--policy", "smollm2", "--reference", "smollm2", "--train", str(train),
                "--scores", "irm", "--max-length", "192", "--batch-tokens", "8192", "--quiet"]
        walls = {}
        for n in (1, 2):
            out = Path(tmp) / f"gpus{n}"
            launch = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                      f"--nproc_per_node={n}"]
            t0 = time.perf_counter()
            r = subprocess.run(launch + ["-m", "prefsift", *args, "--out", str(out)],
                               capture_output=True, text=True)
            walls[n] = time.perf_counter() - t0
            if r.returncode != 0:
                print(f"  sharded run on {n} GPU(s) failed:\n{r.stderr[-2000:]}")
                return
        a, b = (pd.read_parquet(Path(tmp) / f"gpus{n}" / "scores.parquet") for n in (1, 2))
        same = list(a["id"]) == list(b["id"])
        d = np.nanmax(np.abs(a["irm"].to_numpy() - b["irm"].to_numpy()))
        print(f"  prefsift score (irm) on {len(a)} pairs: 1 GPU {walls[1]:.1f} s, 2 GPUs "
              f"(torchrun) {walls[2]:.1f} s wall, including start-up; same ids and order: {same}; "
              f"max |Δ IRM| {d:.2e}")


if __name__ == "__main__":
    sys.exit(main())

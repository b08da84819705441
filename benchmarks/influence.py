"""Exact IF by forward mode against the per-pair gradient loop and against LossDiff-IRM, side by
side in one process: the lab model and SmolLM2-135M-Instruct (all parameters, and LoRA r=8).

For each model, on the same pairs:
  forward      the policy's log-prob pass alone (the unit of cost)
  lossdiff_irm θ_val training (one SGD epoch on the validation pairs, from θ) + θ and θ_val
               log-probs
  if_loop      exact IF by a backward pass per pair (validation gradient included)
  if_vmap      exact IF by per-pair gradients batched with vmap (lab only: what "auto" picks
               there; on SmolLM2 + LoRA it needed over 15 GB, see benchmarks/README.md)
  if_jvp       exact IF by forward mode, total only; also gives the policy's log-probs (IRM)
  if_jvp_groups  forward mode with one tangent per layer group (lab and LoRA only; see --groups)
Reference log-probs are shared by every method and measured once, outside the ratios. Peak RSS is
per measurement (Linux: /proc/self/clear_refs resets the high-water mark before each).

    python benchmarks/influence.py [--models lab,smollm2,smollm2-lora] [--pairs 32] [--val 16]
                                   [--threads 2] [--max-length 256]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _timed(fn, what=""):
    print(f"  timing {what} ...", file=sys.stderr, flush=True)
    _reset_peak()
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, _peak_rss_mb()


def _setup(name: str, n_pairs: int, n_val: int, max_length: int):
    sys.path.insert(0, os.path.dirname(__file__))
    from logprobs import mixed_pairs

    from prefsift.data.tokenization import tokenize_pairs
    from prefsift.models.loading import LoraSettings, add_lora, load_model, load_tokenizer

    if name == "lab":
        import tempfile

        from prefsift.lab import LabConfig, make_lab

        folder = os.path.join(tempfile.gettempdir(), "prefsift-bench-lab")
        # A short SFT: the cost of IF does not depend on how well the model learned the task.
        make_lab(LabConfig(n_train=max(n_pairs, 64), n_validation=max(n_val, 16), n_test_prompts=8,
                           progress=False, sft_steps=60, sft_warmup_steps=5, share_sft=False),
                 folder)
        spec = os.path.join(folder, "sft_model")
        recs = mixed_pairs(n_pairs + n_val, 1, lab=True)
        kind = "standard"
    else:
        spec = "smollm2"
        recs = mixed_pairs(n_pairs + n_val, 1, lab=False)
        kind = "standard"
    tok = load_tokenizer(spec)
    ref = load_model(spec)
    policy = load_model(spec)
    import torch

    with torch.no_grad():  # θ: π_ref moved a little, as after a warm-up
        g = torch.Generator().manual_seed(0)
        for p in policy.parameters():
            p.add_(1e-3 * p.abs().mean() * torch.randn(p.shape, generator=g))
    if name == "smollm2-lora":
        policy = add_lora(policy, LoraSettings(r=8, alpha=16))
        with torch.no_grad():
            for n, p in policy.named_parameters():
                if "lora_B" in n:
                    p.add_(1e-3 * torch.randn(p.shape, generator=g))
    toks = tokenize_pairs(tok, [r["prompt"] for r in recs], [r["chosen"] for r in recs],
                          [r["rejected"] for r in recs], kind)
    return tok, ref, policy, toks[:n_pairs], toks[n_pairs:], recs[n_pairs:]


def bench(name: str, n_pairs: int, n_val: int, max_length: int, groups: bool) -> list[dict]:
    import numpy as np

    from prefsift.models.objectives import PairwiseObjective
    from prefsift.scoring.influence import InfluenceSettings, compute_influence
    from prefsift.scoring.logprobs import LogprobSettings, compute_pair_logps, model_fingerprint
    from prefsift.train.dpo import StageSettings
    from prefsift.train.stage import TrainingStage

    tok, ref, policy, train, val, val_recs = _setup(name, n_pairs, n_val, max_length)
    pad = tok.pad_token_id
    obj = PairwiseObjective("dpo", 0.1)
    ls = LogprobSettings(max_length=max_length)
    params = "lora" if name.endswith("lora") else "all"
    n_params = sum(p.numel() for n, p in policy.named_parameters()
                   if params == "all" or "lora_" in n)
    r_tr = compute_pair_logps(ref, train, pad, ls, progress=False)
    r_va = compute_pair_logps(ref, val, pad, ls, progress=False)
    rows = []

    def add(method, seconds, rss, extra=None):
        rows.append({"model": name, "method": method, "pairs": n_pairs, "seconds": seconds,
                     "pairs_per_s": n_pairs / seconds,
                     "peak_rss_mb": rss, "params": n_params, **(extra or {})})

    _, s, m = _timed(lambda: compute_pair_logps(policy, train, pad, ls, progress=False),
                     f"{name} forward")
    add("forward", s, m)

    def lossdiff_irm():
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            theta_val, _ = TrainingStage(policy, ref, tok,
                                         [{"prompt": r["prompt"], "chosen": r["chosen"],
                                                           "rejected": r["rejected"]}
                                          for r in val_recs],
                                       obj, StageSettings(epochs=1, learning_rate=1e-2,
                                                          batch_size=8,
                                                          max_length=max_length, optimizer="sgd"),
                                       d, start_key=model_fingerprint(policy), data_key="bench",
                                       name="theta_val", log=lambda *_: None).run()
            compute_pair_logps(policy, train, pad, ls, progress=False)
            compute_pair_logps(theta_val, train, pad, ls, progress=False)

    _, s, m = _timed(lossdiff_irm, f"{name} lossdiff_irm")
    add("lossdiff_irm", s, m)
    run = lambda **kw: compute_influence(policy, train, (r_tr.chosen, r_tr.rejected), val,
                                         (r_va.chosen, r_va.rejected), obj, pad,
                                         InfluenceSettings(params=params, max_length=max_length,
                                                           **kw),
                                         progress=False)
    loop, s, m = _timed(lambda: run(method="loop"), f"{name} if_loop")
    add("if_loop", s, m)
    # what method "auto" takes for small parameter sets (on SmolLM2 + LoRA, vmap over 16
    if name == "lab":
        # pairs' activations took over 15 GB here: the loop is the route there)
        _, s, m = _timed(lambda: run(method="vmap"), f"{name} if_vmap")
        add("if_vmap", s, m)
    jvp, s, m = _timed(lambda: run(method="jvp", jvp_groups=False), f"{name} if_jvp")
    err = np.max(np.abs(jvp.total - loop.total)) / np.max(np.abs(loop.total))
    add("if_jvp", s, m, {"max_err_vs_loop": err})
    if groups:
        jg, s, m = _timed(lambda: run(method="jvp", jvp_groups=True, group_memory_gb=4.0),
                          f"{name} if_jvp_groups")
        add("if_jvp_groups", s, m, {"groups": len(jg.groups)})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="lab,smollm2,smollm2-lora")
    ap.add_argument("--pairs", type=int, default=32, help="training pairs for SmolLM2")
    ap.add_argument("--val", type=int, default=16, help="validation pairs for SmolLM2")
    ap.add_argument("--lab-pairs", type=int, default=2000,
                    help="training pairs for the lab model (the demo's 2000)")
    ap.add_argument("--lab-val", type=int, default=300, help="validation pairs for the lab model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--groups", default="lab",
                    help="models to also time with per-group tangents (one tangent per "
                    "layer group; on SmolLM2 30 groups cost about 15 passes within the 4 GB "
                    "budget)")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    from prefsift.core.quiet import quiet_libraries

    quiet_libraries()
    rows = []
    print(f"lab: {a.lab_pairs} training / {a.lab_val} validation pairs; SmolLM2: {a.pairs} / "
          f"{a.val}; max {a.max_length} tokens, {a.threads} threads, torch {torch.__version__}")
    print(f"{'model':<14}{'method':<15}{'pairs':>6}{'params':>12}{'seconds':>9}{'pairs/s':>9}"
          f"{'peak RSS MB':>13}{'÷ forward':>11}{'÷ LossDiff-IRM':>16}  note", flush=True)
    for name in a.models.split(","):
        t0 = time.perf_counter()
        n, v = (a.lab_pairs, a.lab_val) if name == "lab" else (a.pairs, a.val)
        new = bench(name, n, v, a.max_length, name in a.groups.split(","))
        print(f"[{name}] done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        _print(new)  # each model as soon as it is done
        rows += new
        if a.json:
            import json

            with open(a.json, "w") as fh:
                json.dump(rows, fh, indent=1, default=float)


def _print(rows):
    for r in rows:
        base = {x["method"]: x["seconds"] for x in rows if x["model"] == r["model"]}
        note = (f"max |jvp−loop|/max|IF| = {r['max_err_vs_loop']:.1e}" if "max_err_vs_loop" in r
                else f"{r['groups']} groups" if "groups" in r else "")
        print(f"{r['model']:<14}{r['method']:<15}{r['pairs']:>6}{r['params']:>12,}"
              f"{r['seconds']:>9.1f}{r['pairs_per_s']:>9.2f}{r['peak_rss_mb']:>13.0f}"
              f"{r['seconds'] / base['forward']:>11.2f}"
              f"{r['seconds'] / base['lossdiff_irm']:>16.2f}  {note}", flush=True)


if __name__ == "__main__":
    main()

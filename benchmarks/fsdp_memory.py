"""Memory per process, DDP against FSDP, for 1, 2 and 4 processes on SmolLM2-135M-Instruct (CPU,
gloo).

    python benchmarks/fsdp_memory.py [--processes 1 2 4] [--pairs 16] [--out runs/bench-fsdp]

Each setting runs in fresh torchrun workers. Every worker measures two things:

- **training**: one DPO stage through prefsift's `TrainingStage` (TRL's DPOTrainer; AdamW; full
  fine-tuning; a separate frozen reference), 2 optimizer steps of 4 pairs per process. It reports
  the bytes held in tensors at the end of the last step: this process's parameters (policy and
  reference), their gradients, and the Adam state. These are exact counts of tensor bytes
  (`to_local()` for FSDP shards). It also reports the process's resident set size in that step, and
  its peak during the whole stage, sampled every 20 ms (allocator, Python and the libraries
  included; the peak includes loading: every process loads the whole start before it is sharded).
- **scoring**: π_ref and θ sharded for scoring (`sharding.shard_for_scoring`, FSDP) or whole (DDP),
  then the bytes of their weights held by this process, and the peak RSS during one log-prob pass.

The ratios FSDP/DDP printed at the end are side by side, from the same run and machine."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

WORKER = r'''
import json, os, sys, threading, time
import psutil, torch
from prefsift.runtime.distributed import world
from prefsift.runtime.sharding import local_part, set_shard, shard_for_scoring, fsdp_on
from prefsift.models.loading import load_model, load_tokenizer
from prefsift.models.objectives import PairwiseObjective
from prefsift.train.dpo import StageSettings
from prefsift.train.stage import TrainingStage

shard, out, pairs = sys.argv[1], sys.argv[2], int(sys.argv[3])
set_shard(shard)
here = world()
torch.manual_seed(0)
proc = psutil.Process()

class Peak:
    def __init__(self):
        self.peak, self.on = 0, True
        self.t = threading.Thread(target=self.run, daemon=True); self.t.start()
    def run(self):
        while self.on:
            self.peak = max(self.peak, proc.memory_info().rss); time.sleep(0.02)
    def stop(self):
        self.on = False; self.t.join(); return self.peak / 2**30

def tensor_bytes(ts):
    return sum(local_part(t).numel() * t.element_size() for t in ts if t is not None)

tok = load_tokenizer("smollm2")
records = [{"prompt": f"Question {i}: what is {i} plus {i}?", "chosen": f" It is {2 * i}.",
            "rejected": f" It is {2 * i + 1}, I think, or maybe not."} for i in range(pairs)]
held = {}
import trl
from transformers import TrainerCallback

class AdamState(TrainerCallback):
    def on_step_end(self, args, state, control, optimizer=None, **k):
        if optimizer is not None:
            held["adam_gib"] = tensor_bytes([v for s in optimizer.state.values() for v in s.values()
                                             if torch.is_tensor(v) and v.dim() > 0]) / 2**30

class Spy(trl.DPOTrainer):  # the tensors held in the last training step
    def training_step(self, *a, **k):
        loss = super().training_step(*a, **k)
        params = list(self.model.parameters())
        ref = list(self.ref_model.parameters()) if self.ref_model is not None else []
        held["weights_gib"] = (tensor_bytes(params) + tensor_bytes(ref)) / 2**30
        held["grads_gib"] = tensor_bytes([p.grad for p in params]) / 2**30
        held["step_rss_gib"] = proc.memory_info().rss / 2**30
        return loss

    def train(self, *a, **k):
        self.add_callback(AdamState())
        return super().train(*a, **k)

trl.DPOTrainer = Spy
ref = load_model("smollm2")
peak = Peak()
t0 = time.time()
TrainingStage("smollm2", ref, tok, records, PairwiseObjective("dpo", 0.1),
              StageSettings(epochs=1, learning_rate=1e-6, batch_size=4 * here.size, max_length=64), out,
              start_key="bench", data_key=f"{shard}{here.size}", name="bench", log=lambda *a: None,
              progress=False).run()
train_peak, train_s = peak.stop(), time.time() - t0
del ref
import gc; gc.collect()
# Scoring: π_ref and θ held for the log-prob passes
from prefsift.scoring.logprobs import LogprobSettings, compute_pair_logps
from prefsift.data.tokenization import TokenizedPair
models = [load_model("smollm2"), load_model(os.path.join(out, "model"))]
if fsdp_on(here):
    models = [shard_for_scoring(m) for m in models]
score_weights = sum(tensor_bytes(list(m.parameters())) for m in models) / 2**30
enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]
tps = [TokenizedPair(enc(r["prompt"]), enc(r["chosen"]), enc(r["rejected"])) for r in records * 4]
peak = Peak()
for m in models:
    compute_pair_logps(m, tps, tok.pad_token_id, LogprobSettings(max_length=64), progress=False, shard=here)
score_peak = peak.stop()
print("RESULT", json.dumps({"rank": here.rank, "processes": here.size, "shard": shard, **held,
                             "train_peak_rss_gib": train_peak, "train_seconds": train_s,
                             "score_weights_gib": score_weights, "score_peak_rss_gib": score_peak}), flush=True)
'''  # noqa: E501  (the worker's script)


def run(shard: str, n: int, out: Path, pairs: int) -> list[dict]:
    script = out / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    target = out / f"{shard}-{n}"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
           str(script), shard, str(target), str(pairs)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"{shard} with {n} process(es) failed:\n{r.stderr[-4000:]}")
    return [json.loads(line.split(" ", 1)[1]) for line in r.stdout.splitlines()
            if line.startswith("RESULT ")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--pairs", type=int, default=16,
                    help="training pairs (each process trains 2 steps of 4)")
    ap.add_argument("--out", default="runs/bench-fsdp")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in args.processes:
        for shard in ("ddp", "fsdp"):
            if n == 1 and shard == "fsdp":
                continue  # one process has nothing to shard: the same as ddp
            t = time.time()
            got = run(shard, n, out, max(args.pairs, 8 * n))
            rank0 = next(g for g in got if g["rank"] == 0)
            rank0["max_train_peak_rss_gib"] = max(g["train_peak_rss_gib"] for g in got)
            rank0["wall_seconds"] = time.time() - t
            rows.append(rank0)
            print(json.dumps(rank0), flush=True)
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    print("\n| processes | shard | weights (policy+ref) | grads | Adam | sum, training | RSS in a "
          "step | peak RSS, training | weights, scoring | peak RSS, scoring |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        held = r["weights_gib"] + r["grads_gib"] + r.get("adam_gib", 0.0)
        print(f"| {r['processes']} | {r['shard']} | {r['weights_gib']:.3f} | {r['grads_gib']:.3f} "
              f"| {r.get('adam_gib', 0.0):.3f} | {held:.3f} | {r['step_rss_gib']:.2f} | "
              f"{r['max_train_peak_rss_gib']:.2f} | {r['score_weights_gib']:.3f} | "
              f"{r['score_peak_rss_gib']:.2f} |")
    by = {(r["processes"], r["shard"]): r for r in rows}
    for n in args.processes:
        if (n, "ddp") in by and (n, "fsdp") in by:
            d, f = by[(n, "ddp")], by[(n, "fsdp")]
            sd = d["weights_gib"] + d["grads_gib"] + d.get("adam_gib", 0)
            sf = f["weights_gib"] + f["grads_gib"] + f.get("adam_gib", 0)
            print(f"{n} processes: FSDP/DDP tensor bytes in training {sf / sd:.2f}, scoring "
                  f"weights {f['score_weights_gib'] / d['score_weights_gib']:.2f}; peak RSS "
                  f"training {f['max_train_peak_rss_gib'] / d['max_train_peak_rss_gib']:.2f}")


if __name__ == "__main__":
    main()

"""The planner's measurements: exact token counts of the engine's and TRL's batching, and short
timings (probes) of the real models on a sample of the real pairs."""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.tokenization import tokenize_pairs
from ..models.loading import add_lora
from ..runtime.devices import model_device, model_precision
from ..scoring.logprobs import batch_logps, pair_sequences, plan_batches
from ..train.dpo import trl_config
from ..train.stage import trainable_start, without_patched_forward
from .memory import Shape, training_bytes
from .plan import GIB, StagePlan

# ---------------------------------------------------------------------------------------------
# Token counts: exact, from the tokenized pairs and the engine's and TRL's own batching.


def engine_tokens(pairs, max_length: int | None, token_budget: int, max_batch: int = 64) -> int:
    """Padded tokens of one log-prob pass over `pairs`, batched exactly as the engine batches
    them."""
    seqs = pair_sequences(pairs, max_length)
    lengths = [seqs.length(k) for k in range(len(seqs))]
    return sum(len(b) * max(lengths[i] for i in b)
               for b in plan_batches(lengths, token_budget, max_batch))


def pair_lengths(pairs, max_length: int | None) -> list[int]:
    """Each pair's longer sequence (prompt + the longer response), cut to max_length."""
    out = []
    for tp in pairs:
        n = len(tp.prompt_ids) + max(len(tp.chosen_ids), len(tp.rejected_ids))
        out.append(n if max_length is None else min(n, max_length))
    return out


def trl_steps(lengths: list[int], batch_size: int, epochs: float, seed: int = 0) -> list[int]:
    """Padded tokens of each training step: the pairs in a seeded random order each epoch,
    `batch_size` a step, its chosen and rejected sequences padded to the step's longest."""
    rng = np.random.default_rng(seed)
    n = len(lengths)
    total = math.ceil(math.ceil(n / batch_size) * epochs)
    lengths = np.asarray(lengths)
    out: list[int] = []
    while len(out) < total:
        order = lengths[rng.permutation(n)]
        for s in range(0, n, batch_size):
            b = order[s:s + batch_size]
            out.append(int(2 * len(b) * b.max()))
            if len(out) == total:
                break
    return out


def weights(model) -> int:
    return sum(p.numel() for p in model.parameters())


def weight_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


# ---------------------------------------------------------------------------------------------
# Probes: short timings of the real models.


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(device, fn):
    _sync(device)
    t = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - t, out


def _activation_peak(device) -> float:
    return torch.cuda.max_memory_allocated(device) / GIB if device.type == "cuda" else 0.0


def probe_engine(model, pairs, pad_id: int, max_length, token_budget: int,
                 head_chunk: int) -> float:
    """Seconds per padded token of the log-prob engine: three of its real batches (the longest, a
    middle one, the shortest) timed after a warm-up on the longest (whose shapes allocate the
    most)."""
    seqs = pair_sequences(pairs, max_length)
    lengths = [seqs.length(k) for k in range(len(seqs))]
    batches = plan_batches(lengths, token_budget, 64)
    picks = [batches[0], batches[len(batches) // 2], batches[-1]]
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    with torch.no_grad():
        batch_logps(model, [seqs[i] for i in batches[0]], pad_id, head_chunk)  # warm-up
        seconds, _ = _timed(device, lambda: [batch_logps(model, [seqs[i] for i in b], pad_id,
                                                         head_chunk)
                                             for b in picks])
    model.train(was)
    return seconds / sum(len(b) * max(lengths[i] for i in b) for b in picks)


@dataclass
class TrainingProbe:
    setup: float  # seconds to build the trainer on the probe's pairs
    per_token: float  # seconds of a step's forward and backward passes, per padded token
    update: float  # seconds of a step's optimizer update (per step, whatever its size)
    peak_gib: float  # activations and the rest, allocated on a GPU (0 on a CPU)


def probe_training(start, ref_model, tokenizer, records: list[dict], objective, settings,
                   processes: int = 1, steps: int = 4, seed: int = 0, lora=None) -> TrainingProbe:
    """A few steps of TRL's DPOTrainer at the stage's batch size per process and optimizer (LoRA
    adapters with `lora`), on a seeded sample of the stage's pairs, in a temporary folder; one
    optimizer update a step (the stage's gradient accumulation is counted by `training_stage`), the
    first step (lazy initialisation) not counted."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import DPOTrainer


    device = model_device(ref_model)
    per_step = max(1, settings.batch_size // processes)
    rng = np.random.default_rng(seed)
    # a small stage's pairs are drawn again, so that there are steps to time
    want = per_step * steps
    sample = [records[i] for i in rng.choice(len(records), size=want, replace=len(records) < want)]
    marks: dict[str, list[float]] = {"begin": [], "pre": [], "opt": [], "end": []}

    class Clock(TrainerCallback):
        def _mark(self, what):
            _sync(device)
            marks[what].append(time.perf_counter())

        def on_step_begin(self, *a, **k):
            self._mark("begin")

        def on_pre_optimizer_step(self, *a, **k):
            self._mark("pre")

        def on_optimizer_step(self, *a, **k):
            self._mark("opt")

        def on_step_end(self, *a, **k):
            self._mark("end")

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with tempfile.TemporaryDirectory(prefix="prefsift-plan-") as tmp:
        probe = dataclasses.replace(settings, batch_size=per_step, epochs=1.0,
                                    gradient_accumulation=1)
        t0 = time.perf_counter()
        model = trainable_start(start, device)
        if lora is not None:
            model = add_lora(model, lora)
        model.train()
        args = trl_config(objective, probe, Path(tmp), precision=model_precision(ref_model),
                           on_cpu=device.type == "cpu")
        args.logging_steps, args.disable_tqdm = 10**9, True
        trainer = DPOTrainer(model=model, ref_model=ref_model.eval(), args=args,
                             train_dataset=Dataset.from_list(sample),
                             processing_class=tokenizer, callbacks=[Clock()])
        setup = time.perf_counter() - t0
        try:
            trainer.train()
        finally:
            without_patched_forward(ref_model)
        del trainer, model
    counted = range(1, len(marks["end"]))  # step 0 initialises lazily
    passes = [marks["pre"][i] - marks["begin"][i] + marks["end"][i] - marks["opt"][i]
              for i in counted]
    update = float(np.median([marks["opt"][i] - marks["pre"][i] for i in counted]))
    step_tokens = _mean_step_tokens(tokenizer, sample, per_step, settings.max_length)
    return TrainingProbe(setup, float(np.median(passes)) / step_tokens, update,
                         _activation_peak(device))


def _mean_step_tokens(tokenizer, records: list[dict], per_step: int, max_length) -> float:
    kind = "conversational" if isinstance(records[0]["prompt"], list) else "standard"
    toks = tokenize_pairs(tokenizer, [r["prompt"] for r in records], [r["chosen"] for r in records],
                          [r["rejected"] for r in records], kind)
    lengths = pair_lengths(toks, max_length)
    return float(np.mean([2 * len(lengths[s:s + per_step]) * max(lengths[s:s + per_step])
                          for s in range(0, len(lengths), per_step)]))


def training_stage(name: str, probe: TrainingProbe, engine_rate: float, lengths: list[int],
                   settings, processes: int, n_weights: int, weight_bytes: int,
                   eval_tokens: int = 0, eval_steps: int | None = None, save_seconds: float = 0.0,
                   trainable: int | None = None, largest_unit: int | None = None,
                   fsdp: bool = False, lora: bool = False, reference: bool = True) -> StagePlan:
    """One TRL stage from its probe: setup, each simulated micro-batch (its share of the padded
    tokens on each process), one update per `gradient_accumulation` micro-batches, the validation
    passes every `eval_steps` optimizer steps, and the save. `trainable`: weights that train (LoRA's
    adapters), all of them by default. Memory by `planning.memory.training_bytes` (FSDP: sharded
    over the processes, with `largest_unit` gathered)."""
    micro = trl_steps(lengths, settings.batch_size, settings.epochs, settings.seed)
    tokens = sum(micro)
    updates = math.ceil(len(micro) / settings.gradient_accumulation)
    n_evals = (updates // eval_steps + 1) if eval_steps else 0
    # A validation pass runs the policy and the reference forward.
    evals = n_evals * 2 * engine_rate * eval_tokens / processes
    seconds = (probe.setup + tokens / processes * probe.per_token + updates * probe.update + evals
               + save_seconds)
    shape = Shape(n_weights, largest_unit or n_weights, trainable)
    mem = training_bytes(shape, optimizer=settings.optimizer, processes=processes, fsdp=fsdp,
                         weight_bytes=round(weight_bytes / max(n_weights, 1)), reference=reference,
                         lora=lora)
    return StagePlan(name, seconds, 8 * n_weights * tokens, mem / GIB + probe.peak_gib,
                     f"{updates} steps, {tokens:,} padded tokens; TRL probe")

"""Memory per process of a training or scoring stage, from parameter counts: the formulas of the
planner's `peak GiB` column and of docs/scale.md's tables (activations are not in them).

A training stage holds, per process:
- the policy's master weights (fp32), the trained weights' gradients (fp32) and their optimizer
  state (Adam: 8 bytes a weight);
- the frozen reference in its own precision (none under LoRA from π_ref: the reference is the
  policy with its adapters off), and under LoRA the frozen base in the reference's precision.

Under `ddp` every process holds all of it. Under `fsdp` each process holds 1/P of it and gathers one
unit whole while that unit runs: its weights in the compute precision, for the unit running and the
next one (FSDP2 prefetches one), and in backward its gradient in fp32 until the reduce-scatter. A
unit is a decoder layer, or the root (embeddings, final norm and output head), whichever is larger.
Scoring holds π_ref, θ and (LossDiff) θ_val. The IF loop adds the validation gradient and one pair's
gradient, both fp32 and sharded like the weights."""

from __future__ import annotations

from dataclasses import dataclass

import psutil
import torch

from ..core.errors import UserError
from ..runtime.sharding import decoder_layers

GIB = 2**30
OPTIMIZER_BYTES = {"sgd": 0, "adafactor": 4}  # per fp32 trained weight; Adam-like: 8


@dataclass(frozen=True)
class Shape:
    """What the formulas read of a model: its weights, its largest FSDP unit, the weights that
    train."""

    weights: int
    largest_unit: int
    trainable: int | None = None  # None: every weight (full fine-tuning)

    @classmethod
    def of(cls, model, trainable: int | None = None) -> "Shape":
        total = sum(p.numel() for p in model.parameters())
        try:
            layers = [sum(p.numel() for p in m.parameters()) for m in decoder_layers(model)]
        except UserError:  # a model FSDP cannot split: one unit, the whole model
            layers = [total]
        return cls(total, max(max(layers), total - sum(layers)), trainable)


def optimizer_bytes(name: str) -> int:
    return OPTIMIZER_BYTES.get(name, 8)


def training_bytes(shape: Shape, *, optimizer: str, processes: int = 1, fsdp: bool = False,
                   weight_bytes: int = 4, reference: bool = True, lora: bool = False) -> float:
    """Bytes per process of one training stage (activations not counted). `weight_bytes`: of the
    reference's (and under LoRA the base's) precision, 4 for fp32, 2 for bf16."""
    trained = shape.weights if shape.trainable is None else shape.trainable
    # the frozen base in the reference's precision; fp32 adapters, their gradients and state
    if lora:
        held = shape.weights * weight_bytes + trained * (4 + 4 + optimizer_bytes(optimizer))
    else:
        held = shape.weights * 4 + trained * (4 + optimizer_bytes(optimizer))
    if reference:
        held += shape.weights * weight_bytes
    if not fsdp or processes == 1:
        return float(held)
    # two units' weights, one's gradient
    gathered = 2 * shape.largest_unit * weight_bytes + shape.largest_unit * 4
    return held / processes + gathered


def scoring_bytes(shape: Shape, *, models: int, processes: int = 1, fsdp: bool = False,
                  weight_bytes: int = 4, influence: int = 0) -> float:
    """Bytes per process of scoring with `models` models resident (π_ref, θ, and θ_val for
    LossDiff); `influence`: the weights IF is taken over, whose validation gradient and one pair's
    gradient (fp32) the IF loop holds."""
    held = models * shape.weights * weight_bytes + 2 * influence * 4
    if not fsdp or processes == 1:
        return float(held)
    return (held / processes + 2 * shape.largest_unit * weight_bytes
            + (shape.largest_unit * 4 if influence else 0))


def capacity_bytes(device: str, processes: int) -> tuple[float, str]:
    """What one process may hold: its GPU's memory, or on a CPU its share of the machine's
    memory."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return (float(torch.cuda.get_device_properties(0).total_memory),
                f"one GPU's {torch.cuda.get_device_name(0)}")

    return psutil.virtual_memory().total / processes, f"1/{processes} of this machine's memory"


def check_fits(plan, shard: str, lora: bool) -> None:
    """A `UserError` before any work when a stage's predicted peak exceeds what a process has,
    naming what to change."""
    cap, what = capacity_bytes(plan.device, plan.processes)
    over = [s for s in plan.stages if s.peak_gib * GIB > cap]
    if not over:
        return
    worst = max(over, key=lambda s: s.peak_gib)
    fixes = []
    if shard != "fsdp":
        fixes.append("shard fsdp with more processes (each holds 1/N of the weights, gradients and "
                     "optimizer state)")
    else:
        fixes.append("more processes (--processes N)")
    if not lora:
        fixes.append("LoRA (`lora: {r: 16}`: no gradients or optimizer state for the base, which "
                     "stays in bf16)")
    fixes.append("dtype bf16 on a GPU")
    raise UserError(f"{plan.describe()}\n"
                    f"the plan does not fit: stage {worst.stage} needs about {worst.peak_gib:.1f} "
            f"GiB per process, more than {what} ({cap / GIB:.1f} GiB); nothing was run. Try: "
                    + "; or ".join(fixes))

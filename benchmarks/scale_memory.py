"""Memory per GPU of each stage for Llama-3.1-8B on 8 GPUs, DDP against FSDP, full fine-tuning and
LoRA: prefsift's own formulas (prefsift/planning/memory.py, the planner's) applied to the model's
published shape. Nothing is downloaded or run on a GPU: every figure here is *computed*. The
sharded part of the formulas (weights, gradients and Adam state divided by the processes) is the
part `fsdp_memory.py` measures on SmolLM2.

    python benchmarks/scale_memory.py [--gpus 8] [--gpu-gib 80]"""

from __future__ import annotations

import argparse

from prefsift.planning.memory import GIB, Shape, scoring_bytes, training_bytes

# Llama-3.1-8B (config.json): hidden 4096, 32 layers, intermediate 14336, 32 heads, 8 KV heads of
# 128, vocabulary 128,256, untied embeddings and head.
HIDDEN, LAYERS, INTER, KV, VOCAB = 4096, 32, 14336, 8 * 128, 128_256
# attention, MLP, two norms
LAYER = 2 * HIDDEN * HIDDEN + 2 * HIDDEN * KV + 3 * HIDDEN * INTER + 2 * HIDDEN
ROOT = 2 * VOCAB * HIDDEN + HIDDEN  # embeddings, output head, final norm
LORA_R = 16  # adapters on q, k, v, o
LORA = LAYERS * LORA_R * (HIDDEN + HIDDEN + HIDDEN + KV + HIDDEN + KV + HIDDEN + HIDDEN)


def rows(gpus: int) -> list[tuple[str, float, float]]:
    full = Shape(LAYERS * LAYER + ROOT, max(LAYER, ROOT))
    lora = Shape(full.weights, full.largest_unit, trainable=LORA)
    bf16 = 2
    out = []

    def add(name, fn, **kw):
        out.append((name, fn(**kw) / GIB, fn(**kw, processes=gpus, fsdp=True) / GIB))

    add("warm-up or an arm, full fine-tuning (AdamW; bf16 reference)",
        lambda **k: training_bytes(full, optimizer="adamw_torch", weight_bytes=bf16, **k))
    add("θ_val, full fine-tuning (SGD)",
        lambda **k: training_bytes(full, optimizer="sgd", weight_bytes=bf16, **k))
    add(f"warm-up, LoRA r={LORA_R} on q,k,v,o (bf16 base, no second model)",
        lambda **k: training_bytes(lora, optimizer="adamw_torch", weight_bytes=bf16, lora=True,
                                   reference=False, **k))
    add(f"an arm, LoRA r={LORA_R} (bf16 base, bf16 reference)",
        lambda **k: training_bytes(lora, optimizer="adamw_torch", weight_bytes=bf16, lora=True,
                                   **k))
    add("log-probs of π_ref and θ (bf16)",
        lambda **k: scoring_bytes(full, models=2, weight_bytes=bf16, **k))
    add("LossDiff: π_ref, θ and θ_val (bf16)",
        lambda **k: scoring_bytes(full, models=3, weight_bytes=bf16, **k))
    add("exact IF over all weights, loop route (∇L_val and one pair's gradient, fp32)",
        lambda **k: scoring_bytes(full, models=2, weight_bytes=bf16, influence=full.weights, **k))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--gpu-gib", type=float, default=80.0,
                    help="memory of one GPU (an H100: 80 GB, ~79.6 GiB usable)")
    args = ap.parse_args()
    print(f"Llama-3.1-8B: {LAYERS * LAYER + ROOT:,} weights, a decoder layer {LAYER:,}, the root "
          f"unit {ROOT:,}, LoRA adapters {LORA:,}")
    print(f"\n| stage | DDP, per GPU | FSDP over {args.gpus}, per GPU | fits {args.gpu_gib:g} GiB "
          f"(DDP / FSDP) |")
    print("|---|---|---|---|")
    for name, ddp, fsdp in rows(args.gpus):
        fits = lambda x: "yes" if x < args.gpu_gib else "**no**"  # noqa: E731
        print(f"| {name} | {ddp:.1f} GiB | {fsdp:.1f} GiB | {fits(ddp)} / {fits(fsdp)} |")


if __name__ == "__main__":
    main()

"""How the processes of a launch hold a model: `ddp` or `fsdp` (`--shard`, `shard:` in a run
config).

- ``ddp`` (the default): every process holds the whole model, and training stages run
  DistributedDataParallel. This is what prefsift has always done.
- ``fsdp``: PyTorch's FSDP2 (``torch.distributed.fsdp.fully_shard``). Each decoder layer is one
  unit whose weights are split over all the processes of the launch. A layer's weights are gathered
  for its forward (and backward), then dropped again. The embeddings, the final norm and the output
  head form the root unit.
  - Training stages shard through TRL and accelerate's own FSDP support: accelerate's FSDP plugin,
    TRL's `prepare_fsdp` for the reference. Master weights and Adam state are fp32 shards. A bf16
    stage computes in bf16 and reduces gradients in fp32 (FSDP2's MixedPrecisionPolicy).
  - Scoring shards π_ref, θ and θ_val the same way. Log-probs are forward-only. Influence is the sum
    over the shards of each process's local inner products (scoring/influence.py).

accelerate only turns on FSDP for GPU-like devices. On CPU processes (gloo) it quietly runs DDP,
even when it is handed an FSDP plugin. `fsdp_trainer` switches such a launch to accelerate's FSDP
path: the same code that runs on GPUs with NCCL, so the CPU tests exercise it.

One process has nothing to shard. There `fsdp` is the same as `ddp`, and the run says so once."""

from __future__ import annotations

import os
from dataclasses import field

import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
)
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

from ..core.errors import ConfigError, UserError
from .distributed import World, world

SHARDS = ("ddp", "fsdp")
ENV = "PREFSIFT_SHARD"  # the launch's choice, inherited by the workers `--processes N` starts


def shard_field():
    """The `shard` setting of every config that trains or scores (run, score, warmup)."""
    return field(default="ddp", metadata={
        "help": "how several processes hold each model: ddp (whole, on every process) or fsdp "
                "(FSDP2: each decoder layer split over the processes, gathered for its own forward "
                "and backward; the same as ddp in one process)", "check": SHARDS})


def set_shard(mode: str) -> None:
    """This process's sharding (and that of the workers it starts): `ddp` or `fsdp`."""
    if mode not in SHARDS:
        raise ConfigError(key="shard", problem=f"must be one of {', '.join(SHARDS)}; got {mode!r}")
    os.environ[ENV] = mode


_NOTED = False  # the one-process note is said once


def use_shard(mode: str, w: World | None = None, log=print) -> None:
    """`set_shard(mode)` at the start of a command, and the note when one process has nothing to
    shard."""
    global _NOTED
    set_shard(mode)
    w = w or world()
    if mode == "fsdp" and not w.sharded and not _NOTED:
        _NOTED = True
        log("note: shard fsdp in one process is the same as ddp: there is nothing to shard over "
            "(give --processes N or start N processes with torchrun)")


def shard_mode() -> str:
    return os.environ.get(ENV, "ddp") or "ddp"


def fsdp_on(w: World | None = None) -> bool:
    """Whether models are sharded with FSDP here: `fsdp` chosen and more than one process."""
    return shard_mode() == "fsdp" and (w or world()).sharded


def decoder_layers(model) -> list[torch.nn.Module]:
    """The model's repeated blocks, each one FSDP unit: the modules whose class is named in the
    model's `_no_split_modules` (transformers' own list of blocks never to split across devices)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    names = set(getattr(base, "_no_split_modules", None) or ())
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise UserError(f"shard fsdp: {type(base).__name__} names no decoder-layer class in "
                        "`_no_split_modules`, so prefsift cannot tell which modules to shard; use "
                        "shard ddp for this model")
    return layers


def layer_class_names(model) -> list[str]:
    return sorted({type(m).__name__ for m in decoder_layers(model)})


# ---------------------------------------------------------------------------------------------
# Training stages: accelerate's FSDP plugin through the Trainer's own arguments


def fsdp_training_args(model) -> dict:
    """The `TrainingArguments` fields that make a TRL trainer shard `model` with FSDP2: one unit per
    decoder layer. After forward, a layer's gathered weights are dropped. State dicts are gathered
    whole, so a stage saves a plain model folder."""
    # TRL checkpoints activations by default; under FSDP it is FSDP's own checkpointing (one
    # all-gather fewer in backward than the model's), the same recomputation.
    return {"fsdp": True, "activation_checkpointing": False,
            "fsdp_config": {"version": 2, "transformer_layer_cls_to_wrap": layer_class_names(model),
                            "reshard_after_forward": True, "state_dict_type": "FULL_STATE_DICT",
                            "activation_checkpointing": True}}


def fsdp_trainer(trainer_class):
    """`trainer_class` (a transformers Trainer, such as TRL's DPOTrainer) sharded with accelerate's
    FSDP plugin, on CPU processes too. Under half precision, it computes in bf16/fp16 and reduces
    gradients in fp32."""

    class Sharded(trainer_class):
        def create_accelerator_and_postprocess(self):
            super().create_accelerator_and_postprocess()
            from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

            state = self.accelerator.state
            if state.distributed_type == DistributedType.MULTI_CPU:
                # accelerate keeps CPU processes on DDP whatever the plugin says; here its FSDP path
                # takes them, as it takes GPU processes.
                state.distributed_type = DistributedType.FSDP
                state.fsdp_plugin = FullyShardedDataParallelPlugin(**self.args.fsdp_plugin_args)
                self.is_fsdp_enabled = True
            if not self.is_fsdp_enabled:
                raise RuntimeError("shard fsdp: accelerate did not enable FSDP for this launch")
            half = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(state.mixed_precision)
            if half is not None:
                # Compute in half precision, reduce gradients in fp32. accelerate's default would
                # reduce in half precision too.
                state.fsdp_plugin.mixed_precision_policy = MixedPrecisionPolicy(
                    param_dtype=half, reduce_dtype=torch.float32, output_dtype=half)

    Sharded.__name__ = Sharded.__qualname__ = f"FSDP{trainer_class.__name__}"
    return Sharded


def gathered_state_dict(model) -> dict:
    """The whole state dict of an FSDP-sharded model, on the CPU, on rank 0 ({} on the other ranks).
    Every rank must call it: it is a collective."""
    return get_model_state_dict(model,
                                options=StateDictOptions(full_state_dict=True, cpu_offload=True))


# ---------------------------------------------------------------------------------------------
# Scoring: forward-only (log-probs) and per-pair backward (influence) on sharded models


def shard_for_scoring(model):
    """`model` sharded in place with `fully_shard` over all the processes: one unit per decoder
    layer, plus the root (embeddings, final norm, output head). Between forwards, every weight is a
    shard (the root too: it reshards after forward), so `named_parameters` always names the shards
    that a backward fills with this process's part of a gradient. Returns `model`."""
    if is_sharded(model):
        return model
    for layer in decoder_layers(model):
        fully_shard(layer)
    fully_shard(model, reshard_after_forward=True)
    return model


def is_sharded(model) -> bool:
    return isinstance(model, FSDPModule)


def local_part(t: torch.Tensor) -> torch.Tensor:
    """This process's shard of a DTensor (a plain tensor is all this process's)."""
    return t.to_local() if hasattr(t, "to_local") else t

"""A training stage as an object: where it starts, what it trains on, with which settings, and
where it is saved; `TrainingStage.run()` reuses a saved stage with the same key or trains it through
TRL's DPOTrainer, CPU-safe, under DDP or FSDP, and saves it.

A stage takes a policy, a frozen reference and pairs, trains for a number of epochs, and saves the
result to its own folder with a `stage.json` that fingerprints what produced it; a rerun with the
same inputs loads the folder instead of training again."""

from __future__ import annotations

import copy
import time
import types
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from ..core import artifacts, faults
from ..models.loading import add_lora, load_model, load_pretrained
from ..models.objectives import PairwiseObjective
from ..runtime.devices import model_device, model_precision, torch_dtype
from ..runtime.distributed import barrier, broadcast_object, world
from ..runtime.sharding import (
    fsdp_on,
    fsdp_trainer,
    fsdp_training_args,
    gathered_state_dict,
    is_sharded,
    local_part,
)
from .dpo import LossVariant, StageSettings, trl_config
from .stage_folder import reusable_or_copied, save_stage
from .weighted import WEIGHT, weighted_dpo_trainer_class


@dataclass
class TrainingStage:
    """Train `policy` further on `records` (dicts with prompt/chosen/rejected) and save the result.

    `policy` is where the stage starts: a model folder (or spec), loaded fresh for the stage, or a
    model in memory, which is copied (fine for small models; a big model should start from its
    folder). `ref_model` is used as it is, frozen and shared, never copied; with `lora` and
    `start_is_reference` (the warm-up: π_ref + fresh adapters) there is no second model at all, TRL
    takes the reference as the policy with its adapters disabled.

    `start_key` and `data_key` fingerprint the starting weights and the data; with the settings and
    objective they decide whether a saved stage can be reused. `lora` (a `LoraSettings`) trains
    fresh LoRA adapters instead of all the weights; the stage is saved merged either way. The stage
    runs on the reference's device; in the reference's precision, a bf16/fp16 one training fp32
    master weights under autocast. The model is handed back in that precision, or in fp32 with
    `hand_back_fp32` (θ_val: its small step from θ would be rounded away in bf16). While it trains
    it shows one progress bar named `label` (default: `name`; none with `progress=False`) and writes
    the trainer's log to `out_dir`/train_log.jsonl (train.progress). Records that carry a
    `pair_weight` train with a weight per pair, and ``variant`` changes the loss (robust or
    conservative DPO); both through train/weighted.py's extension of DPOTrainer where TRL has no
    such option. ``same_as``: another stage folder that may hold this very stage (same key: same
    start, data, settings and name); when it does, it is copied instead of trained.

    Under `shard fsdp` with several processes (runtime/sharding.py) the trainer shards the policy
    and the reference with FSDP2. The reference it shards is its own copy, so the caller's reference
    stays whole. The trained weights are gathered whole on rank 0, saved, and loaded back on every
    rank. Under LoRA with a bf16/fp16 reference, the frozen base stays in that precision. The
    adapters and their optimizer state are fp32, and the adapters are merged into the fp32 base
    when the stage is saved. `run()` returns (model, stage_info)."""

    # where it starts, and against what
    policy: object
    ref_model: object
    tokenizer: object
    # what it trains on, and how
    records: list
    objective: PairwiseObjective
    settings: StageSettings
    # where it is saved, and what its key is made of
    out_dir: str | Path
    start_key: str
    data_key: str
    name: str = "stage"
    # validation during training
    eval_records: list | None = None
    eval_steps: int | None = None
    # how it trains and hands back
    lora: object = None
    log: Callable = print
    hand_back_fp32: bool = False
    start_is_reference: bool = False
    label: str | None = None
    progress: bool = True
    variant: LossVariant | None = None
    same_as: str | Path | None = None

    def __post_init__(self):
        self.out_dir = Path(self.out_dir)

    def key(self) -> str:
        """What decides whether a saved stage can be reused: start, data, settings, objective,
        name."""
        # (a variant enters the key only when there is one, so the keys of plain stages stay as they
        # were)
        return artifacts.stable_key({
            "start": self.start_key, "data": self.data_key, "settings": asdict(self.settings),
            "objective": asdict(self.objective), "name": self.name, "eval_steps": self.eval_steps,
            "n_eval": len(self.eval_records or []),
            "lora": asdict(self.lora) if self.lora else None,
            **({"variant": asdict(self.variant)} if self.variant else {})})

    def run(self):
        """(model, stage info): the saved stage when it is reusable, else trained and saved now."""
        # under torchrun/accelerate every process runs the stage (DDP)
        key, here = self.key(), world()
        # Rank 0 decides whether the saved stage is reusable, for all the ranks.
        found = (reusable_or_copied(self.out_dir, key, self.name, self.log, self.same_as)
                 if here.is_main else None)
        info = broadcast_object(found, here)
        place = _Placement.of(self)
        if place.device.type == "cuda" and place.device.index is not None:
            # the Trainer places the model on the current CUDA device
            torch.cuda.set_device(place.device)
        if info is not None:
            return place.hand_back(self._saved_model()), info
        if here.is_main:
            # from here on, the folder is not a finished stage
            (self.out_dir / "stage.json").unlink(missing_ok=True)
        t0 = time.time()
        fsdp = fsdp_on(here)
        model, trainer, result = self._train(place, fsdp, here)
        # this rank's shards
        held = sum(local_part(p).numel() for p in model.parameters()) if fsdp else None
        to_save = self._to_save(model, place, fsdp, here)
        info = self._info(key, time.time() - t0, result, trainer, here, held)
        del trainer
        if here.is_main:  # the ranks hold the same weights (DDP); one writes them
            save_stage(to_save, self.tokenizer, self.out_dir, info, self.name)
        barrier(here)  # no rank goes on (or reads the folder) before it is written
        if fsdp:  # every rank takes back the whole model rank 0 saved
            del model
            return place.hand_back(self._saved_model()), info
        # A LoRA stage hands back the merged model, exactly what it saved and what a reused stage
        # loads.
        return place.hand_back(without_patched_forward(to_save)), info

    def _saved_model(self):
        from transformers import AutoModelForCausalLM  # (heavy)

        return load_pretrained(AutoModelForCausalLM, self.out_dir / "model", dtype=torch.float32)

    def _start(self, place: "_Placement", fsdp: bool):
        """The stage's own trainable copy of its start (with fresh adapters under LoRA)."""
        # Under FSDP the start is loaded in host memory: accelerate moves only each process's shards
        # to its device. Under LoRA the frozen base stays in the reference's half precision.
        model = trainable_start(self.policy, torch.device("cpu") if fsdp else place.device,
                                 place.precision if place.half_base else "fp32")
        if self.lora is not None:
            # Fresh adapters drawn from the stage's seed: the same stage gives the same θ in every
            # run and on every rank (the global generator's state would differ).
            with torch.random.fork_rng(devices=[place.device] if place.device.type == "cuda"
                                       else []):
                torch.manual_seed(self.settings.seed)
                model = add_lora(model, self.lora)
        model.train()
        return model

    def _trainer(self, model, place: "_Placement", fsdp: bool, here):
        """TRL's DPOTrainer (or its weighted extension, under FSDP wrapped) over the stage's
        pairs."""
        from datasets import Dataset  # (heavy: datasets, TRL)
        from trl import DPOTrainer

        from .progress import attach as attach_progress

        args = trl_config(self.objective, self.settings, self.out_dir,
                          self.eval_steps if self.eval_records else None, precision=place.precision,
                          on_cpu=place.device.type == "cpu", processes=here.size,
                          variant=self.variant,
                          sharding=fsdp_training_args(model) if fsdp else None)
        shared_ref = (None if self.lora is not None and self.start_is_reference
                      else self.ref_model.eval())
        if fsdp and shared_ref is not None and not is_sharded(shared_ref):
            shared_ref = _host_copy(without_patched_forward(shared_ref))  # TRL shards it in place
        trainer_class, extra = DPOTrainer, {}
        # (plain stages: TRL's own)
        if self.variant is not None or any(WEIGHT in r for r in self.records):
            trainer_class = weighted_dpo_trainer_class()
            extra = {"conservative": self.variant.epsilon
                     if self.variant and self.variant.conservative else 0.0,
                     "eval_loss_type": self.objective.kind.trl_loss}
        if fsdp:
            trainer_class = fsdp_trainer(trainer_class)
        trainer = trainer_class(model=model, ref_model=shared_ref, args=args, **extra,
                                train_dataset=Dataset.from_list(self.records),
                                processing_class=self.tokenizer,
                                eval_dataset=Dataset.from_list(self.eval_records)
                                if self.eval_records else None,
                                callbacks=[fault_point_callback(f"train:{self.name}")])
        attach_progress(trainer, self.label or self.name, self.out_dir, show=self.progress)
        return trainer

    def _train(self, place: "_Placement", fsdp: bool, here):
        """(trained model, its trainer, TRL's train result)."""
        model = self._start(place, fsdp)
        trainer = None
        try:
            trainer = self._trainer(model, place, fsdp, here)
            result = trainer.train()
        finally:
            # The trainer may wrap the reference's forward (autocast); the caller gets it back as it
            # was.
            without_patched_forward(self.ref_model)
        model = trainer.model
        model.eval()
        return model, trainer, result

    def _to_save(self, model, place: "_Placement", fsdp: bool, here):
        """The whole model to save (on rank 0): gathered, rebuilt in fp32, or merged."""
        if fsdp or place.half_base:
            # The trained weights (all, or the adapters) put back into a whole fp32 copy of the
            # start: a sharded model is gathered, and adapters merge into the fp32 base, not a
            # rounded one.
            trained = gathered_state_dict(model) if fsdp else model.state_dict()
            return _rebuilt(self.policy, trained, self.lora) if here.is_main else None
        # LoRA stages are saved merged (in place: the adapters are not needed again), so every stage
        # folder is a plain model any tool can load.
        return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model

    def _info(self, key: str, seconds: float, result, trainer, here, held) -> dict:
        """stage.json: the key, the time, TRL's losses and log, and how it was trained."""
        weighted = any(WEIGHT in r for r in self.records)
        return {"key": key, "name": self.name, "seconds": seconds,
                "train_loss": result.training_loss, "steps": result.global_step,
                "settings": asdict(self.settings), "objective": asdict(self.objective),
                "log": trainer.state.log_history, "processes": here.size,
                **({"shard": "fsdp", "weights_held_by_rank0": held} if held is not None else {}),
                **({"variant": asdict(self.variant)} if self.variant else {}),
                **({"weighted_pairs": sum(1 for r in self.records if r.get(WEIGHT, 0) > 0)}
                   if weighted else {})}


@dataclass(frozen=True)
class _Placement:
    """Where a stage runs and in which precision: the reference's device, and the precision of its
    start (of the reference when it starts from a folder); it is saved in fp32."""

    device: torch.device
    precision: str
    # LoRA over a bf16/fp16 base: fp32 adapters, the frozen base kept in half precision
    half_base: bool
    hand_back_fp32: bool

    @classmethod
    def of(cls, stage: TrainingStage) -> "_Placement":
        start = stage.ref_model if isinstance(stage.policy, (str, Path)) else stage.policy
        precision = model_precision(start)
        return cls(model_device(stage.ref_model), precision,
                   stage.lora is not None and precision != "fp32", stage.hand_back_fp32)

    def hand_back(self, model):
        model = model.to(self.device)
        return (model if self.precision == "fp32" or self.hand_back_fp32
                else model.to(torch_dtype(self.precision)))


def trainable_start(policy, device, precision: str = "fp32"):
    """The stage's own copy of its starting weights, fp32 unless `precision` says otherwise:
    loaded from the folder, or (a model in memory) copied and cast."""
    if isinstance(policy, (str, Path)):
        return load_model(policy, dtype="float32" if precision == "fp32" else precision,
                          device=device)
    model = without_patched_forward(copy.deepcopy(policy))
    if precision != "fp32":
        return model.to(torch_dtype(precision))
    # (fp64 test models stay fp64)
    return model.float() if model_precision(model) != "fp32" else model


def _host_copy(model):
    """A copy of `model` in host memory, made without a second copy on its device (FSDP shards
    it)."""
    if model_device(model).type == "cpu":
        return copy.deepcopy(model)
    with torch.device("meta"):
        twin = type(model)(model.config)
    twin.load_state_dict({k: v.to("cpu") for k, v in model.state_dict().items()}, assign=True)
    twin.tie_weights()
    return twin.eval()


def _rebuilt(policy, trained: dict, lora):
    """A whole fp32 model on the CPU: the stage's start, with the `trained` state dict loaded over
    it. Under LoRA only the adapters are taken, and they are then merged."""
    model = trainable_start(policy, torch.device("cpu"))
    if lora is None:
        model.load_state_dict(trained)
        return model
    model = add_lora(model, lora)
    adapters = {k: v for k, v in trained.items() if "lora_" in k}
    missing = [k for k in model.state_dict() if "lora_" in k and k not in adapters]
    if missing or not adapters:
        raise RuntimeError(f"the trained adapters do not match the stage's LoRA settings (missing "
                           f"{missing[:3]})")
    model.load_state_dict(adapters, strict=False)
    return model.merge_and_unload()


def fault_point_callback(name: str):
    """A TrainerCallback with a named kill point at the end of every optimizer step (faults.py)."""
    from transformers import TrainerCallback

    class FaultPoint(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            faults.point(name)

    return FaultPoint()


def without_patched_forward(model):
    """Remove the instance-level `forward` wrappers that the trainer leaves on a model.

    TRL and accelerate patch ``model.forward`` with closures over the original bound method; a deep
    copy of such a model (the next stage's starting point) keeps calling the *original* object's
    forward, so it silently runs the old weights. The class's own forward is what we want."""
    for module in model.modules():
        patched = module.__dict__.get("forward")
        # accelerate's device-placement hooks (`_hf_hook`) also live there and must stay.
        if isinstance(patched, types.MethodType) and not hasattr(module, "_hf_hook"):
            del module.__dict__["forward"]
    return model

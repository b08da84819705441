"""Training stages through TRL's DPOTrainer (DPO, IPO, hinge/SLiC), CPU-safe and resumable.

A stage takes a policy, a frozen reference and pairs, trains for a number of epochs, and saves the
result to its own folder with a `stage.json` that fingerprints what produced it; a rerun with the
same inputs loads the folder instead of training again."""

from __future__ import annotations

import copy
import json
import time
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..core import artifacts, faults
from ..runtime.devices import model_device, model_precision, torch_dtype
from ..runtime.distributed import barrier, broadcast_object, world
from ..models.objectives import PairwiseObjective, trainable_with_dpo
from ..runtime.sharding import fsdp_on, fsdp_trainer, fsdp_training_args, gathered_state_dict, is_sharded, local_part
from .weighted import WEIGHT

# Optimizer names checked without importing transformers (slow); any other name is looked up there.
_COMMON_OPTIMIZERS = ("adamw_torch", "adamw_torch_fused", "adamw_hf", "adafactor", "sgd", "adagrad", "rmsprop",
                      "adamw_8bit", "paged_adamw_8bit", "lion_32bit", "adamw_apex_fused")


def optimizer_problem(name: str) -> str | None:
    if name in _COMMON_OPTIMIZERS:
        return None
    from transformers.training_args import OptimizerNames

    known = [o.value for o in OptimizerNames]
    if name in known:
        return None
    from ..core.errors import did_you_mean

    hint = did_you_mean(name, _COMMON_OPTIMIZERS) or did_you_mean(name, known)
    return (f"is not a transformers optimizer{hint}: got {name!r}; "
            f"common ones: adamw_torch, sgd, adafactor")


@dataclass(frozen=True)
class StageSettings:
    """One training stage's settings (the `warmup` and `final` sections of a run config)."""

    epochs: float = field(default=1.0, metadata={"help": "epochs over the stage's pairs", "check": "> 0"})
    learning_rate: float = field(default=1e-4, metadata={"help": "peak learning rate", "check": "> 0"})
    batch_size: int = field(default=8, metadata={"help": "pairs per step, over all processes (each takes an equal share)",
                                                 "check": ">= 1"})
    gradient_accumulation: int = field(default=1, metadata={"help": "steps per optimizer step", "check": ">= 1"})
    max_length: int | None = field(default=1024, metadata={"help": "max tokens of prompt+response (TRL's max_length)",
                                                           "check": ">= 1"})
    seed: int = field(default=0, metadata={"help": "seed of the data order and of dropout"})
    warmup_ratio: float = field(default=0.0, metadata={"help": "share of the steps spent warming the learning rate up",
                                                       "check": "[0, 1)"})
    weight_decay: float = field(default=0.0, metadata={"help": "weight decay", "check": ">= 0"})
    # any transformers optim name; "sgd" gives LossDiff ∝ IF exactly to first order
    optimizer: str = field(default="adamw_torch", metadata={"help": "a transformers optimizer name (adamw_torch, sgd, ...)",
                                                            "check": optimizer_problem})
    # > 0 adds TRL's "sft" loss on the chosen responses (RPO-style), weighted
    sft_weight: float = field(default=0.0, metadata={"help": "weight of TRL's sft loss on the chosen responses",
                                                     "check": ">= 0"})

    def __post_init__(self):
        from ..core.checks import check_fields

        check_fields(self)


def per_process_batch(batch_size: int, processes: int, key: str = "batch_size") -> int:
    """Pairs per process and step, so that a step sees `batch_size` pairs however many processes
    share it (the results then do not depend on the number of processes, up to reduction order)."""
    if batch_size % processes:
        from ..core.errors import ConfigError

        lower = batch_size // processes * processes
        raise ConfigError(key=key, problem=f"is {batch_size}, which {processes} processes cannot share evenly; use a "
                                           f"multiple of {processes} (e.g. {lower or processes} or {lower + processes})")
    return batch_size // processes


@dataclass(frozen=True)
class LossVariant:
    """How an arm's training departs from the run's objective (prefsift.selection.treatments): TRL's robust
    DPO (``loss_type="robust"``, flip rate ``epsilon``), conservative DPO (``conservative``: the
    label is wrong with probability ``epsilon``, train/weighted.py), or the pairs in the order
    given (``in_order``: Selective DPO's easy-to-hard curriculum)."""

    loss_type: str | None = None
    epsilon: float = 0.0
    conservative: bool = False
    in_order: bool = False  # the pairs in the order given (a curriculum), not shuffled


def _trl_config(objective: PairwiseObjective, s: StageSettings, out_dir: Path, eval_steps: int | None = None,
                precision: str = "fp32", on_cpu: bool = True, processes: int = 1, variant: LossVariant | None = None,
                sharding: dict | None = None):
    from trl import DPOConfig

    if objective.kind.trl_loss is None:
        raise ValueError(f"objective {objective.name!r} cannot be trained with DPOTrainer; use one of "
                         f"{sorted(trainable_with_dpo())}")
    loss = variant.loss_type if variant and variant.loss_type else objective.kind.trl_loss
    return DPOConfig(
        output_dir=str(out_dir / "trainer"), beta=objective.beta,
        label_smoothing=variant.epsilon if variant and variant.loss_type == "robust" else 0.0,
        loss_type=[loss] + (["sft"] if s.sft_weight > 0 else []),
        loss_weights=[1.0, s.sft_weight] if s.sft_weight > 0 else None,
        learning_rate=s.learning_rate, num_train_epochs=s.epochs,
        per_device_train_batch_size=per_process_batch(s.batch_size, processes),
        gradient_accumulation_steps=s.gradient_accumulation, max_length=s.max_length, seed=s.seed,
        data_seed=s.seed, warmup_steps=s.warmup_ratio, weight_decay=s.weight_decay, optim=s.optimizer,
        lr_scheduler_type="constant" if s.warmup_ratio == 0 else "linear",
        # TRL defaults to bf16; here it follows the model's precision: fp32 weights train in fp32, and a
        # bf16/fp16 model trains fp32 master weights under autocast (see train_stage).
        bf16=precision == "bf16", fp16=precision == "fp16", use_cpu=on_cpu,
        save_strategy="no", report_to=[], logging_steps=10, disable_tqdm=False, dataset_num_proc=None,
        remove_unused_columns=True,
        eval_strategy="steps" if eval_steps else "no", eval_steps=eval_steps, per_device_eval_batch_size=32,
        train_sampling_strategy="sequential" if variant and variant.in_order else "random",
        # FSDP's fields (sharding.fsdp_training_args), or none: DDP. The step-0 validation is the
        # trainer's own (eval_on_start), inside train(): FSDP2 prepares the model with its optimizer
        # there, and a separate evaluate() before train() made DDP + LoRA drift from one process.
        **(sharding or {}), eval_on_start=bool(eval_steps),
    )


def train_stage(policy, ref_model, tokenizer, records: list[dict], objective: PairwiseObjective,
                settings: StageSettings, out_dir: str | Path, start_key: str, data_key: str, name: str = "stage",
                eval_records: list[dict] | None = None, eval_steps: int | None = None, lora=None, log=print,
                hand_back_fp32: bool = False, start_is_reference: bool = False, label: str | None = None,
                progress: bool = True, variant: LossVariant | None = None, same_as: str | Path | None = None):
    """Train `policy` further on `records` (dicts with prompt/chosen/rejected) and save the result.

    `policy` is where the stage starts: a model folder (or spec), loaded fresh for the stage, or a
    model in memory, which is copied (fine for small models; a big model should start from its
    folder). `ref_model` is used as it is, frozen and shared, never copied; with `lora` and
    `start_is_reference` (the warm-up: π_ref + fresh adapters) there is no second model at all, TRL
    takes the reference as the policy with its adapters disabled.

    `start_key` and `data_key` fingerprint the starting weights and the data; with the settings and
    objective they decide whether a saved stage can be reused. `lora` (a `models.LoraSettings`) trains
    fresh LoRA adapters instead of all the weights; the stage is saved merged either way. The stage
    runs on the reference's device; in the reference's precision, a bf16/fp16 one training fp32
    master weights under autocast. The model is handed back in that precision, or in fp32 with
    `hand_back_fp32` (θ_val: its small step from θ would be rounded away in bf16). While it trains it
    shows one progress bar named `label` (default: `name`; none with `progress=False`) and writes the
    trainer's log to `out_dir`/train_log.jsonl (train.progress). Records that carry a
    `pair_weight` train with a weight per pair, and ``variant`` changes the loss (robust or
    conservative DPO); both through train/weighted.py's extension of DPOTrainer where TRL has no
    such option. ``same_as``: another stage folder that may hold this very stage (same key: same
    start, data, settings and name); when it does, it is copied instead of trained.

    Under `shard fsdp` with several processes (sharding.py) the trainer shards the policy and the
    reference with FSDP2. The reference it shards is its own copy, so the caller's reference stays
    whole. The trained weights are gathered whole on rank 0, saved, and loaded back on every rank.
    Under LoRA with a bf16/fp16 reference, the frozen base stays in that precision. The adapters and
    their optimizer state are fp32, and the adapters are merged into the fp32 base when the stage is
    saved. Returns (model, stage_info)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import DPOTrainer

    from .progress import attach as attach_progress

    out_dir = Path(out_dir)
    # (a variant enters the key only when there is one, so the keys of plain stages stay as they were)
    key = artifacts.stable_key({"start": start_key, "data": data_key, "settings": asdict(settings),
                        "objective": asdict(objective), "name": name, "eval_steps": eval_steps,
                        "n_eval": len(eval_records or []), "lora": asdict(lora) if lora else None,
                        **({"variant": asdict(variant)} if variant else {})})
    info_path = out_dir / "stage.json"
    here = world()  # under torchrun/accelerate every process runs this stage: DDP, one share of each batch each
    # Rank 0 decides whether the saved stage is reusable, for all the ranks.
    info = broadcast_object(_reusable_or_copied(out_dir, key, name, log, same_as) if here.is_main else None, here)
    # A stage runs where the reference is, in the precision of its start (of the reference when it
    # starts from a folder); it is saved in fp32.
    device = model_device(ref_model)
    precision = model_precision(ref_model if isinstance(policy, (str, Path)) else policy)
    def as_given(m):
        m = m.to(device)
        return m if precision == "fp32" or hand_back_fp32 else m.to(torch_dtype(precision))

    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)  # the Trainer places the model on the current CUDA device
    if info is not None:
        from ..models.loading import load_pretrained

        return as_given(load_pretrained(AutoModelForCausalLM, out_dir / "model", dtype=torch.float32)), info
    if here.is_main:
        info_path.unlink(missing_ok=True)  # from here on, the folder is not a finished stage
    t0 = time.time()
    # fp32 master weights, a half precision under autocast; under LoRA the frozen base stays in the
    # reference's half precision (peft keeps the adapters in fp32).
    half_base = lora is not None and precision != "fp32"
    fsdp = fsdp_on(here)
    # Under FSDP the start is loaded in host memory: accelerate moves only each process's shards to
    # its device.
    model = _trainable_start(policy, torch.device("cpu") if fsdp else device, precision if half_base else "fp32")
    if lora is not None:
        from ..models.loading import add_lora

        # Fresh adapters drawn from the stage's seed: the same stage gives the same θ in every run
        # and on every rank (the global generator's state would differ).
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(settings.seed)
            model = add_lora(model, lora)
    model.train()
    args = _trl_config(objective, settings, out_dir, eval_steps if eval_records else None, precision=precision,
                       on_cpu=device.type == "cpu", processes=here.size, variant=variant,
                       sharding=fsdp_training_args(model) if fsdp else None)
    shared_ref = None if lora is not None and start_is_reference else ref_model.eval()
    if fsdp and shared_ref is not None and not is_sharded(shared_ref):
        shared_ref = _host_copy(_without_patched_forward(shared_ref))  # TRL shards it in place
    trainer_class, extra = DPOTrainer, {}
    if variant is not None or any(WEIGHT in r for r in records):  # (plain stages: TRL's own trainer)
        from .weighted import weighted_dpo_trainer_class

        trainer_class = weighted_dpo_trainer_class()
        extra = {"conservative": variant.epsilon if variant and variant.conservative else 0.0,
                 "eval_loss_type": objective.kind.trl_loss}
    if fsdp:
        trainer_class = fsdp_trainer(trainer_class)
    try:
        trainer = trainer_class(model=model, ref_model=shared_ref, args=args, **extra,
                             train_dataset=Dataset.from_list(records), processing_class=tokenizer,
                             eval_dataset=Dataset.from_list(eval_records) if eval_records else None,
                             callbacks=[_fault_point_callback(f"train:{name}")])
        attach_progress(trainer, label or name, out_dir, show=progress)
        result = trainer.train()
    finally:
        # The trainer may wrap the reference's forward (autocast); the caller gets it back as it was.
        _without_patched_forward(ref_model)
    model = trainer.model
    model.eval()
    held = sum(local_part(p).numel() for p in model.parameters()) if fsdp else None  # this rank's shards
    if fsdp or half_base:
        # The trained weights (all, or the adapters) put back into a whole fp32 copy of the start:
        # a sharded model is gathered, and adapters merge into the fp32 base, not a rounded one.
        trained = gathered_state_dict(model) if fsdp else model.state_dict()
        to_save = _rebuilt(policy, trained, lora) if here.is_main else None
    else:
        # LoRA stages are saved merged (in place: the adapters are not needed again), so every stage
        # folder is a plain model any tool can load.
        to_save = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    info = {"key": key, "name": name, "seconds": time.time() - t0, "train_loss": result.training_loss,
            "steps": result.global_step, "settings": asdict(settings), "objective": asdict(objective),
            "log": trainer.state.log_history, "processes": here.size,
            **({"shard": "fsdp", "weights_held_by_rank0": held} if fsdp else {}),
            **({"variant": asdict(variant)} if variant else {}),
            **({"weighted_pairs": sum(1 for r in records if r.get(WEIGHT, 0) > 0)}
               if any(WEIGHT in r for r in records) else {})}
    del trainer
    if here.is_main:  # the ranks hold the same weights (DDP); one writes them
        _save_stage(to_save, tokenizer, out_dir, info, name)
    barrier(here)  # no rank goes on (or reads the folder) before it is written
    if fsdp:  # every rank takes back the whole model rank 0 saved
        from ..models.loading import load_pretrained

        del model
        return as_given(load_pretrained(AutoModelForCausalLM, out_dir / "model", dtype=torch.float32)), info
    # A LoRA stage hands back the merged model, exactly what it saved and what a reused stage loads.
    return as_given(_without_patched_forward(to_save)), info


def _trainable_start(policy, device, precision: str = "fp32"):
    """The stage's own copy of its starting weights, fp32 unless `precision` says otherwise:
    loaded from the folder, or (a model in memory) copied and cast."""
    if isinstance(policy, (str, Path)):
        from ..models.loading import load_model

        return load_model(policy, dtype="float32" if precision == "fp32" else precision, device=device)
    model = _without_patched_forward(copy.deepcopy(policy))
    if precision != "fp32":
        return model.to(torch_dtype(precision))
    return model.float() if model_precision(model) != "fp32" else model  # (fp64 test models stay fp64)


def _host_copy(model):
    """A copy of `model` in host memory, made without a second copy on its device (FSDP shards it)."""
    if model_device(model).type == "cpu":
        return copy.deepcopy(model)
    with torch.device("meta"):
        twin = type(model)(model.config)
    twin.load_state_dict({k: v.to("cpu") for k, v in model.state_dict().items()}, assign=True)
    twin.tie_weights()
    return twin.eval()


def _rebuilt(policy, trained: dict, lora):
    """A whole fp32 model on the CPU: the stage's start, with the `trained` state dict loaded over it.
    Under LoRA only the adapters are taken, and they are then merged."""
    model = _trainable_start(policy, torch.device("cpu"))
    if lora is None:
        model.load_state_dict(trained)
        return model
    from ..models.loading import add_lora

    model = add_lora(model, lora)
    adapters = {k: v for k, v in trained.items() if "lora_" in k}
    missing = [k for k in model.state_dict() if "lora_" in k and k not in adapters]
    if missing or not adapters:
        raise RuntimeError(f"the trained adapters do not match the stage's LoRA settings (missing {missing[:3]})")
    model.load_state_dict(adapters, strict=False)
    return model.merge_and_unload()


def _save_stage(model, tokenizer, out_dir: Path, info: dict, name: str) -> None:
    """The stage's model folder, then its stage.json (whose `files` entry is the folder's seal)."""
    import shutil

    tmp = out_dir / "model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)  # left by a killed save
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    info["files"] = artifacts.folder_digest(tmp)  # checked before any reuse
    final = out_dir / "model"
    shutil.rmtree(final, ignore_errors=True)
    faults.point(f"save:{name}")
    tmp.replace(final)
    artifacts.write_json(out_dir / "stage.json", info, seal=False)


def _reusable_or_copied(out_dir: Path, key: str, name: str, log, same_as) -> dict | None:
    """The finished stage in `out_dir`, or one with the same key in `same_as` copied there, else None."""
    info = _reusable_stage(out_dir, key, name, log)
    if info is None and same_as is not None and _reusable_stage(Path(same_as), key, name, log) is not None:
        import shutil

        shutil.rmtree(out_dir, ignore_errors=True)
        shutil.copytree(same_as, out_dir, ignore=shutil.ignore_patterns("eval.json*"))  # the training only
        log(f"  {name}: the same training as {same_as}, copied")
        info = _reusable_stage(out_dir, key, name, log)
    return info


def _reusable_stage(out_dir: Path, key: str, name: str, log) -> dict | None:
    """The stage.json of a finished stage with this key whose model folder is intact, else None.
    A stage that exists but cannot be trusted is reported in one line (it is trained again)."""
    info_path = out_dir / "stage.json"
    if not info_path.exists():
        return None
    try:
        info = json.loads(info_path.read_text())
        if not isinstance(info, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        log(f"note: training stage {name} again: {info_path} is unreadable ({e})")
        return None
    if info.get("key") != key:
        return None  # other settings or inputs: a different stage, not a damaged one
    problem = artifacts.verify_folder(out_dir / "model", info.get("files"))
    if problem:
        log(f"note: training stage {name} again: its model folder {out_dir / 'model'} cannot be trusted, {problem}")
        return None
    return info


def _fault_point_callback(name: str):
    """A TrainerCallback with a named kill point at the end of every optimizer step (faults.py)."""
    from transformers import TrainerCallback

    class FaultPoint(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            faults.point(name)

    return FaultPoint()


def _without_patched_forward(model):
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

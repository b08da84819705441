"""Training stages through TRL's DPOTrainer (DPO, IPO, hinge/SLiC), CPU-safe and resumable.

A stage takes a policy, a frozen reference and pairs, trains for a number of epochs, and saves the
result to its own folder with a `stage.json` that fingerprints what produced it; a rerun with the
same inputs loads the folder instead of training again."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..core.checks import check_fields
from ..core.errors import ConfigError, did_you_mean
from ..models.objectives import PairwiseObjective, trainable_with_dpo

# Optimizer names checked without importing transformers (slow); any other name is looked up there.
_COMMON_OPTIMIZERS = ("adamw_torch", "adamw_torch_fused", "adamw_hf", "adafactor", "sgd", "adagrad",
                      "rmsprop", "adamw_8bit", "paged_adamw_8bit", "lion_32bit", "adamw_apex_fused")


def optimizer_problem(name: str) -> str | None:
    if name in _COMMON_OPTIMIZERS:
        return None
    from transformers.training_args import OptimizerNames

    known = [o.value for o in OptimizerNames]
    if name in known:
        return None

    hint = did_you_mean(name, _COMMON_OPTIMIZERS) or did_you_mean(name, known)
    return (f"is not a transformers optimizer{hint}: got {name!r}; "
            f"common ones: adamw_torch, sgd, adafactor")


@dataclass(frozen=True)
class StageSettings:
    """One training stage's settings (the `warmup` and `final` sections of a run config)."""

    epochs: float = field(default=1.0,
                          metadata={"help": "epochs over the stage's pairs", "check": "> 0"})
    learning_rate: float = field(default=1e-4,
                                 metadata={"help": "peak learning rate", "check": "> 0"})
    batch_size: int = field(default=8, metadata={"help": "pairs per step, over all processes (each "
                                                         "takes an equal share)",
                                                 "check": ">= 1"})
    gradient_accumulation: int = field(default=1, metadata={"help": "steps per optimizer step",
                                                            "check": ">= 1"})
    max_length: int | None = field(default=1024, metadata={"help": "max tokens of prompt+response "
                                                                   "(TRL's max_length)",
                                                           "check": ">= 1"})
    seed: int = field(default=0, metadata={"help": "seed of the data order and of dropout"})
    warmup_ratio: float = field(default=0.0, metadata={"help": "share of the steps spent warming "
                                                               "the learning rate up",
                                                       "check": "[0, 1)"})
    weight_decay: float = field(default=0.0, metadata={"help": "weight decay", "check": ">= 0"})
    # any transformers optim name; "sgd" gives LossDiff ∝ IF exactly to first order
    optimizer: str = field(default="adamw_torch", metadata={"help": "a transformers optimizer name "
                                                                    "(adamw_torch, sgd, ...)",
                                                            "check": optimizer_problem})
    # > 0 adds TRL's "sft" loss on the chosen responses (RPO-style), weighted
    sft_weight: float = field(default=0.0,
                              metadata={"help": "weight of TRL's sft loss on the chosen responses",
                                        "check": ">= 0"})

    def __post_init__(self):
        check_fields(self)


def per_process_batch(batch_size: int, processes: int, key: str = "batch_size") -> int:
    """Pairs per process and step, so that a step sees `batch_size` pairs however many processes
    share it (the results then do not depend on the number of processes, up to reduction order)."""
    if batch_size % processes:
        lower = batch_size // processes * processes
        raise ConfigError(key=key, problem=f"is {batch_size}, which {processes} processes cannot "
                                           f"share evenly; use a multiple of {processes} (e.g. "
                                           f"{lower or processes} or {lower + processes})")
    return batch_size // processes


@dataclass(frozen=True)
class LossVariant:
    """How an arm's training departs from the run's objective (prefsift.selection.treatments): TRL's
    robust DPO (``loss_type="robust"``, flip rate ``epsilon``), conservative DPO (``conservative``:
    the
    label is wrong with probability ``epsilon``, train/weighted.py), or the pairs in the order
    given (``in_order``: Selective DPO's easy-to-hard curriculum)."""

    loss_type: str | None = None
    epsilon: float = 0.0
    conservative: bool = False
    in_order: bool = False  # the pairs in the order given (a curriculum), not shuffled


def trl_config(objective: PairwiseObjective, s: StageSettings, out_dir: Path,
                eval_steps: int | None = None, precision: str = "fp32", on_cpu: bool = True,
               processes: int = 1, variant: LossVariant | None = None,
                sharding: dict | None = None):
    from trl import DPOConfig

    if objective.kind.trl_loss is None:
        raise ValueError(f"objective {objective.name!r} cannot be trained with DPOTrainer; use one "
                         f"of {sorted(trainable_with_dpo())}")
    loss = variant.loss_type if variant and variant.loss_type else objective.kind.trl_loss
    return DPOConfig(
        output_dir=str(out_dir / "trainer"), beta=objective.beta,
        label_smoothing=variant.epsilon if variant and variant.loss_type == "robust" else 0.0,
        loss_type=[loss] + (["sft"] if s.sft_weight > 0 else []),
        loss_weights=[1.0, s.sft_weight] if s.sft_weight > 0 else None,
        learning_rate=s.learning_rate, num_train_epochs=s.epochs,
        per_device_train_batch_size=per_process_batch(s.batch_size, processes),
        gradient_accumulation_steps=s.gradient_accumulation, max_length=s.max_length, seed=s.seed,
        data_seed=s.seed, warmup_steps=s.warmup_ratio, weight_decay=s.weight_decay,
        optim=s.optimizer, lr_scheduler_type="constant" if s.warmup_ratio == 0 else "linear",
        # TRL defaults to bf16; here it follows the model's precision: fp32 weights train in fp32,
        # and a
        # bf16/fp16 model trains fp32 master weights under autocast (see stage.TrainingStage).
        bf16=precision == "bf16", fp16=precision == "fp16", use_cpu=on_cpu,
        save_strategy="no", report_to=[], logging_steps=10, disable_tqdm=False,
        dataset_num_proc=None, remove_unused_columns=True,
        eval_strategy="steps" if eval_steps else "no", eval_steps=eval_steps,
        per_device_eval_batch_size=32,
        train_sampling_strategy="sequential" if variant and variant.in_order else "random",
        # FSDP's fields (sharding.fsdp_training_args), or none: DDP. The step-0 validation is the
        # trainer's own (eval_on_start), inside train(): FSDP2 prepares the model with its optimizer
        # there, and a separate evaluate() before train() made DDP + LoRA drift from one process.
        **(sharding or {}), eval_on_start=bool(eval_steps),
    )

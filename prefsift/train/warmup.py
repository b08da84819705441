"""The paper's warm-up: θ = π_ref trained for `epochs` (1 by default) of a pairwise objective on
*all* the training pairs, through TRL's DPOTrainer. θ is what the scores are taken at: at θ = π_ref
the implicit reward margin (IRM) is 0 for every pair, so scoring needs the warm-up first.

`warm_up` is the stage (`prefsift run`'s warm-up calls it too); `warmup_from_files` is
`prefsift warmup` / `prefsift.warmup`: every input checked before any model is loaded, the run
directory locked, θ saved as a plain Hugging Face folder in OUT/warmup/model (a rerun with the same
inputs reuses it)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from ..core import artifacts
from ..core.checks import check_fields
from ..core.errors import ConfigError, require_path
from ..core.quiet import quiet_libraries
from ..data import DataError, check_lengths, load_pairs
from ..models.loading import (
    LoraSettings,
    ModelSourceError,
    load_model,
    load_tokenizer,
    model_fingerprint,
    resolve_model_path,
)
from ..models.objectives import PairwiseObjective, trainable_with_dpo
from ..runtime.devices import placement
from ..runtime.distributed import barrier, world
from ..runtime.placement import PlacementSettings
from ..runtime.sharding import use_shard
from .dpo import StageSettings, optimizer_problem
from .stage import TrainingStage


@dataclass
class WarmupConfig(PlacementSettings):
    """Every setting of `prefsift warmup` (defaults: TRL's DPOConfig where it has one)."""

    reference: str = field(metadata={"help": "π_ref, the SFT model the warm-up starts from (a "
                                             "folder or `smollm2`)"})
    train: str = field(metadata={"help": "the training pairs (all of them are trained on)"})
    out: str = field(default="runs/warmup",
                     metadata={"help": "run directory: θ is saved in OUT/warmup/model"})
    validation: str | None = field(default=None, metadata={
        "help": "validation pairs: their loss and margin every --eval-steps steps (optional)"})
    objective: str = field(default="dpo", metadata={"help": "pairwise objective: dpo, ipo or hinge",
                                                    "check": trainable_with_dpo()})
    beta: float = field(default=0.1,
                        metadata={"help": "β of the objective (TRL's default)", "check": "> 0"})
    epochs: float = field(default=1.0, metadata={"help": "epochs over all the pairs (the paper: 1)",
                                                 "check": "> 0"})
    learning_rate: float = field(default=1e-6, metadata={
        "help": "peak learning rate (TRL's default; small models and LoRA usually want more, e.g. "
                "1e-5 to 1e-4)",
        "check": "> 0"})
    batch_size: int = field(default=8,
                            metadata={"help": "pairs per optimizer step (over all processes)",
                                      "check": ">= 1"})
    gradient_accumulation: int = field(default=1, metadata={"help": "steps per optimizer step",
                                                            "check": ">= 1"})
    optimizer: str = field(default="adamw_torch", metadata={"help": "a transformers optimizer name",
                                                            "check": optimizer_problem})
    max_length: int = field(default=1024,
                            metadata={"help": "max tokens of prompt+response (TRL's max_length)",
                                      "check": ">= 1"})
    lora_r: int = field(default=0, metadata={"help": "LoRA rank of the adapters (0: full "
                                                     "fine-tuning); θ is saved merged",
                                             "check": ">= 0"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scale numerator (peft's "
                                                          "lora_alpha)", "check": "> 0"})
    eval_steps: int = field(default=20, metadata={"help": "validation loss every N steps, with "
                                                          "--validation (0: never)",
                                                  "check": ">= 0"})
    seed: int = field(default=0, metadata={"help": "seed of the data order"})
    strict: bool = field(default=False, metadata={"help": "stop at the first bad row"})

    def __post_init__(self):
        check_fields(self)

    @property
    def settings(self) -> StageSettings:
        return StageSettings(epochs=self.epochs, learning_rate=self.learning_rate,
                             batch_size=self.batch_size,
                             gradient_accumulation=self.gradient_accumulation,
                             max_length=self.max_length, seed=self.seed, optimizer=self.optimizer)

    @property
    def lora(self):
        return LoraSettings(r=self.lora_r, alpha=self.lora_alpha) if self.lora_r else None

    @property
    def model_folder(self) -> Path:
        return Path(self.out) / "warmup" / "model"


def warm_up(reference, ref_model, tokenizer, records, objective, settings: StageSettings, out_dir,
            *, data_key: str,
            eval_records=None, eval_steps=None, lora=None, log=print, progress: bool = True):
    """θ: `reference` (a folder, loaded as the stage's own trainable copy) trained on every record
    with `ref_model` as the frozen reference. Returns (θ, stage info); θ is in OUT_DIR/model."""
    return TrainingStage(reference, ref_model, tokenizer, records, objective, settings, out_dir,
                       start_key=model_fingerprint(ref_model), data_key=data_key, name="warmup",
                       eval_records=eval_records, eval_steps=eval_steps, lora=lora, log=log,
                       start_is_reference=True, label="warm-up", progress=progress).run()


def check_warmup_inputs(cfg: WarmupConfig, columns=None):
    """The reference resolves to a loadable folder and the pair files parse with a usable pair; a
    `UserError` naming the setting otherwise. Returns (train, validation or None)."""
    try:
        resolve_model_path(cfg.reference)
    except ModelSourceError as e:
        raise ConfigError(key="reference", problem=f": {e}") from None
    pairs = []
    for key, what in (("train", "training"), ("validation", "validation")):
        path = getattr(cfg, key)
        if path is None:
            pairs.append(None)
            continue
        require_path(path, f"{what} pairs", key, kind="any")
        ps = load_pairs(path, columns=columns, strict=cfg.strict)
        if not ps.valid_rows:
            raise DataError(f"{path}: no usable {what} pair; `prefsift data check {path}` lists "
                            f"why")
        pairs.append(ps)
    return tuple(pairs)


def warmup_from_files(cfg: WarmupConfig, columns=None, log=print, pairs=None) -> Path:
    """`prefsift warmup`: θ from the reference on the training pairs, in OUT/warmup/model (reused
    when it exists with the same inputs). Over-length rows are left out, as scoring leaves them out;
    `pairs`: (train, validation) already read. Returns θ's folder."""

    train, val = pairs if pairs is not None else check_warmup_inputs(cfg, columns)
    quiet_libraries()
    place = placement(cfg.device, cfg.dtype)
    tok = load_tokenizer(cfg.reference)
    train = check_lengths(train, tok, cfg.max_length, "drop", cfg.strict)
    if not train.valid_rows:
        raise DataError(f"{cfg.train}: no training pair fits max_length {cfg.max_length}; raise "
                        f"max_length")
    val = check_lengths(val, tok, cfg.max_length, "drop", cfg.strict) if val is not None else None
    records = train.records()
    log(f"[warm-up] {cfg.epochs:g} epoch(s) of {cfg.objective} (β {cfg.beta:g}, lr "
        f"{cfg.learning_rate:g}) on {len(records)} pairs from {cfg.reference} -> "
        f"{cfg.model_folder}")
    here = world()
    use_shard(cfg.shard, here, log)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    with artifacts.RunLock(out, log) if here.is_main else contextlib.nullcontext():
        barrier(here)
        ref = load_model(cfg.reference, **place)
        warm_up(cfg.reference, ref, tok, records, PairwiseObjective(cfg.objective, cfg.beta),
                cfg.settings, out / "warmup", data_key=artifacts.stable_key(records),
                eval_records=val.records() if val is not None and cfg.eval_steps else None,
                eval_steps=cfg.eval_steps or None, lora=cfg.lora, log=log)
    return cfg.model_folder

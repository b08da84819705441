"""Reward-model stages through TRL's RewardTrainer (Bradley–Terry, softplus(r_l − r_w)), CPU-safe
and resumable, like the DPO stages: a stage's folder holds the trained model and a `stage.json`
that fingerprints what produced it.

A reward model here is a sequence-classification model with one label. The first one (the
warm-up RM) starts from π_ref's backbone with a fresh scalar head (`reward_model_from`); θ_val of
the RM and every arm's RM continue from it."""

from __future__ import annotations

import copy
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import torch

from ..core import artifacts
from ..models.loading import load_pretrained, resolve_model_path
from ..runtime.devices import accumulation_dtype, model_device, model_precision
from ..runtime.distributed import barrier, broadcast_object, world
from .dpo import StageSettings, per_process_batch
from .stage import fault_point_callback, without_patched_forward
from .stage_folder import reusable_stage, save_stage


def reward_model_from(spec, tokenizer, *, seed: int = 0, device="cpu",
                      attn_implementation: str | None = None):
    """A one-label sequence classifier with π_ref's backbone (`spec`: a model folder) and a fresh
    scalar head, seeded; its pad id is the tokenizer's (the reward is read at the last non-pad
    token)."""
    from transformers import AutoModelForSequenceClassification


    torch.manual_seed(seed)  # the head's initialisation
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    model = load_pretrained(AutoModelForSequenceClassification, resolve_model_path(spec),
                            dtype=torch.float32, num_labels=1, **extra)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(device).eval()


def load_reward_model(folder, device="cpu"):
    from transformers import AutoModelForSequenceClassification


    return load_pretrained(AutoModelForSequenceClassification, Path(folder),
                           dtype=torch.float32).to(device).eval()


def _reward_config(s: StageSettings, out_dir: Path, eval_steps: int | None, on_cpu: bool,
                   processes: int, precision: str = "fp32"):
    from trl import RewardConfig

    return RewardConfig(
        output_dir=str(out_dir / "trainer"), learning_rate=s.learning_rate,
        num_train_epochs=s.epochs,
        per_device_train_batch_size=per_process_batch(s.batch_size, processes),
        gradient_accumulation_steps=s.gradient_accumulation, max_length=s.max_length, seed=s.seed,
        data_seed=s.seed,
        warmup_steps=s.warmup_ratio, weight_decay=s.weight_decay, optim=s.optimizer,
        lr_scheduler_type="constant" if s.warmup_ratio == 0 else "linear",
        bf16=precision == "bf16", fp16=precision == "fp16", use_cpu=on_cpu,  # TRL defaults to bf16
        save_strategy="no", report_to=[], logging_steps=10, disable_tqdm=False,
        dataset_num_proc=None, eval_strategy="steps" if eval_steps else "no", eval_steps=eval_steps,
        per_device_eval_batch_size=32, center_rewards_coefficient=None,
    )


def train_reward_stage(start, tokenizer, records: list[dict], settings: StageSettings,
                       out_dir: str | Path, start_key: str, data_key: str, name: str = "rm",
                       eval_records: list[dict] | None = None, eval_steps: int | None = None,
                       log=print, label: str | None = None, progress: bool = True):
    """Train the reward model `start` (a model in memory, copied, or a stage folder) on `records`
    (prompt/chosen/rejected dicts) with TRL's RewardTrainer, save it, and return (model, stage
    info). Under a launcher every process runs the stage (DDP); `settings.batch_size` is per step
    over all. It shows one progress bar named `label` (default: `name`; none with `progress=False`)
    and writes the trainer's log to `out_dir`/train_log.jsonl (train.progress)."""
    from datasets import Dataset
    from trl import RewardTrainer

    from .progress import attach as attach_progress

    out_dir = Path(out_dir)
    key = artifacts.stable_key({"start": start_key, "data": data_key, "settings": asdict(settings),
                                "name": name, "trainer": "reward", "eval_steps": eval_steps,
                                "n_eval": len(eval_records or [])})
    here = world()
    info = broadcast_object(reusable_stage(out_dir, key, name, log) if here.is_main else None, here)
    in_memory = not isinstance(start, (str, Path))
    device = model_device(start) if in_memory else torch.device("cpu")
    if info is not None:
        return load_reward_model(out_dir / "model", device), info
    if here.is_main:
        (out_dir / "stage.json").unlink(missing_ok=True)
    t0 = time.time()
    model = (without_patched_forward(copy.deepcopy(start)).float() if in_memory
             else load_reward_model(start, device))
    model.train()
    args = _reward_config(settings, out_dir, eval_steps if eval_records else None,
                          on_cpu=device.type == "cpu", processes=here.size,
                          precision=model_precision(start) if in_memory else "fp32")
    trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(records),
                            processing_class=tokenizer,
                            eval_dataset=Dataset.from_list(eval_records) if eval_records else None,
                            callbacks=[fault_point_callback(f"train:{name}")])
    attach_progress(trainer, label or name, out_dir, show=progress)
    start_log = [{**trainer.evaluate(), "step": 0}] if eval_records else []
    result = trainer.train()
    model = trainer.model.eval()
    info = {"key": key, "name": name, "seconds": time.time() - t0,
            "train_loss": result.training_loss,
            "steps": result.global_step, "settings": asdict(settings), "trainer": "reward",
            "log": start_log + trainer.state.log_history, "processes": here.size}
    del trainer
    if here.is_main:
        save_stage(model, tokenizer, out_dir, info, name)
    barrier(here)
    return without_patched_forward(model), info


def padded(seqs: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and their attention mask, on `device`."""
    longest = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), longest), dtype=torch.long)
    for b, s in enumerate(seqs):
        ids[b, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
        mask[b, : len(s)] = 1
    return ids.to(device), mask.to(device)


def batch_rewards(model, seqs: Sequence[Sequence[int]], pad_id: int) -> torch.Tensor:
    """r of each sequence (differentiable), in fp32 or better."""
    ids, mask = padded(seqs, pad_id, next(model.parameters()).device)
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    return logits[:, 0].to(accumulation_dtype(logits))

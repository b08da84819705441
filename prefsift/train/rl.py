"""Online RL stages through TRL: the policy, from a folder, optimised on the training prompts
against a frozen reward model, by GRPOTrainer (PPO's clipped surrogate with the group's mean reward
as the baseline; TRL 1.16 has no critic-based PPO) or RLOOTrainer. Resumable with a key, like every
stage.

The reward model scores each completion as RewardTrainer trained it: BOS, the prompt, the
completion and EOS (GRPO's own reward-model scoring leaves BOS and EOS out), or the chat template
over the prompt's and the completion's messages."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..core import artifacts
from ..core.checks import check_fields
from ..core.errors import ConfigError
from ..models.loading import load_model
from ..runtime.distributed import barrier, broadcast_object, world
from .dpo import optimizer_problem
from .reward import batch_rewards
from .stage import fault_point_callback, without_patched_forward
from .stage_folder import reusable_stage, save_stage


@dataclass(frozen=True)
class RLSettings:
    """One online-RL stage's settings (the `rl` section of a run config)."""

    algorithm: str = field(default="grpo",
                           metadata={"help": "grpo (clipped surrogate, group baseline) or rloo",
                                     "check": ("grpo", "rloo")})
    epochs: float = field(default=1.0,
                          metadata={"help": "epochs over the training prompts", "check": "> 0"})
    learning_rate: float = field(default=1e-5,
                                 metadata={"help": "peak learning rate", "check": "> 0"})
    prompts_per_step: int = field(default=4,
                                  metadata={"help": "prompts per optimizer step (each sampled "
                                                    "num_generations times)", "check": ">= 1"})
    num_generations: int = field(default=4, metadata={"help": "completions per prompt (the group)",
                                                      "check": ">= 2"})
    beta: float = field(default=0.04,
                        metadata={"help": "weight of the KL to π_ref", "check": ">= 0"})
    epsilon: float = field(default=0.2,
                           metadata={"help": "clipping range of the surrogate", "check": "> 0"})
    num_iterations: int = field(default=1,
                                metadata={"help": "optimisation passes per generation (PPO epochs)",
                                          "check": ">= 1"})
    temperature: float = field(default=1.0,
                               metadata={"help": "sampling temperature", "check": "> 0"})
    max_completion_length: int = field(default=16,
                                       metadata={"help": "completion tokens", "check": ">= 1"})
    optimizer: str = field(default="adamw_torch", metadata={"help": "a transformers optimizer name",
                                                            "check": optimizer_problem})
    seed: int = field(default=0, metadata={"help": "seed of sampling and data order"})

    def __post_init__(self):
        check_fields(self)


class RewardModelReward:
    """A frozen reward model as a GRPO/RLOO reward function, tokenizing as RewardTrainer does."""

    def __init__(self, model, tokenizer, max_length: int | None = None, batch_size: int = 32):
        self.model, self.tokenizer, self.max_length, self.batch_size = (model.eval(), tokenizer,
                                                                        max_length, batch_size)
        self.__name__ = "reward_model"  # TRL names the logged reward after the function

    def sequences(self, prompts, completions, completion_ids=None) -> list[list[int]]:
        tok = self.tokenizer
        out = []
        for i, (p, c) in enumerate(zip(prompts, completions)):
            if isinstance(p, list):  # conversational: the template over the whole conversation
                ids = list(tok.apply_chat_template(p + c, tokenize=True,
                                                   return_dict=True)["input_ids"])
            else:
                # The prompt's ids and the generated ids (a word-level decode loses the space
                # between them); then EOS, which RewardTrainer appends to every standard response.
                gen = list(completion_ids[i]) if completion_ids is not None else \
                    tok(c, add_special_tokens=False)["input_ids"]
                if not gen or gen[-1] != tok.eos_token_id:
                    gen.append(tok.eos_token_id)
                ids = list(tok(p)["input_ids"]) + gen
            out.append(ids[: self.max_length] if self.max_length else ids)
        return out

    def __call__(self, prompts, completions, completion_ids=None, **kwargs) -> list[float]:
        seqs = self.sequences(prompts, completions, completion_ids)
        out = []
        with torch.no_grad():
            for s in range(0, len(seqs), self.batch_size):
                out += batch_rewards(self.model, seqs[s:s + self.batch_size],
                                     self.tokenizer.pad_token_id).tolist()
        return out


def _rl_config(s: RLSettings, out_dir: Path, on_cpu: bool, processes: int):
    from trl import GRPOConfig, RLOOConfig

    cls = GRPOConfig if s.algorithm == "grpo" else RLOOConfig
    completions = s.prompts_per_step * s.num_generations
    if completions % processes:
        raise ConfigError(key="rl.prompts_per_step",
                          problem=f"x num_generations is {completions} completions a "
                                  f"step, which {processes} processes cannot share evenly")
    kw = dict(output_dir=str(out_dir / "trainer"), learning_rate=s.learning_rate,
              num_train_epochs=s.epochs, per_device_train_batch_size=completions // processes,
              num_generations=s.num_generations, beta=s.beta, epsilon=s.epsilon,
              num_iterations=s.num_iterations, temperature=s.temperature,
              max_completion_length=s.max_completion_length, optim=s.optimizer, seed=s.seed,
              data_seed=s.seed,
              # TRL defaults to bf16
              lr_scheduler_type="constant", bf16=False, fp16=False, use_cpu=on_cpu,
              save_strategy="no", report_to=[], logging_steps=1, disable_tqdm=False,
              log_completions=False)
    return cls(**kw)


def train_rl_stage(start, reward_model, tokenizer, prompts: list, settings: RLSettings,
                   out_dir: str | Path,
                   start_key: str, reward_key: str, data_key: str, name: str = "rl", log=print,
                   label: str | None = None, progress: bool = True):
    """Optimise the policy in the folder `start` on `prompts` against `reward_model` and save it.
    The reference for the KL is `start` itself, which TRL loads again from the folder (its
    `_name_or_path`). Returns (model, stage info); the info's `log` holds reward and KL per step. It
    shows one progress bar named `label` (default: `name`; none with `progress=False`) and writes
    the trainer's log to `out_dir`/train_log.jsonl (train.progress)."""
    from datasets import Dataset
    from trl import GRPOTrainer, RLOOTrainer

    from .progress import attach as attach_progress

    out_dir = Path(out_dir)
    key = artifacts.stable_key({"start": start_key, "reward": reward_key, "data": data_key,
                                "name": name,
                                "settings": asdict(settings), "trainer": settings.algorithm})
    here = world()
    info = broadcast_object(reusable_stage(out_dir, key, name, log) if here.is_main else None, here)
    device = next(reward_model.parameters()).device
    if info is not None:
        return load_model(out_dir / "model", device=device), info
    if here.is_main:
        (out_dir / "stage.json").unlink(missing_ok=True)
    t0 = time.time()
    model = load_model(start, device=device)
    # Sampling stops at the tokenizer's EOS and pads with its pad id.
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.train()
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # the policy generates from left-padded prompts
    try:
        cls = GRPOTrainer if settings.algorithm == "grpo" else RLOOTrainer
        trainer = cls(model=model, reward_funcs=RewardModelReward(reward_model, tokenizer),
                      args=_rl_config(settings, out_dir, device.type == "cpu", here.size),
                      train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
                      processing_class=tokenizer, callbacks=[fault_point_callback(f"train:{name}")])
        attach_progress(trainer, label or name, out_dir, show=progress)
        result = trainer.train()
    finally:
        tokenizer.padding_side = side
    model = trainer.model.eval()
    info = {"key": key, "name": name, "seconds": time.time() - t0,
            "train_loss": result.training_loss, "steps": result.global_step,
            "settings": asdict(settings), "trainer": settings.algorithm,
            "log": trainer.state.log_history, "processes": here.size}
    del trainer
    if here.is_main:
        save_stage(model, tokenizer, out_dir, info, name)
    barrier(here)
    return without_patched_forward(model), info

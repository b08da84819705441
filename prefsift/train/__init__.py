"""Training stages through TRL, each from a start model on a set of pairs or prompts, resumable,
with a key per stage: the DPO family (DPOTrainer), reward models (RewardTrainer), and online RL
against a reward model (GRPOTrainer, RLOOTrainer)."""

from .dpo import StageSettings
from .reward import reward_model_from, train_reward_stage
from .rl import RewardModelReward, RLSettings, train_rl_stage
from .stage import TrainingStage

__all__ = ["RLSettings", "RewardModelReward", "StageSettings", "reward_model_from",
           "train_reward_stage", "train_rl_stage", "TrainingStage"]

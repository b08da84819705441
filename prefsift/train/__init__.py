"""Training stages through TRL, each from a start model on a set of pairs or prompts, resumable,
with a key per stage: the DPO family (DPOTrainer), reward models (RewardTrainer), and online RL
against a reward model (GRPOTrainer, RLOOTrainer)."""

from .dpo import StageSettings
from .stage import TrainingStage
from .reward import reward_model_from, train_reward_stage
from .rl import RewardModelReward, RLSettings, train_rl_stage

__all__ = ["RLSettings", "RewardModelReward", "StageSettings", "reward_model_from", "train_reward_stage",
           "train_rl_stage", "TrainingStage"]

"""Training stages through TRL: the DPO family (DPOTrainer) from a start model on a set of pairs,
resumable, with a key per stage."""

from .dpo import StageSettings, train_stage

__all__ = ["StageSettings", "train_stage"]

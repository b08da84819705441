"""The planner: predicted time, FLOPs and peak memory of every stage of a `score` or a `run`, from
short probes of the real models on the real data (`plan`), and the predicted-vs-actual table."""

from .plan import Plan, StagePlan, predicted_vs_actual
from .run import actual_run_seconds, plan_run
from .scores import plan_scores

__all__ = ["Plan", "StagePlan", "actual_run_seconds", "plan_run", "plan_scores",
           "predicted_vs_actual"]

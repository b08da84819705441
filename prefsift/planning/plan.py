"""What a `score` or a `run` will cost, before it runs: each stage's predicted time, FLOPs and peak
memory on this machine, with the number of processes given.

Times come from short probes of the actual models on a sample of the actual pairs (three batches
of the log-prob engine, a few steps of TRL's own trainer at the stage's batch size and optimizer,
one batch of the IF route, a few sampled answers), scaled by the stage's exact token counts: the
engine's batches are planned as the engine plans them, and TRL's steps are simulated in a seeded
random order, each step padded to its longest pair as TRL pads. Work that is sharded or under DDP
divides by the processes; the rest does not. FLOPs are the usual 2·N per token of a forward pass
and 6·N per token of a training step (N the weights). Memory is weights, gradients and optimizer
state from the parameter counts, plus, on a GPU, the activations the probes allocated (on a CPU
the activations are not counted, and the table says so).

`plan.json` in the output folder keeps the plan; `prefsift score` and `prefsift run` print the
predicted against the actual time of each stage when their folder holds one."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..core import artifacts

GIB = 2**30


@dataclass
class StagePlan:
    stage: str
    seconds: float
    flops: float
    peak_gib: float
    basis: str  # what the number was scaled from

    def row(self) -> str:
        return (f"  {self.stage:<14} {_duration(self.seconds):>10} {self.flops:>10.2e} "
                f"{self.peak_gib:>9.2f}   {self.basis}")


@dataclass
class Plan:
    what: str
    processes: int
    device: str
    stages: list = field(default_factory=list)
    probe_seconds: float = 0.0
    activations_counted: bool = False
    # a run's judge calls and tokens (`pipeline.judge_cost.JudgeCost`)
    judge: dict = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.stages)

    def describe(self) -> str:
        mem = ("weights, gradients, optimizer state and activations" if self.activations_counted
               else "weights, gradients and optimizer state (activations not counted on a CPU)")
        lines = [f"plan of {self.what}: {self.device}, {self.processes} process(es); the probes "
                 f"took {self.probe_seconds:.0f} s; peak memory per process = {mem}",
                 f"  {'stage':<14} {'time':>10} {'FLOPs':>10} {'peak GiB':>9}   scaled from"]
        lines += [s.row() for s in self.stages]
        lines.append(f"  {'total':<14} {_duration(self.seconds):>10} "
                     f"{sum(s.flops for s in self.stages):>10.2e}")
        if self.judge:
            tokens = (f", about {self.judge['tokens']:,} tokens"
                      if self.judge.get("tokens") is not None else "")
            lines.append(f"judge: at most {self.judge['calls']:,} calls{tokens} "
                         f"({self.judge['basis']})")
        return "\n".join(lines)

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "plan.json"
        artifacts.write_json(path, {**asdict(self), "seconds": self.seconds}, seal=False)
        return path


def _duration(s: float) -> str:
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def predicted_vs_actual(folder: Path, actual: dict[str, float]) -> str | None:
    """The table of predicted against actual seconds of the plan saved in `folder`, if any."""
    path = Path(folder) / "plan.json"
    if not path.exists():
        return None
    plan = json.loads(path.read_text())
    lines = [f"predicted (plan.json) vs actual time, {plan['processes']} process(es):",
             f"  {'stage':<14} {'predicted':>10} {'actual':>10} {'actual/predicted':>17}"]
    for s in plan["stages"]:
        if s["stage"] in actual:
            a = actual[s["stage"]]
            lines.append(f"  {s['stage']:<14} {_duration(s['seconds']):>10} {_duration(a):>10} "
                         f"{a / max(s['seconds'], 1e-9):>16.2f}x")
    return "\n".join(lines)

"""The run directory: every path of a run in one place, and manifest.json, the record of which
stage finished with which key (a rerun skips a stage whose key is unchanged)."""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core import artifacts
from ..core.artifacts import stage_key  # noqa: F401  (the pipeline's stages import it from here)
from ..core.version import __version__
from ..runtime.devices import machine
from ..runtime.distributed import world


@dataclass(frozen=True)
class RunDir:
    """The paths of a run directory (`runs/NAME/`); nothing else spells them."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    config = property(lambda self: self.root / "config.yaml")
    manifest = property(lambda self: self.root / "manifest.json")
    lab = property(lambda self: self.root / "lab")  # the embedded lab's files and SFT model
    # pairs from a real model's samples
    sentiment = property(lambda self: self.root / "sentiment-lab")
    warmup = property(lambda self: self.root / "warmup")  # θ: stage.json and model/
    warmup_model = property(lambda self: self.root / "warmup" / "model")
    score = property(lambda self: self.root / "score")  # the scoring stages' run directory
    scores_table = property(lambda self: self.root / "score" / "scores.parquet")
    selection = property(lambda self: self.root / "selection.parquet")
    eval_csv = property(lambda self: self.root / "eval.csv")
    eval_json = property(lambda self: self.root / "eval.json")

    def arm(self, arm: str, seed: int) -> Path:
        """One arm's training stage (stage.json, model/) and its eval.json."""
        return self.root / "arms" / f"{arm}-seed{seed}"

    def arm_eval(self, arm: str, seed: int) -> Path:
        return self.arm(arm, seed) / "eval.json"

    def calibration(self, arm: str) -> Path:
        """A calibrated arm's probes (probeN.json) and its choice (calibration.json)."""
        return self.root / "calibrate" / arm


class Manifest:
    """manifest.json: versions, config, and each finished stage's key, seconds and outputs."""

    def __init__(self, run_dir: RunDir, config: dict, log=print):
        self.path = run_dir.manifest
        self.data = {"stages": {}}
        if self.path.exists():
            try:
                self.data = json.loads(self.path.read_text())
                if not isinstance(self.data, dict) or not isinstance(self.data.get("stages"), dict):
                    raise ValueError("no stages")
            except (OSError, ValueError) as e:
                # Every stage re-checks its own artifacts, so a lost manifest costs only re-reading
                # them.
                log(f"note: {self.path} is unreadable ({e or 'no stages'}); starting a new one")
                self.data = {"stages": {}}
        self.data["config"] = config
        self.data["versions"] = _versions()

    def done(self, stage: str, key: str) -> bool:
        return self.data["stages"].get(stage, {}).get("key") == key

    def record(self, stage: str, key: str, seconds: float, **extra) -> None:
        self.data["stages"][stage] = {"key": key, "seconds": round(seconds, 2), **extra}
        if world().is_main:  # every rank keeps the record; rank 0 writes it
            artifacts.write_json(self.path, self.data, seal=False)


def _versions() -> dict:
    import transformers
    import trl


    return {"prefsift": __version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "trl": trl.__version__,
            "python": platform.python_version(), "machine": platform.machine(), "host": machine()}

"""`prefsift run CONFIG.yaml`: the whole protocol as resumable stages over a run directory.

    lab (or your files) → warm-up (θ = π_ref + 1 epoch DPO on all pairs) → scores (θ_val, IRM,
    LossDiff, IF, TIF) → selections → arms (continue from θ for `final.epochs` on each selection,
    per seed) → evaluation (answers on held-out prompts, judged against π_ref) → report

`config` holds `RunConfig`; `inputs` what is checked before any work; `rundir` the paths and the
manifest; `stages` one function per stage; `run` their order. Every stage has a key: a hash of its
own settings and of the keys of the stages it reads. The manifest records each finished stage's key
and time; a rerun skips a stage whose key is unchanged, so changing a setting redoes exactly the
stages it affects, and a killed run continues."""

from .config import DEFAULT_ARMS, RunConfig, ScoreSettings, apply_override
from .inputs import check_run_inputs, imported_selection, read_test_prompts
from .rundir import Manifest, RunDir
from .run import run_pipeline

__all__ = ["DEFAULT_ARMS", "Manifest", "RunConfig", "RunDir", "ScoreSettings", "apply_override", "check_run_inputs",
           "imported_selection", "read_test_prompts", "run_pipeline"]

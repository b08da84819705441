"""`prefsift run CONFIG.yaml`: the whole protocol as resumable stages over a run directory.

    lab (or your files) → warm-up (θ = π_ref + 1 epoch DPO on all pairs) → scores (θ_val, IRM,
    LossDiff, IF, TIF) → selections → arms (continue from θ for `final.epochs` on each selection,
    per seed) → evaluation (answers on held-out prompts, judged against π_ref) → report

`config` holds `RunConfig`; `inputs` what is checked before any work; `rundir` the paths and the
manifest; `stages` one function per stage; `run` their order. Every stage has a key: a hash of its
own settings and of the keys of the stages it reads. The manifest records each finished stage's key
and time; a rerun skips a stage whose key is unchanged, so changing a setting redoes exactly the
stages it affects, and a killed run continues."""

import importlib

# Where each public name lives; imported on first use (PEP 562), so that importing one light module
# of the package (`probed_arms`, which registers the kinds of arm chosen by probes) does not load
# the whole pipeline.
_PUBLIC = {"DEFAULT_ARMS": "config", "RunConfig": "config", "ScoreSettings": "config",
           "apply_override": "config", "imported_selection": "..selection.imported",
           "check_run_inputs": "inputs", "read_test_prompts": "inputs",
           "Manifest": "rundir", "RunDir": "rundir", "run_pipeline": "run"}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    where = _PUBLIC[name]
    module = importlib.import_module(where if where.startswith("..") else f".{where}", __name__)
    return getattr(module, name)

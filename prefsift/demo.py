"""`prefsift demo`: the main job, `prefsift run` on the embedded lab with its default settings.

lab (task, SFT model = π_ref, pairs) → DPO warm-up through TRL (θ) → scores (IRM, LossDiff, IF per
layer group, TIF) → selections → every arm trained from θ for each seed → answers on held-out
prompts judged by the oracle against π_ref → report.html. Sized to finish in about a quarter of an
hour on 2 CPU cores; `RunConfig`'s defaults are the settings."""

from __future__ import annotations

from pathlib import Path


def quiet_libraries() -> None:
    """Keep the output to what a person needs: our progress bars, not every library's notices."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="trl")
    try:
        import datasets
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        datasets.disable_progress_bars()
    except ImportError:  # pragma: no cover
        pass


def run_demo(out: str | Path = "runs/demo", progress: bool = True, log=print, **overrides):
    """`run_pipeline` with the default `RunConfig` (any field can be overridden) into ``out``."""
    from .pipeline import RunConfig, run_pipeline

    cfg = RunConfig(out=str(out), **overrides)
    log(f"prefsift demo: the whole protocol on the embedded lab -> {out}\n"
        f"  arms {cfg.arms}, seeds {cfg.seeds}, kept fraction {cfg.keep}, judge {cfg.judge}")
    return run_pipeline(cfg, progress=progress, log=log)

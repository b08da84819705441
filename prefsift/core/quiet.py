"""Keep the output to what a person needs: prefsift's progress bars, not every library's notices."""

from __future__ import annotations

import os
import warnings


def quiet_libraries() -> None:
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


# `--verbose`: the training stages print TRL's per-step log dictionaries as well as their progress
# bars. An environment variable, so that it reaches the worker processes that `launch_local`
# (torchrun) starts, which inherit the environment.
VERBOSE_ENV = "PREFSIFT_VERBOSE"


def verbose() -> bool:
    """Whether `--verbose` (or PREFSIFT_VERBOSE=1) is on in this process."""
    return os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def set_verbose(on: bool = True) -> None:
    """Turn `verbose` on or off for this process and the processes it starts."""
    os.environ[VERBOSE_ENV] = "1" if on else "0"

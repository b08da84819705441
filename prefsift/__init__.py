"""prefsift: which preference pairs are worth aligning *your* model on.

The public API is `prefsift.api` (every command of the CLI is one of its functions):
    warmup(reference, pairs, out=...)               -> θ's folder (the paper's warm-up, through TRL)
    score(policy, reference, pairs, validation=...) -> scores table (pandas), one row per pair
    select(table, rule, keep=...)                   -> boolean mask over the pairs
    write_subset(pairs, mask, path)                 -> rows written, in the input's format
    open_run(folder)                                -> a finished run: scores, selections, models
    run(config_or_path, **overrides)                -> evaluation table of the whole protocol
    load_pairs, check_pairs, subset, select_to_folder, load_scores, plan, plan_scores, demo,
    make_lab, make_sentiment_lab, describe_model
    view(run_dir) / view(scores=..., train=...)     -> one self-contained HTML page of every pair
    audit(train, validation=...)                    -> what is wrong with a pair file (no model)
    register_rule / register_treatment / register_score / register_judge: your own
"""

from .api import *  # noqa: E402,F401,F403
from .api import __all__ as _api
from .core.version import __version__  # noqa: E402

__all__ = ["__version__", *_api]

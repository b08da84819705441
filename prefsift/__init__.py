"""prefsift: which preference pairs are worth aligning *your* model on.

The public API (see `prefsift.api` and the README):
    load_pairs(path_or_rows)                         -> PairSet
    score(policy, reference, pairs, validation=...)  -> scores table (pandas), one row per pair
    select(table, rule, keep=...)                    -> boolean mask over the pairs
    write_subset(pairs, mask, path)                  -> rows written, in the input's format
    run(config_or_path, **overrides)                 -> evaluation table of the whole protocol
    register_rule(name, needs=...)(fn)               a selection rule of your own (also for `arms`)
    register_judge(name, make)                       a judge of your own (for `judge:`)
"""

from .version import __version__  # noqa: E402

from .api import load_pairs, register_judge, register_rule, run, score, select, write_subset  # noqa: E402

__all__ = ["__version__", "load_pairs", "register_judge", "register_rule", "run", "score", "select", "write_subset"]

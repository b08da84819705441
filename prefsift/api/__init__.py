"""The public Python API, and the only door: every `prefsift` command is one call of a function
here, and the pipeline's stages use the same library functions underneath.

From an SFT model to a selection:

    import prefsift
    theta = prefsift.warmup("smollm2", "train.jsonl", out="runs/mine")  # θ: the warm-up
    table = prefsift.score(theta, "smollm2", "train.jsonl", validation="val.jsonl",
                           out="runs/mine")
    mask = prefsift.select(table, "lossdiff_irm", keep=0.64)
    prefsift.write_subset(prefsift.load_pairs("train.jsonl"), mask, "selected.jsonl")
    run = prefsift.open_run("runs/mine")  # later: run.scores, run.models
    prefsift.view("runs/mine")  # every pair, in one HTML page
    prefsift.audit("train.jsonl", validation="val.jsonl").lines()  # what is wrong with the file

Models are objects (a transformers causal LM, with `tokenizer=`) or specs (a local folder, or
`smollm2`); pairs are a `PairSet`, a path, or rows. Every function checks its inputs first and
raises a `prefsift.core.errors.UserError` that says what to fix."""

from __future__ import annotations

from ..core.quiet import set_verbose
from ..data import ColumnMap
from ..pipeline import probed_arms  # noqa: F401  (registers the kinds of arm chosen by probes)
from ..scoring.kinds import register_score as _register_score
from ..selection.rules import register_rule as _register_rule
from ..selection.treatments import register_treatment as _register_treatment
from .audit import audit
from .models import describe_model, warmup
from .pairs import check_pairs, load_pairs, subset, write_subset
from .runs import (
    LabSummary,
    RunResult,
    demo,
    make_lab,
    make_sentiment_lab,
    open_run,
    plan,
    recommend,
    run,
)
from .scores import load_scores, plan_scores, score, select
from .selections import Selection, select_to_folder
from .views import view


def register_rule(name: str, needs=(), help: str = "", replace: bool = False, sized: bool = False):
    """Register a selection rule of your own, as a decorator over ``fn(table, keep, seed) -> mask``
    (one boolean per row of the scores table). ``needs``: the table columns it reads (checked before
    it runs); ``sized=True``: it keeps the fraction `keep` (a selection that misses it is refused,
    with why). Then `select(table, name)`, and in a run config `arms: [name]` with your module under
    `plugins: [your_module]`.

        @prefsift.register_rule("low_margin", needs=("irm",), help="the smallest IRM", sized=True)
        def low_margin(table, keep, seed):
            irm = table["irm"].to_numpy()
            return prefsift.selection.rules.top_fraction(irm, keep, largest=False)
    """
    return _register_rule(name, needs=needs, help=help, replace=replace, sized=sized)


def register_treatment(name: str, needs=(), help: str = "", objectives=("dpo", "ipo", "hinge"),
                       every_pair: bool = False, passes: int = 1, per_pair: bool = False,
                       replace: bool = False):
    """Register a treatment of your own, as a decorator over ``make(table, keep, label_noise) ->
    ArmData`` (`prefsift.selection.treatments.ArmData`: the pairs in its data, which of them are
    swapped, a weight per pair, the loss). Then `arms: [name]` in a run config with your module
    under `plugins`; docs/guide.md, "Your own treatment", has a worked example."""
    return _register_treatment(name, needs=needs, help=help, objectives=objectives,
                               every_pair=every_pair,
                    passes=passes, per_pair=per_pair, replace=replace)


def register_score(name: str, help: str = "", needs_validation: bool = False, columns=(),
                   replace: bool = False,
                   when_constant: str = "check the models and the data it is computed from"):
    """Register a score of your own, as a decorator over ``compute(ctx) -> {column: array over every
    input row}`` (`prefsift.scoring.kinds.ScoreContext`: ``ctx.backend.margin()``, ``.loss()``,
    ``.theta_val_losses()``, ``.influence()``, ``ctx.spread(values over the scored pairs)``). Then
    `score(..., scores=[..., name])`, `--scores ...,NAME`, and rules can read its columns. A table
    where its first column is constant is refused with `when_constant` as the fix."""
    return _register_score(name, help=help, needs_validation=needs_validation, columns=columns,
                    replace=replace, when_constant=when_constant)


def register_judge(name: str, make, *, takes: str | None = None, check=None, help: str = "",
                   replace: bool = False):
    """Register a judge of your own: ``make(arg)`` returns a `prefsift.eval.judges.Judge` (a `score`
    method, higher is better; `prefer` for a pairwise judge). ``takes``: the name of the argument
    after ``name:`` in the spec (e.g. "FOLDER"), None for none; ``check(arg, prompts, where)`` may
    raise a `ConfigError` before any work. Then `judge: name` in a run config, with your module
    under `plugins`."""
    from ..eval.judges import register_judge as register

    return register(name, make, takes=takes, check=check, help=help, replace=replace)


__all__ = ["ColumnMap", "LabSummary", "audit", "RunResult", "Selection", "check_pairs", "demo",
           "describe_model", "load_pairs", "load_scores", "make_lab", "make_sentiment_lab",
           "open_run", "plan", "plan_scores", "recommend", "register_judge", "register_rule",
           "register_score", "register_treatment", "run", "score", "select", "select_to_folder",
           "set_verbose", "subset", "view", "warmup", "write_subset"]

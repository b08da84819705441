"""The arms chosen by probe trainings on validation data, registered as kinds of arm
(`prefsift.selection.kinds`) by the pipeline, which alone runs probes:

* ``calibrated_<family>[_free]``: a window chosen by probe trainings (`calibrate.py`);
* ``auto``: the answer `prefsift recommend` chooses among `calibration.candidates` (`recommend.py`).

Their settings are the `calibration:` section (`CalibrationSettings`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.checks import check_fields
from ..core.errors import ConfigError
from ..core.windows import tail_grid
from ..selection.arms import check_candidates
from ..selection.kinds import ArmKind, kind_of, register_arm_kind

# Calibrated arms choose a family's window by probe trainings; the scores each family's windows are
# taken on (several: intersected, as LossDiff-IRM).
FAMILIES = {"tif": ("if",), "lossdiff": ("lossdiff",), "lossdiff_irm": ("lossdiff", "irm")}
CALIBRATED_ARMS = tuple(f"calibrated_{f}{s}" for f in FAMILIES for s in ("", "_free"))
AUTO = "auto"
# The `auto` arm's default candidates: all the data, the paper's windows, the one-sided rules on
# each score and their relabel variants, the teacher's, cDPO and cDPO by group (docs/method.md,
# "One-sided rules"; measured in docs/results.md). Those whose scores or data columns a run lacks
# are left out, each with its reason (the teacher's and group_cdpo need `teacher` and `group_noise`
# in scores.scores). Before 2026-12-07 (3): full, lossdiff_irm, tif, alignment_potential,
# large_margin, selective_dpo, robust_dpo.
DEFAULT_CANDIDATES = ("full", "lossdiff_irm", "tif", "top_if", "top_lossdiff", "top_irm",
                      "top_if_lossdiff", "top_teacher", "teacher_relabel", "top_if_relabel",
                      "top_lossdiff_relabel", "group_cdpo", "cdpo")
def calibrated_family(arm: str) -> tuple[str, bool] | None:
    """(family, free) of a calibrated arm's name, else None."""
    if arm not in CALIBRATED_ARMS:
        return None
    rest = arm[len("calibrated_"):]
    return (rest[: -len("_free")], True) if rest.endswith("_free") else (rest, False)


class ProbedKind(ArmKind):
    """An arm chosen by probe trainings: each probe is a short DPO training from θ (route dpo
    only)."""

    probed = True

    def check(self, arm, ctx, defer_unknown=False):
        if ctx.route != "dpo":
            raise ConfigError(key="arms", problem=f"lists {[arm]}, calibrated by DPO probe "
                                                  f"trainings, which route {ctx.route!r} does not "
                                                  f"run; drop them")

    def selectable_problem(self, arm):
        return (f"{arm!r} is not a rule over a scores table: it is chosen by short probe trainings "
                "judged on validation prompts, which only `prefsift run` makes; list it under a "
                "run config's `arms`, or give a window here (--window SCORE:LOW:HIGH)")

    def probe_plan(self, arm: str, settings: "CalibrationSettings", ctx) -> tuple[int, int]:
        """(probes, of which on every scored pair) the arm's choice trains."""
        raise NotImplementedError


class CalibratedKind(ProbedKind):
    name = "calibrated"

    def claims(self, arm, ctx):
        return arm in CALIBRATED_ARMS

    def names(self):
        return CALIBRATED_ARMS

    def needs(self, arm, ctx):
        return FAMILIES[calibrated_family(arm)[0]]

    def probe_plan(self, arm, settings, ctx):
        return probe_count(arm, settings), 0


class AutoKind(ProbedKind):
    name = "auto"

    def claims(self, arm, ctx):
        return arm == AUTO

    def names(self):
        return (AUTO,)

    def check(self, arm, ctx, defer_unknown=False):
        super().check(arm, ctx, defer_unknown)
        if ctx.candidates is not None:
            # the default leaves out what a run cannot give
            user_list = tuple(ctx.candidates) != DEFAULT_CANDIDATES
            check_candidates(list(ctx.candidates), ctx, user_list, defer_unknown)

    def probe_plan(self, arm, settings, ctx):
        # one probe per candidate (at most: a candidate the run cannot give is left out)
        whole = [c for c in settings.candidates if kind_of(c, ctx).cost(c).every_pair]
        return len(settings.candidates), len(whole)


register_arm_kind(CalibratedKind())
register_arm_kind(AutoKind())


def probe_count(arm: str, settings: "CalibrationSettings") -> int:
    """How many candidate windows (so probes) a calibrated arm tries."""
    family, free = calibrated_family(arm)
    return len(tail_grid(FAMILIES[family], settings.tails)) if free else len(settings.splits)


def probe_plan(arms, settings: "CalibrationSettings", ctx) -> tuple[int, int]:
    """(probes, of which on every scored pair) of the arms chosen by probes among ``arms``."""
    kinds = [(a, kind_of(a, ctx)) for a in arms]
    plans = [k.probe_plan(a, settings, ctx) for a, k in kinds if k.probed]
    return sum(p for p, _ in plans), sum(w for _, w in plans)


def probed_arms(arms, ctx=None) -> list[str]:
    """The arms among ``arms`` chosen by probe trainings."""
    return [a for a in arms if kind_of(a, ctx).probed]


def _check_splits(v):
    if (not isinstance(v, list) or not v
        or not all(isinstance(x, (int, float)) and 0 <= x <= 1 for x in v)):
        return (f"must be a non-empty list of numbers in [0, 1] (the bottom tail's share of the "
                f"cut), got {v!r}")
    return None


def _check_tails(v):
    if (not isinstance(v, list) or not v
        or not all(isinstance(x, (int, float)) and 0 <= x < 100 for x in v)):
        return f"must be a non-empty list of percentages in [0, 100), got {v!r}"
    return None


def _check_candidate_list(v):
    if (not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v)
        or len(set(v)) != len(v)):
        return f"must be a non-empty list of distinct arm names, got {v!r}"
    return None


@dataclass
class CalibrationSettings:
    """The `calibration:` section: the probes of the ``calibrated_*`` arms (their grid) and of the
    ``auto`` arm (its candidates)."""

    splits: list = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0], metadata={
        "help": "calibrated_<family> at the run's keep: the share of the dropped pairs cut from "
                "the bottom tail (0.5: the paper's middle window)", "check": _check_splits})
    tails: list = field(default_factory=lambda: [0, 10, 20, 30], metadata={
        "help": "calibrated_<family>_free: the percentages LOW and HIGH cut from the bottom and "
                "the top of each score, every pair of them", "check": _check_tails})
    probe_epochs: float = field(default=0.25,
                                metadata={"help": "each probe's training from θ, in epochs of its "
                                                  "window's pairs", "check": "> 0"})
    holdout: float = field(default=0.0, metadata={
        "help": "the share of the validation prompts (the last, in file order) held out from the "
                "scores (LossDiff's θ_val, IF's gradient, the teacher) to value the probes on "
                "alone; 0: the scores and the probes share every validation pair",
        "check": "[0, 1)"})
    prompts: int = field(default=300, metadata={"help": "validation prompts each probe is judged "
                                                        "on (the first N)",
                                                "check": ">= 1"})
    answers: int = field(default=4, metadata={"help": "answers per validation prompt",
                                              "check": ">= 1"})
    candidates: list = field(default_factory=lambda: list(DEFAULT_CANDIDATES), metadata={
        "help": "the auto arm's candidates (rules, treatments, windows, imported arms; 'full' "
                "among them): each is probed, and the best of those whose gain over all the data's "
                "probe has its 95 % interval above zero is trained; when none has, all the data. "
                "With the default list, a candidate the run cannot give (scores, data columns, "
                "objective) is left out with its reason", "check": _check_candidate_list})
    # Default loss (since 2026-12-07; it was judge): what a team has is its careful validation
    # pairs, not the lab's oracle, and of the judges a team has the loss chose best
    # (docs/results.md, "Honest testbeds").
    by: str = field(default="loss", metadata={"help": "loss: the objective's loss on the "
                                                      "validation pairs (lower is better; no "
                                                      "judge; the default); judge: the probe's "
                                                      "WinRate vs π_ref on the validation prompts "
            "(calibration.judge, else the run's judge)", "check": ("loss", "judge")})
    judge: str = field(default="", metadata={"help": "with by: judge, the judge of the probes (a "
                                                     "judge spec, e.g. llm:MODEL or, in the lab, "
                                                     "biased:0.5); empty: the run's judge. The "
                                                     "test evaluation always uses the run's judge"})

    def __post_init__(self):
        check_fields(self)
        if self.judge and self.by != "judge":
            raise ConfigError(key="judge", problem="is set, but by is loss (the default), which "
                                                   "values the probes with no judge: add by: judge")

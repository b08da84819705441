"""The kinds of arm a run config can name, registered once each: what an arm's name claims, which
columns of the scores table it reads, how it makes its training data, how it is checked, and what it
costs the planner. Nothing else switches on an arm's kind; every caller asks `kind_of(arm, ctx)`.

Built in (this module): ``full`` (every scored pair), ``imported`` (another run's selection column),
``window`` (percentile windows named under `windows`), ``treatment`` (a registered treatment:
weights, swapped labels or a robust loss) and ``rule`` (a registered selection rule; the kind of
any name no other kind claims). The pipeline registers the kinds chosen by probe trainings
(``calibrated``, ``auto``) itself, in `prefsift/pipeline/probed_kinds.py`."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.errors import ConfigError
from ..core.registry import Registry
from ..scoring.kinds import SCORES
from .imported import imported_selection
from .rules import RULES, apply_rule, parse_window, window_of
from .treatments import TREATMENTS, ArmData, treatment_data


@dataclass(frozen=True)
class ArmContext:
    """What of a run config the arm kinds read: the arms it defines (`imported`, `windows`), its
    objective and route, its kept fraction and ε (`label_noise`)."""

    imported: dict = field(default_factory=dict)
    windows: dict = field(default_factory=dict)
    objective: str = "dpo"
    route: str = "dpo"
    keep: float = 0.64
    label_noise: float | None = None
    scores: tuple = ()  # the scores the run computes (scores.scores)
    candidates: tuple | None = None  # the auto arm's candidates (calibration.candidates)

    @classmethod
    def of(cls, cfg) -> "ArmContext":
        """The context of a run config (a `RunConfig`, or anything with its attributes)."""
        wanted = getattr(getattr(cfg, "scores", None), "scores", "")
        candidates = getattr(getattr(cfg, "calibration", None), "candidates", None)
        return cls(imported=dict(getattr(cfg, "imported", None) or {}),
                   windows=dict(getattr(cfg, "windows", None) or {}),
                   objective=getattr(cfg, "objective", "dpo"), route=getattr(cfg, "route", "dpo"),
                   keep=getattr(cfg, "keep", 0.64), label_noise=getattr(cfg, "label_noise", None),
                   scores=tuple(x.strip() for x in str(wanted).split(",") if x.strip()),
                   candidates=tuple(candidates) if candidates is not None else None)


@dataclass(frozen=True)
class ArmCost:
    """What an arm's training costs the planner: on every scored pair (else about `keep` of them),
    in how many batched passes per step (cDPO: 2), one pair per forward pass (weighted arms)."""

    every_pair: bool = False
    passes: int = 1
    per_pair: bool = False


class ArmKind:
    """One kind of arm. A subclass overrides what differs; the defaults are a plain selection."""

    name = ""
    probed = False  # chosen by probe trainings on validation data: the pipeline supplies the choice
    # always trains other than plainly: its weights and swaps go to treatments.parquet
    treats = False
    fallback = False  # the kind of every name no other kind claims (one kind: rule)

    def claims(self, arm: str, ctx: ArmContext) -> bool:
        return False

    def names(self) -> tuple[str, ...]:
        """The arm names this kind knows by itself (those a config defines are not listed)."""
        return ()

    def needs(self, arm: str, ctx: ArmContext) -> tuple[str, ...]:
        """The scores-table columns the arm reads."""
        return ()

    def seeded(self, arm: str) -> bool:
        """Whether the arm's data is drawn anew for every training seed."""
        return False

    def data(self, arm: str, table, ctx: ArmContext, seed: int = 0, candidate: bool = False):
        """The arm's `ArmData` over the scores table, or why this table cannot give it (a
        string)."""
        raise NotImplementedError(f"arms of kind {self.name!r} are chosen by probes, not made from "
                                  f"a table")

    def check(self, arm: str, ctx: ArmContext, defer_unknown: bool = False) -> None:
        """A `ConfigError` when a run config with ``ctx`` cannot train the arm."""

    def candidate_problem(self, arm: str, ctx: ArmContext, user_list: bool) -> str | None:
        """Why the arm cannot be a candidate of the `auto` arm, or None."""
        return None

    def cost(self, arm: str) -> ArmCost:
        return ArmCost()

    def selectable_problem(self, arm: str) -> str | None:
        """Why `prefsift select` cannot apply the arm to a scores table alone, or None."""
        return None


ARM_KINDS: Registry[ArmKind] = Registry("arm kind", key="arms")


def register_arm_kind(kind: ArmKind, replace: bool = False) -> ArmKind:
    """Register a kind of arm (an `ArmKind` instance) under its ``name``."""
    return ARM_KINDS.register(kind.name, kind, replace=replace)


def kind_of(arm: str, ctx: ArmContext | None = None) -> ArmKind:
    """The kind an arm's name claims: the first registered kind that claims it, else the fallback
    (a registered rule, or an unknown name that `check_arms` refuses)."""
    ctx = ctx or ArmContext()
    kinds = [k for _, k in ARM_KINDS.items()]
    for k in kinds:
        if not k.fallback and k.claims(arm, ctx):
            return k
    return next(k for k in kinds if k.fallback)


def known_arms() -> list[str]:
    """Every arm name the registered kinds know (rules first, then the others in their order)."""
    kinds = sorted((k for _, k in ARM_KINDS.items()), key=lambda k: not k.fallback)
    return [n for k in kinds for n in k.names()]


def _lacking(needs, table) -> list[str]:
    return [c for c in needs if c in SCORES and c not in table]


class FullKind(ArmKind):
    name = "full"

    def claims(self, arm, ctx):
        return arm == "full"

    def data(self, arm, table, ctx, seed=0, candidate=False):
        return ArmData(mask=table["valid"].to_numpy(dtype=bool))

    def cost(self, arm):
        return ArmCost(every_pair=True)


class ImportedKind(ArmKind):
    name = "imported"

    def claims(self, arm, ctx):
        return arm in ctx.imported

    def data(self, arm, table, ctx, seed=0, candidate=False):
        return ArmData(mask=imported_selection(table, arm, ctx.imported[arm]))


class WindowKind(ArmKind):
    name = "window"

    def claims(self, arm, ctx):
        return arm in ctx.windows

    def needs(self, arm, ctx):
        parts = ctx.windows[arm].split(",")
        return tuple(dict.fromkeys(parse_window(p, key=f"windows.{arm}")[0] for p in parts
                                   if p.strip()))

    def data(self, arm, table, ctx, seed=0, candidate=False):
        return ArmData(mask=window_of(table, ctx.windows[arm], key=f"windows.{arm}")[0])


class TreatmentKind(ArmKind):
    name = "treatment"
    treats = True

    def claims(self, arm, ctx):
        return arm in TREATMENTS

    def names(self):
        return TREATMENTS.names()

    def needs(self, arm, ctx):
        return TREATMENTS.get(arm).needs

    def data(self, arm, table, ctx, seed=0, candidate=False):
        t = TREATMENTS.get(arm)
        if candidate and (lacking := _lacking(t.needs, table)):
            return (f"it needs the score(s) {', '.join(lacking)}, which this run does not compute "
                    f"(scores.scores)")
        if (not candidate and (lacking := [c for c in t.needs if c not in table])
            and t.missing is None):
            raise ConfigError(key="arms", problem=f"{arm!r} needs the score(s) {lacking}, which "
                                                  "the scores table does not have: add them to "
                                                  "scores.scores, or drop the arm")
        if t.missing is not None and not set(t.needs) <= set(table.columns):
            return f"it needs {t.missing}, which the data does not have"
        if candidate and ctx.objective not in t.objectives:
            return f"it trains {', '.join(t.objectives)}, not this run's objective {ctx.objective}"
        return treatment_data(table, arm, ctx.keep, ctx.label_noise)

    def check(self, arm, ctx, defer_unknown=False):
        t = TREATMENTS.get(arm)
        if ctx.route != "dpo":
            raise ConfigError(key="arms",
                              problem=f"lists {arm!r}, which trains through DPOTrainer; route "
                                      f"{ctx.route!r} trains a reward model: drop it")
        if ctx.objective not in t.objectives:
            raise ConfigError(key="arms", problem=f"lists {arm!r}, which trains objective(s) "
                                                  f"{', '.join(t.objectives)}, not "
                                                  f"{ctx.objective!r}; "
                                                  "drop the arm or change `objective`")

    def candidate_problem(self, arm, ctx, user_list):
        t = TREATMENTS.get(arm)
        if t.missing is not None:
            return f"lists {arm!r}, an oracle ({t.help}), not an answer to recommend; drop it"
        if ctx.objective not in t.objectives and user_list:
            return f"lists {arm!r}, which does not train objective {ctx.objective!r}; drop it"
        return None

    def cost(self, arm):
        t = TREATMENTS.get(arm)
        return ArmCost(every_pair=t.every_pair, passes=t.passes, per_pair=t.per_pair)

    def selectable_problem(self, arm):
        return (f"{arm!r} is a treatment, not a selection: it changes how the pairs are trained on "
                f"({TREATMENTS.get(arm).help}), which only `prefsift run` does; list it under a "
                f"run config's `arms`")


class RuleKind(ArmKind):
    name = "rule"
    fallback = True

    def claims(self, arm, ctx):
        return arm in RULES

    def names(self):
        return RULES.names()

    def needs(self, arm, ctx):
        return RULES.get(arm).needs if arm in RULES else ()

    def seeded(self, arm):
        return arm in RULES and RULES.get(arm).seeded

    def data(self, arm, table, ctx, seed=0, candidate=False):
        if candidate and (lacking := _lacking(self.needs(arm, ctx), table)):
            return (f"it needs the score(s) {', '.join(lacking)}, which this run does not compute "
                    f"(scores.scores)")
        rule = RULES.get(arm, key="arms")
        if rule.missing is not None and not set(rule.needs) <= set(table.columns):
            return f"it needs {rule.missing}, which the data does not have"
        mask = apply_rule(table, arm, ctx.keep, seed=seed)  # (a missing score: an error naming it)
        if rule.order is not None:  # a curriculum: its pairs trained in this column's order
            return ArmData(mask=mask, order=table[rule.order].to_numpy(dtype=float),
                           note=f"trained in ascending {rule.order}")
        return ArmData(mask=mask)

    def candidate_problem(self, arm, ctx, user_list):
        if (arm in RULES
            and (RULES.get(arm).seeded or {"pair_type",
                                           "label_correct"} & set(RULES.get(arm).needs))):
            return (f"lists {arm!r}, a baseline ({RULES.get(arm).help}), not an answer to "
                    f"recommend; drop it")
        return None


for _kind in (FullKind(), ImportedKind(), WindowKind(), TreatmentKind(), RuleKind()):
    register_arm_kind(_kind)


def is_plain(data: ArmData) -> bool:
    """Whether an arm's data trains as a plain selection (its pairs, the run's loss, shuffled)."""
    return (data.flip is None and data.weight is None and data.loss_type is None
            and not data.conservative and data.order is None)

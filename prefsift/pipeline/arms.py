"""What an arm of a run is, decided here and nowhere else.

An arm is one training (per seed) on one selection of the scored pairs. Its name says which kind:

* ``full``: every scored pair;
* a name under the config's ``imported``: another run's selection column, matched by pair id;
* a name under ``windows``: percentile windows on scores, intersected;
* ``calibrated_<family>[_free]``: a window chosen by probe trainings on validation data
  (`pipeline/calibrate.py`);
* ``auto``: the answer `prefsift recommend` chooses among `calibration.candidates` by probe
  trainings on validation data (`pipeline/recommend.py`);
* a registered treatment (`prefsift.treatments.TREATMENTS`): weights, swapped labels or a robust
  loss, on pairs it chooses (route dpo);
* any other name: a registered selection rule (`prefsift.selection.RULES`).

`arm_kind` classifies a name; `check_arms` checks a config's arms before any work; the selections
stage dispatches on `arm_kind`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, did_you_mean
from ..scoring.kinds import SCORES
from ..selection import RULES
from ..treatments import TREATMENTS

# Calibrated arms choose a family's window by probe trainings; the scores each family's windows are
# taken on (several: intersected, as LossDiff-IRM).
FAMILIES = {"tif": ("if",), "lossdiff": ("lossdiff",), "lossdiff_irm": ("lossdiff", "irm")}
CALIBRATED_ARMS = tuple(f"calibrated_{f}{s}" for f in FAMILIES for s in ("", "_free"))
AUTO = "auto"
# The `auto` arm's default candidates: all the data, the paper's windows, the one-sided rules on each
# score and their relabel variants, the teacher's, cDPO and cDPO by group (docs/method.md, "One-sided
# rules"; measured in docs/results.md). Those whose scores or data columns a run lacks are left out,
# each with its reason (the teacher's and group_cdpo need `teacher` and `group_noise` in scores.scores).
# Before 2026-12-07 (3): full, lossdiff_irm, tif, alignment_potential, large_margin, selective_dpo, robust_dpo.
DEFAULT_CANDIDATES = ("full", "lossdiff_irm", "tif", "top_if", "top_lossdiff", "top_irm", "top_if_lossdiff",
                      "top_teacher", "teacher_relabel", "top_if_relabel", "top_lossdiff_relabel", "group_cdpo", "cdpo")
_TABLE_COLUMNS = ("id", "valid", "reason")


def calibrated_family(arm: str) -> tuple[str, bool] | None:
    """(family, free) of a calibrated arm's name, else None."""
    if arm not in CALIBRATED_ARMS:
        return None
    rest = arm[len("calibrated_"):]
    return (rest[: -len("_free")], True) if rest.endswith("_free") else (rest, False)


def arm_kind(arm: str, imported: dict | None = None, windows: dict | None = None) -> str:
    """"full", "imported", "window", "calibrated", "auto", "treatment" or "rule" (a registered rule,
    or an unknown name: `check_arms` refuses those)."""
    if arm == "full":
        return "full"
    if arm == AUTO:
        return "auto"
    if arm in (imported or {}):
        return "imported"
    if arm in (windows or {}):
        return "window"
    if arm in CALIBRATED_ARMS:
        return "calibrated"
    if arm in TREATMENTS:
        return "treatment"
    return "rule"


def arm_needs(arm: str, imported: dict | None = None, windows: dict | None = None) -> tuple[str, ...]:
    """The scores-table columns an arm reads (none for imported arms and `full`)."""
    kind = arm_kind(arm, imported, windows)
    if kind == "calibrated":
        return FAMILIES[calibrated_family(arm)[0]]
    if kind == "window":
        from ..selection import parse_window

        return tuple(dict.fromkeys(parse_window(part, key=f"windows.{arm}")[0]
                                   for part in windows[arm].split(",") if part.strip()))
    if kind == "rule" and arm in RULES:
        return RULES.get(arm).needs
    if kind == "treatment":
        return TREATMENTS.get(arm).needs
    return ()


def check_selectable(rule: str, key: str = "rule") -> str:
    """``rule`` if `prefsift select` can apply it to a scores table alone, else a `ConfigError`."""
    if rule in CALIBRATED_ARMS or rule == AUTO:
        raise ConfigError(key=key, problem=f"{rule!r} is not a rule over a scores table: it is chosen by short "
                                           "probe trainings judged on validation prompts, which only `prefsift run` "
                                           f"makes; list it under a run config's `arms`, or give a window here "
                                           "(--window SCORE:LOW:HIGH)")
    if rule in TREATMENTS:
        raise ConfigError(key=key, problem=f"{rule!r} is a treatment, not a selection: it changes how the pairs are "
                                           f"trained on ({TREATMENTS.get(rule).help}), which only `prefsift run` does; "
                                           "list it under a run config's `arms`")
    from ..selection import check_rule

    return check_rule(rule, key=key)


def _check_arm_name(name, key: str) -> None:
    """An arm defined in the config names a folder: letters, digits, '_' and '-' only."""
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(key=key, problem="is not a usable name: use letters, digits, '_' and '-' only "
                                           "(it names a folder)")


def check_arms(arms: list, imported: dict, windows: dict, wanted_scores: list[str], route: str,
               defer_unknown: bool = False, objective: str = "dpo", candidates: list | None = None) -> None:
    """Every arm of a run config known, every defined arm well named and specified, and every score
    an arm reads asked for; a `ConfigError` naming the key otherwise. ``defer_unknown``: a name no
    rule has yet is let through (a plugin not yet imported may register it)."""
    from ..selection import check_windows

    for name, spec in imported.items():
        key = f"imported.{name}"
        if name in RULES or name in CALIBRATED_ARMS or name in TREATMENTS or name in _TABLE_COLUMNS or name == AUTO:
            raise ConfigError(key=key, problem=f"clashes with a built-in arm or a selection.parquet column; "
                                               f"give it another name (e.g. 'b_{name}')")
        _check_arm_name(name, key)
        path, _, column = spec.rpartition(":") if isinstance(spec, str) else ("", "", "")
        if not path or not column:
            raise ConfigError(key=key, problem=f": expected 'RUN/selection.parquet:COLUMN', got {spec!r}")
    for name, spec in windows.items():
        _check_arm_name(name, f"windows.{name}")
        if name in RULES or name in CALIBRATED_ARMS or name in TREATMENTS or name in imported or name == AUTO:
            raise ConfigError(key=f"windows.{name}", problem="names a rule or an imported arm already; rename it")
        check_windows(spec, key=f"windows.{name}")
    known = list(RULES.names()) + list(CALIBRATED_ARMS) + list(TREATMENTS.names()) + [AUTO]
    if (bad := [a for a in arms if a not in known and a not in imported and a not in windows]) and not defer_unknown:
        raise ConfigError(key="arms", problem=f"has unknown arm(s) {bad}{did_you_mean(bad[0], known)}; choose "
                                              f"among {', '.join(known)}, or define them under `imported`/`windows`")
    calibrated = [a for a in arms if arm_kind(a, imported, windows) in ("calibrated", "auto")]
    if calibrated and route != "dpo":
        raise ConfigError(key="arms", problem=f"lists {calibrated}, calibrated by DPO probe trainings, which route "
                                              f"{route!r} does not run; drop them")
    treated = [a for a in arms if arm_kind(a, imported, windows) == "treatment"]
    if treated and route != "dpo":
        raise ConfigError(key="arms", problem=f"lists {treated}, which train through DPOTrainer; route {route!r} "
                                              "trains a reward model: drop them")
    for arm in treated:
        if objective not in TREATMENTS.get(arm).objectives:
            raise ConfigError(key="arms", problem=f"lists {arm!r}, which trains objective(s) "
                                                  f"{', '.join(TREATMENTS.get(arm).objectives)}, not {objective!r}; "
                                                  "drop the arm or change `objective`")
    if AUTO in arms and candidates is not None:
        check_candidates(candidates, imported, windows, wanted_scores, objective, defer_unknown)
    for arm in arms:
        if arm_kind(arm, imported, windows) == "window":
            continue  # (its scores are checked against the table when it is selected)
        lacking = [c for c in arm_needs(arm, imported, windows) if c in SCORES and c not in wanted_scores]
        if lacking:
            raise ConfigError(key="arms", problem=f"lists {arm!r}, which needs the {', '.join(lacking)} score(s), "
                                                  f"but scores.scores is {','.join(wanted_scores)!r}: add them there, "
                                                  "or drop the arm")


def check_candidates(candidates: list, imported: dict, windows: dict, wanted_scores: list[str], objective: str,
                     defer_unknown: bool = False) -> None:
    """The `auto` arm's candidates: arms whose data is one thing (not drawn anew per seed, not an
    oracle, not chosen by probes themselves), `full` among them (the answer when the probes cannot
    tell the others from it), and, where the list is the user's, every score they read asked for."""
    from ..selection import RULES

    key = "calibration.candidates"
    user_list = tuple(candidates) != DEFAULT_CANDIDATES  # the default list leaves out what the run cannot give
    if "full" not in candidates:
        raise ConfigError(key=key, problem="must include 'full': all the data is the answer the recommendation "
                                           "falls back to, and the baseline every candidate's probe is compared with")
    for c in candidates:
        kind = arm_kind(c, imported, windows)
        if kind in ("calibrated", "auto"):
            raise ConfigError(key=key, problem=f"lists {c!r}, which is itself chosen by probes; give rules, "
                                               "treatments, windows or imported arms")
        if kind == "rule" and c in RULES and (RULES.get(c).seeded or {"pair_type", "label_correct"} & set(RULES.get(c).needs)):
            raise ConfigError(key=key, problem=f"lists {c!r}, a baseline ({RULES.get(c).help}), not an answer to "
                                               "recommend; drop it")
        if kind == "treatment" and TREATMENTS.get(c).missing is not None:
            raise ConfigError(key=key, problem=f"lists {c!r}, an oracle ({TREATMENTS.get(c).help}), not an answer "
                                               "to recommend; drop it")
        if kind == "treatment" and objective not in TREATMENTS.get(c).objectives and user_list:
            raise ConfigError(key=key, problem=f"lists {c!r}, which does not train objective {objective!r}; drop it")
        known = kind != "rule" or c in RULES
        if not known and not defer_unknown:
            names = list(RULES.names()) + list(TREATMENTS.names())
            raise ConfigError(key=key, problem=f"lists unknown arm {c!r}{did_you_mean(c, names)}")
        lacking = [x for x in arm_needs(c, imported, windows) if x in SCORES and x not in wanted_scores] if known else []
        if lacking and user_list:
            raise ConfigError(key=key, problem=f"lists {c!r}, which needs the {', '.join(lacking)} score(s), but "
                                               f"scores.scores is {','.join(wanted_scores)!r}: add them there, or "
                                               "drop the candidate")


def arm_data(cfg, table, arm: str, seed: int = 0, candidate: bool = False):
    """One arm's data over the scores table, as an `ArmData`; or, when this table cannot give it (a
    rule whose data column is missing), the reason as a string. Seeded rules (`random`) draw with
    ``seed``. Not for the arms chosen by probes (calibrated, `auto`). A ``candidate`` of the auto arm
    is also left out, with the reason, where the run computes no score it reads or trains another
    objective (an arm listed in `arms` is an error then, raised here or before)."""
    from ..selection import RULES, apply_rule, window_of
    from ..treatments import ArmData, treatment_data

    kind = arm_kind(arm, cfg.imported, cfg.windows)
    assert kind not in ("calibrated", "auto"), arm
    if kind == "full":
        return ArmData(mask=table["valid"].to_numpy(dtype=bool))
    if kind == "imported":
        from .inputs import imported_selection

        return ArmData(mask=imported_selection(table, arm, cfg.imported[arm]))
    if kind == "window":
        return ArmData(mask=window_of(table, cfg.windows[arm], key=f"windows.{arm}")[0])
    lacking = [c for c in arm_needs(arm, cfg.imported, cfg.windows) if c in SCORES and c not in table]
    if candidate and lacking:
        return f"it needs the score(s) {', '.join(lacking)}, which this run does not compute (scores.scores)"
    if kind == "treatment":
        t = TREATMENTS.get(arm)
        if t.missing is not None and not set(t.needs) <= set(table.columns):
            return f"it needs {t.missing}, which the data does not have"
        if candidate and cfg.objective not in TREATMENTS.get(arm).objectives:
            return f"it trains {', '.join(TREATMENTS.get(arm).objectives)}, not this run's objective {cfg.objective}"
        return treatment_data(table, arm, cfg.keep, cfg.label_noise)
    rule = RULES.get(arm, key="arms")
    if rule.missing is not None and not set(rule.needs) <= set(table.columns):
        return f"it needs {rule.missing}, which the data does not have"
    mask = apply_rule(table, arm, cfg.keep, seed=seed)  # (a missing score: an error naming it)
    if rule.order is not None:  # a curriculum: its pairs trained in this column's order
        return ArmData(mask=mask, order=table[rule.order].to_numpy(dtype=float),
                       note=f"trained in ascending {rule.order}")
    return ArmData(mask=mask)


def check_treatment_columns(table, arm: str) -> None:
    """A `ConfigError` naming the scores a treatment arm needs when the table lacks them."""
    t = TREATMENTS.get(arm)
    missing = [c for c in t.needs if c not in table]
    if missing and t.missing is None:  # (an oracle's data column: `arm_data` skips the arm with the reason)
        raise ConfigError(key="arms", problem=f"{arm!r} needs the score(s) {missing}, which the scores table does not "
                                              "have: add them to scores.scores, or drop the arm")


def treatments_frame(table, treated: dict):
    """Each pair's id and, per treatment arm, its weight (0: not in the arm's data) and whether its
    chosen and rejected are swapped."""
    out = table[["id", "valid"]].copy()
    for arm, data in treated.items():
        out[f"{arm}:weight"] = data.weight if data.weight is not None else data.mask.astype(float)
        out[f"{arm}:swapped"] = data.flip if data.flip is not None else np.zeros(len(table), dtype=bool)
        if data.epsilons is not None:
            out[f"{arm}:epsilon"] = data.epsilons
    return out


def treated_records(pairs, mask: np.ndarray, treated, ids: list, seed: int | None = None,
                    block: int = 1) -> tuple[list[dict], str]:
    """The arm's TRL rows (its pairs in file order, chosen and rejected swapped where it says, each
    with its `pair_weight` when it weights) and the key of that data. An ordered arm's rows are in
    ascending order; with ``seed``, shuffled within consecutive blocks of ``block`` pairs, so that
    the curriculum holds block by block and each training seed still sees its own batches."""
    from ..train.weighted import EPSILON, WEIGHT
    from .rundir import stage_key

    rows = [i for i, (r, m) in enumerate(zip(pairs.rows, mask)) if m and r.valid]
    records = pairs.records(mask)
    assert len(rows) == len(records) == len(ids)
    for rec, i in zip(records, rows):
        if treated.flip is not None and treated.flip[i]:
            rec["chosen"], rec["rejected"] = rec["rejected"], rec["chosen"]
        if treated.weight is not None:
            rec[WEIGHT] = float(treated.weight[i])
        if treated.epsilons is not None:
            rec[EPSILON] = float(treated.epsilons[i])
    flipped = [r for r, i in zip(ids, rows) if treated.flip is not None and treated.flip[i]]
    weights = [round(float(treated.weight[i]), 9) for i in rows] if treated.weight is not None else None
    if treated.order is not None:  # ascending, ties in file order (a stable sort)
        ranked = sorted(range(len(rows)), key=lambda j: treated.order[rows[j]])
        if seed is not None and block > 1:
            rng = np.random.default_rng(seed)
            ranked = [j for b in range(0, len(ranked), block) for j in rng.permutation(ranked[b:b + block])]
        records, ids = [records[j] for j in ranked], [ids[j] for j in ranked]
    # (each pair's ε only where the arm has one, so that the other arms' keys stay as they were)
    epsilons = [round(float(treated.epsilons[i]), 9) for i in rows] if treated.epsilons is not None else None
    return records, stage_key(ids, flipped, weights, *([epsilons] if epsilons is not None else []))


def is_plain(data) -> bool:
    """Whether an arm's data trains as a plain selection (its pairs, the run's loss, shuffled)."""
    return (data.flip is None and data.weight is None and data.loss_type is None and not data.conservative
            and data.order is None)


def training_data(pairs, mask: np.ndarray, data, ids: list, seed: int, batch_size: int):
    """(TRL rows, key of that data, loss variant or None) of an arm: its pairs in file order, or, with
    ``data`` (its `ArmData`), with its swaps, weights, loss and order (a curriculum in blocks of 4
    batches, shuffled within each by ``seed``, so that seeds differ as other arms' do)."""
    from ..train.dpo import LossVariant
    from .rundir import stage_key

    if data is None:
        return pairs.records(mask), stage_key(ids), None
    records, data_key = treated_records(pairs, mask, data, ids, seed=seed, block=4 * batch_size)
    variant = None
    if data.loss_type or data.conservative or data.order is not None:
        variant = LossVariant(data.loss_type, data.epsilon, data.conservative, in_order=data.order is not None)
    return records, data_key, variant


def _check_splits(v):
    if not isinstance(v, list) or not v or not all(isinstance(x, (int, float)) and 0 <= x <= 1 for x in v):
        return f"must be a non-empty list of numbers in [0, 1] (the bottom tail's share of the cut), got {v!r}"
    return None


def _check_tails(v):
    if not isinstance(v, list) or not v or not all(isinstance(x, (int, float)) and 0 <= x < 100 for x in v):
        return f"must be a non-empty list of percentages in [0, 100), got {v!r}"
    return None


def _check_candidate_list(v):
    if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v) or len(set(v)) != len(v):
        return f"must be a non-empty list of distinct arm names, got {v!r}"
    return None


@dataclass
class CalibrationSettings:
    """The `calibration:` section: the probes of the ``calibrated_*`` arms (their grid) and of the
    ``auto`` arm (its candidates)."""

    splits: list = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0], metadata={
        "help": "calibrated_<family> at the run's keep: the share of the dropped pairs cut from the bottom tail "
                "(0.5: the paper's middle window)", "check": _check_splits})
    tails: list = field(default_factory=lambda: [0, 10, 20, 30], metadata={
        "help": "calibrated_<family>_free: the percentages LOW and HIGH cut from the bottom and the top of each score, "
                "every pair of them", "check": _check_tails})
    probe_epochs: float = field(default=0.25, metadata={"help": "each probe's training from θ, in epochs of its "
                                                                "window's pairs", "check": "> 0"})
    holdout: float = field(default=0.0, metadata={
        "help": "the share of the validation prompts (the last, in file order) held out from the scores (LossDiff's "
                "θ_val, IF's gradient, the teacher) to value the probes on alone; 0: the scores and the probes share "
                "every validation pair", "check": "[0, 1)"})
    prompts: int = field(default=300, metadata={"help": "validation prompts each probe is judged on (the first N)",
                                                "check": ">= 1"})
    answers: int = field(default=4, metadata={"help": "answers per validation prompt", "check": ">= 1"})
    candidates: list = field(default_factory=lambda: list(DEFAULT_CANDIDATES), metadata={
        "help": "the auto arm's candidates (rules, treatments, windows, imported arms; 'full' among them): each is "
                "probed, and the best of those whose gain over all the data's probe has its 95 % interval above "
                "zero is trained; when none has, all the data. With the default list, a candidate the run cannot "
                "give (scores, data columns, objective) is left out with its reason", "check": _check_candidate_list})
    # Default loss (since 2026-12-07; it was judge): what a team has is its careful validation pairs, not
    # the lab's oracle, and of the judges a team has the loss chose best (docs/results.md, "Honest testbeds").
    by: str = field(default="loss", metadata={"help": "loss: the objective's loss on the validation pairs (lower is "
                                                      "better; no judge; the default); judge: the probe's WinRate vs "
                                                      "π_ref on the validation prompts (calibration.judge, else the "
                                                      "run's judge)", "check": ("loss", "judge")})
    judge: str = field(default="", metadata={"help": "with by: judge, the judge of the probes (a judge spec, e.g. "
                                                     "llm:MODEL or, in the lab, biased:0.5); empty: the run's judge. "
                                                     "The test evaluation always uses the run's judge"})

    def __post_init__(self):
        from ..checks import check_fields

        check_fields(self)
        if self.judge and self.by != "judge":
            raise ConfigError(key="judge", problem="is set, but by is loss (the default), which values the probes "
                                                   "with no judge: add by: judge")

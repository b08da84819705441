"""A run config's arms, whatever their kind (`kinds.py`): checked before any work, their columns,
and their data over a scores table. Each function asks the arm's kind and never names one."""

from __future__ import annotations

from ..core.errors import ConfigError, did_you_mean
from ..scoring.kinds import SCORES
from .kinds import ArmContext, kind_of, known_arms  # noqa: F401  (ArmContext: re-exported)
from .rules import check_rule, check_windows

# selection.parquet's own columns: no arm may take their names
_TABLE_COLUMNS = ("id", "valid", "reason")


def arm_needs(arm: str, ctx: ArmContext | None = None) -> tuple[str, ...]:
    """The scores-table columns an arm reads (none for imported arms and `full`)."""
    ctx = ctx or ArmContext()
    return kind_of(arm, ctx).needs(arm, ctx)


def arm_data(cfg, table, arm: str, seed: int = 0, candidate: bool = False):
    """One arm's data over the scores table, as an `ArmData`; or, when this table cannot give it (a
    rule whose data column is missing), the reason as a string. Seeded rules (`random`) draw with
    ``seed``. Not for the arms chosen by probes (calibrated, `auto`). A ``candidate`` of the auto
    arm is also left out, with the reason, where the run computes no score it reads or trains
    another objective (an arm listed in `arms` is an error then, raised here or before)."""
    ctx = cfg if isinstance(cfg, ArmContext) else ArmContext.of(cfg)
    kind = kind_of(arm, ctx)
    assert not kind.probed, arm
    return kind.data(arm, table, ctx, seed=seed, candidate=candidate)


def check_selectable(rule: str, key: str = "rule") -> str:
    """``rule`` if `prefsift select` can apply it to a scores table alone, else a `ConfigError`."""
    kind = kind_of(rule)
    if (problem := kind.selectable_problem(rule)) is not None:
        raise ConfigError(key=key, problem=problem)

    return check_rule(rule, key=key)


def _check_arm_name(name, key: str) -> None:
    """An arm defined in the config names a folder: letters, digits, '_' and '-' only."""
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(key=key,
                          problem="is not a usable name: use letters, digits, '_' and '-' only "
                                  "(it names a folder)")


def check_arms(arms: list, ctx: ArmContext, defer_unknown: bool = False) -> None:
    """Every arm of a run config known, every defined arm well named and specified, and every score
    an arm reads asked for; a `ConfigError` naming the key otherwise. ``defer_unknown``: a name no
    rule has yet is let through (a plugin not yet imported may register it)."""
    known = known_arms()
    for name, spec in ctx.imported.items():
        key = f"imported.{name}"
        if name in known or name in _TABLE_COLUMNS:
            raise ConfigError(key=key,
                              problem=f"clashes with a built-in arm or a selection.parquet column; "
                                      f"give it another name (e.g. 'b_{name}')")
        _check_arm_name(name, key)
        path, _, column = spec.rpartition(":") if isinstance(spec, str) else ("", "", "")
        if not path or not column:
            raise ConfigError(key=key,
                              problem=f": expected 'RUN/selection.parquet:COLUMN', got {spec!r}")
    for name, spec in ctx.windows.items():
        _check_arm_name(name, f"windows.{name}")
        if name in known or name in ctx.imported:
            raise ConfigError(key=f"windows.{name}",
                              problem="names a rule or an imported arm already; rename it")
        check_windows(spec, key=f"windows.{name}")
    if (bad := [a for a in arms
                if a not in known and a not in ctx.imported and a not in ctx.windows]) \
            and not defer_unknown:
        raise ConfigError(key="arms",
                          problem=f"has unknown arm(s) {bad}{did_you_mean(bad[0], known)}; choose "
                                  f"among {', '.join(known)}, or define them under "
                                  f"`imported`/`windows`")
    for arm in arms:
        kind_of(arm, ctx).check(arm, ctx, defer_unknown)
    for arm in arms:
        if arm in ctx.windows:
            continue  # (its scores are checked against the table when it is selected)
        lacking = [c for c in arm_needs(arm, ctx) if c in SCORES and c not in ctx.scores]
        if lacking:
            raise ConfigError(key="arms", problem=f"lists {arm!r}, which needs the "
                                                  f"{', '.join(lacking)} score(s), but "
                              f"scores.scores is {','.join(ctx.scores)!r}: add them there, "
                                                  "or drop the arm")


def check_candidates(candidates: list, ctx: ArmContext, user_list: bool,
                     defer_unknown: bool = False) -> None:
    """The `auto` arm's candidates: arms whose data is one thing (not drawn anew per seed, not an
    oracle, not chosen by probes themselves), `full` among them (the answer when the probes cannot
    tell the others from it), and, where the list is the user's, every score they read asked for."""
    key = "calibration.candidates"
    if "full" not in candidates:
        raise ConfigError(key=key, problem="must include 'full': all the data is the answer the "
                                           "recommendation falls back to, and the baseline every "
                                           "candidate's probe is compared with")
    known = known_arms()
    for c in candidates:
        kind = kind_of(c, ctx)
        if kind.probed:
            raise ConfigError(key=key,
                              problem=f"lists {c!r}, which is itself chosen by probes; give rules, "
                                      "treatments, windows or imported arms")
        if (problem := kind.candidate_problem(c, ctx, user_list)) is not None:
            raise ConfigError(key=key, problem=problem)
        is_known = not kind.fallback or c in known
        if not is_known and not defer_unknown:
            raise ConfigError(key=key, problem=f"lists unknown arm {c!r}{did_you_mean(c, known)}")
        lacking = ([x for x in arm_needs(c, ctx) if x in SCORES and x not in ctx.scores] if is_known
                   else [])
        if lacking and user_list:
            raise ConfigError(key=key, problem=f"lists {c!r}, which needs the {', '.join(lacking)} "
                                               f"score(s), but scores.scores is "
                                               f"{','.join(ctx.scores)!r}: add them there, or "
                                               "drop the candidate")

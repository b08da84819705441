"""The `auto` arm: which answer to train on, chosen by probes on validation data (`prefsift
recommend`).

Every candidate of `calibration.candidates` (all the data, the paper's and the field's rules, a
robust loss, ...) is probed: θ trained further for `probe_epochs` on that candidate's data (its
pairs, and its weights, swapped labels, loss or order where it has them) with the first training
seed, then valued on validation data only (`probes.ProbeJudge`: WinRate against π_ref on the
validation prompts, or the validation loss). The test prompts are never looked at.

Each candidate's probe is compared with all the data's, paired on the validation prompts (or
pairs). The recommendation is the candidate with the highest value among those whose paired gain
over all the data has a 95 % interval above zero. When none has, the probes cannot tell the
candidates from all the data: the recommendation says so, and it is all the data.

recommend/recommendation.json holds every candidate (its probe, or why it was left out), the
choice, the reason and the probes' cost. Each probe's result is kept in recommend/probe-NAME.json
under a key, so a rerun or a killed run reuses it; the probe's model folder is deleted."""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import asdict

import numpy as np

from ..core import artifacts
from ..eval.paired import paired_difference
from ..selection.arms import arm_data, arm_needs
from ..selection.kinds import ArmContext, is_plain
from ..selection.rows import training_data
from .probes import reusable_probe, run_probe
from .rundir import stage_key

FALLBACK = "full"


def choose(probes: dict[str, dict], n_boot: int = 2000, only: dict | None = None) -> tuple[str, str,
        dict]:
    """(the chosen candidate, why, each other candidate's paired gain over all the data).

    ``probes``: {candidate: its probe's row, with "value" and "per_prompt"}, `full` among them. A
    candidate is chosen only when its gain over all the data's probe, paired on the validation
    prompts (or pairs), has a 95 % interval above zero; of those, the one of highest value (gain,
    with ``only``). ``only``: {candidate: a mask over the prompts (or pairs)} for candidates
    compared on those alone (those that read the teacher: not on the pairs that trained it)."""
    base = np.asarray(probes[FALLBACK]["per_prompt"], dtype=float)
    gains = {}
    for name, row in probes.items():
        if name == FALLBACK or not np.isfinite(row["value"]):  # a diverged probe is never chosen
            continue
        keep = (only or {}).get(name, np.ones(len(base), dtype=bool))
        gains[name] = paired_difference(np.asarray(row["per_prompt"], dtype=float)[keep][None],
                                        base[keep][None], n_boot=n_boot)
    clear = [n for n, d in gains.items() if d.low > 0]
    if not clear:
        best = max(gains, key=lambda n: gains[n].mean, default=None)
        near = f" (the best, {best}, {_points(gains[best])})" if best is not None else ""
        return FALLBACK, ("the probes cannot tell the candidates from all the data: no candidate's "
                          f"gain over all the data's probe has its 95 % interval above zero{near}; "
                          f"so all the data"), gains
    # (compared on differing prompts, the highest gain; else the highest value, as always)
    best = max(clear, key=lambda n: gains[n].mean if only else probes[n]["value"])
    return best, f"its probe beats all the data's by {_points(gains[best])} on validation", gains


def _points(d) -> str:
    return f"{100 * d.mean:+.1f} [{100 * d.low:+.1f}, {100 * d.high:+.1f}] points"


def recommendation_stage(run, inp, theta_key: str, table, probe_judge):
    """Probe every candidate (reusing finished probes), choose on validation data, write
    recommend/recommendation.json; returns the chosen candidate's `ArmData` (its note names it)."""
    cfg, log = run.cfg, run.log
    st = cfg.calibration
    folder = run.dir.root / "recommend"
    seed = int(cfg.seeds[0])
    settings = dataclasses.replace(cfg.final, epochs=st.probe_epochs, seed=seed)
    log(f"[recommend] {len(st.candidates)} candidates, each probed by {st.probe_epochs:g} epoch "
        f"from θ and judged by {probe_judge.describe(st)}")
    probes, left_out, data = {}, {}, {}
    for i, name in enumerate(st.candidates):
        d = arm_data(cfg, table, name, candidate=True)
        if not isinstance(d, str) and not d.mask.any():
            d = "its selection holds no pair"
        if isinstance(d, str):
            left_out[name] = d
            log(f"  {name}: left out, {d}")
            continue
        data[name] = d
        ids = table.loc[d.mask, "id"].tolist()
        records, data_key, variant = training_data(inp.train, d.mask, None if is_plain(d) else d,
                                                   ids, seed, cfg.final.batch_size)
        key = stage_key(theta_key, data_key, asdict(settings), asdict(inp.objective),
                        asdict(inp.lora) if inp.lora else None, probe_judge.key,
                        asdict(variant) if variant else None)
        path = folder / f"probe-{name}.json"
        done = reusable_probe(path, key)
        if done is None:
            shutil.rmtree(folder / f"probe-{name}", ignore_errors=True)
            done = {"key": key, "candidate": name, "n_pairs": int(d.mask.sum()), "note": d.note,
                    **run_probe(run, inp, theta_key, records, data_key, settings,
                                folder / f"probe-{name}", f"probe-{name}",
                                f"probe {i + 1}/{len(st.candidates)} {name}", probe_judge,
                                variant=variant)}
            artifacts.write_json(path, done)
        probes[name] = done
        log(f"  {name}: {done['n_pairs']} pairs, "
            + (f"WinRate {100 * done['win_rate']:.1f} %" if "win_rate" in done
                                                    else f"validation loss {done['val_loss']:.4f}"))
    # A candidate that reads the teacher θ_c is compared on the validation data θ_c did not train
    # on.
    unseen = probe_judge.unseen
    only = {n: unseen for n in probes
            if unseen is not None and "teacher" in arm_needs(n, ArmContext.of(cfg))}
    chosen, why, gains = choose(probes, only=only)
    cost = sum(r["train_seconds"] + r["judge_seconds"] for r in probes.values())
    rows = [{"candidate": n, **{k: v for k, v in r.items() if k not in ("key", "per_prompt")},
             "gain_over_full": _gain(gains.get(n)),
             **({"compared_on": int(only[n].sum())} if n in only else {})}
            for n, r in probes.items()]
    artifacts.write_json(folder / "recommendation.json", {
        "chosen": chosen, "why": why, "by": st.by, "judged_by": probe_judge.describe(st),
        "probe_judge": probe_judge.spec, "probe_epochs": st.probe_epochs, "seed": seed,
        "candidates": rows, "left_out": left_out, "probe_seconds": cost,
        "probe_steps": int(sum(r["steps"] for r in probes.values()))})
    log(format_recommendation(rows, chosen, why, cost)
        + f"\n  (chosen by {probe_judge.describe(st)})")
    return dataclasses.replace(data[chosen], note=f"the recommendation, {chosen}")


def _gain(d) -> dict | None:
    return None if d is None else {"mean": d.mean, "low": d.low, "high": d.high}


def format_recommendation(rows: list[dict], chosen: str, why: str, cost: float) -> str:
    """The probes as a table (value, gain over all the data with its interval, pairs, seconds), the
    choice and its reason."""
    lines = [f"  {'candidate':<22} {'pairs':>6} {'probe':>9} {'− full [95 % CI]':>24} "
             f"{'seconds':>8}"]
    for r in rows:
        value = f"{100 * r['win_rate']:.1f} %" if "win_rate" in r else f"{r['val_loss']:.4f}"
        g = r["gain_over_full"]
        gain = ("" if g is None
                else f"{100 * g['mean']:+.1f} [{100 * g['low']:+.1f}, {100 * g['high']:+.1f}]")
        mark = " <-" if r["candidate"] == chosen else ""
        lines.append(f"  {r['candidate']:<22} {r['n_pairs']:>6} {value:>9} {gain:>24} "
                     f"{r['train_seconds'] + r['judge_seconds']:>8.0f}{mark}")
    return "\n".join(lines + [f"  recommended: {chosen}: {why}; the probes took {cost:.0f} s"])


def read_recommendation(rd) -> dict | None:
    """recommend/recommendation.json of run directory `rd`, or None when it has none."""
    path = rd.root / "recommend" / "recommendation.json"
    return json.loads(path.read_text()) if path.exists() else None

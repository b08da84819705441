"""Calibrated arms: a score's percentile window chosen on validation data by cheap probes.

The paper leaves its thresholds to manual tuning. An arm named ``calibrated_<family>`` (family
``tif``, ``lossdiff`` or ``lossdiff_irm``) tries every window of a small grid instead:

* ``calibrated_<family>`` keeps the run's fraction `keep` and chooses how the dropped pairs are
  split between the two tails of each score (`calibration.splits`; 0.5 is the paper's middle
  window, 0 cuts only the top, 1 only the bottom);
* ``calibrated_<family>_free`` chooses LOW % cut from the bottom and HIGH % from the top of each
  score (`calibration.tails` x `calibration.tails`), so the kept fraction is chosen too.

Each candidate's probe is θ trained further on that window's pairs for `probe_epochs` (a fraction
of an epoch, the arm's other settings, the first training seed), then valued on validation data:
by default (``by: loss``) by the objective's loss on the validation pairs (no judge needed), or with
``by: judge`` by its WinRate against π_ref on the *validation* prompts (``calibration.judge``, else
the run's judge). The arm is then trained, for every seed, on the
best candidate's pairs. The test prompts are never looked at. Each probe's result is kept in
calibrate/ARM/probeN.json under a key (a rerun or a killed run reuses it) and its model folder is
deleted; calibrate/ARM/calibration.json holds every candidate, the choice and the probes' cost."""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import asdict

import numpy as np

from ..core import artifacts
from ..selection.rules import split_windows, tail_grid, window_of

# re-exported
from .probed_arms import FAMILIES, CalibrationSettings, calibrated_family, probe_count  # noqa: F401

# re-exported
from .probes import ProbeJudge, reusable_probe, run_probe, validation_prompts  # noqa: F401
from .rundir import stage_key


def candidates(table, arm: str, keep: float,
               settings: CalibrationSettings) -> list[tuple[dict, np.ndarray]]:
    """The candidate windows of a calibrated arm over a scores table: (description, mask) each."""
    family, free = calibrated_family(arm)
    scores = FAMILIES[family]
    out = []
    if free:
        for spec in tail_grid(scores, settings.tails):
            lo, hi = (float(x) for x in spec.split(",")[0].split(":")[1:])
            out.append(({"window": spec, "low": lo, "high": 100 - hi}, window_of(table, spec)[0]))
        return out
    cols = [table[c].to_numpy(dtype=float) for c in scores]
    for split in settings.splits:
        mask, w = split_windows(cols, keep=keep, split=float(split))
        lo, hi = (1 - w) * split * 100, (1 - w) * (1 - split) * 100
        # (10 digits: the window as written selects the same pairs, so it can be copied into
        # `windows:`)
        out.append(({"window": ",".join(f"{c}:{lo:.10g}:{100 - hi:.10g}" for c in scores),
                     "split": float(split), "low": lo, "high": hi, "width": w}, mask))
    return out


def read_calibrations(rd, arms=None, seeds=()) -> dict[str, dict]:
    """{arm: its calibration.json} for the calibrated arms of run directory `rd` that have one
    (every such arm when `arms` is None), each with "arm_seconds": the arm's own training summed
    over the `seeds` whose stage.json exists, and "arm_seeds": how many those were."""
    folders = (sorted(p.parent for p in (rd.root / "calibrate").glob("*/calibration.json"))
               if arms is None else [rd.calibration(a) for a in arms])
    out = {}
    for folder in folders:
        path = folder / "calibration.json"
        if not path.exists():
            continue
        cal = json.loads(path.read_text())
        stages = [p for p in (rd.arm(cal["arm"], s) / "stage.json" for s in seeds) if p.exists()]
        cal["arm_seconds"] = float(sum(json.loads(p.read_text())["seconds"] for p in stages))
        cal["arm_seeds"] = len(stages)
        out[cal["arm"]] = cal
    return out


def calibration_stage(run, inp, theta_key: str, table, probe_judge: ProbeJudge,
                      arm: str) -> np.ndarray:
    """Probe every candidate window of ``arm`` (reusing finished probes), choose the best on
    validation data, write calibrate/ARM/calibration.json; returns the chosen window's mask."""
    cfg, log = run.cfg, run.log
    st = cfg.calibration
    cands = candidates(table, arm, cfg.keep, st)
    folder = run.dir.calibration(arm)
    settings = dataclasses.replace(cfg.final, epochs=st.probe_epochs, seed=int(cfg.seeds[0]))
    how = probe_judge.describe(st)
    log(f"[calibrate] {arm}: {len(cands)} probes of {st.probe_epochs:g} epoch from θ, judged by "
        f"{how}")
    results = []
    for i, (desc, mask) in enumerate(cands):
        ids = table.loc[mask, "id"].tolist()
        key = stage_key(theta_key, stage_key(ids), asdict(settings), asdict(inp.objective),
                        asdict(inp.lora) if inp.lora else None, probe_judge.key)
        path = folder / f"probe{i}.json"
        done = reusable_probe(path, key)
        if done is not None:  # a run killed after the result was written may have left the model
            shutil.rmtree(folder / f"probe{i}", ignore_errors=True)
        else:
            row = {"key": key, **desc, "n_pairs": int(mask.sum())}
            if mask.any():
                found = run_probe(run, inp, theta_key, inp.train.records(mask), stage_key(ids),
                                  settings, folder / f"probe{i}", f"probe-{arm}-{i}",
                                  f"probe {i + 1}/{len(cands)} {arm}", probe_judge)
                # (windows: compared by value)
                row.update({k: v for k, v in found.items() if k != "per_prompt"})
            else:
                row.update(value=float("-inf"), note="no pair in this window", steps=0,
                           train_seconds=0.0, judge_seconds=0.0)
            artifacts.write_json(path, row)
            done = row
        results.append(done)
        log(f"  probe {i + 1}/{len(cands)} {done['window']}: {done['n_pairs']} pairs, "
            + (f"WinRate {100 * done['win_rate']:.1f} %" if "win_rate" in done else
               f"validation loss {done['val_loss']:.4f}" if "val_loss" in done
               else done.get("note", "")))
    values = np.array([r["value"] for r in results], dtype=float)
    # a diverged probe never wins
    best = int(np.argmax(np.where(np.isnan(values), -np.inf, values)))
    cost = sum(r["train_seconds"] + r["judge_seconds"] for r in results)
    artifacts.write_json(folder / "calibration.json", {
        "arm": arm, "by": st.by, "probe_epochs": st.probe_epochs, "candidates": results,
        "chosen": best, "window": results[best]["window"], "n_pairs": results[best]["n_pairs"],
        "probe_seconds": cost, "probe_steps": int(sum(r["steps"] for r in results))})
    log(f"  {arm} chose {results[best]['window']} ({results[best]['n_pairs']} pairs); probes took "
        f"{cost:.0f} s")
    return cands[best][1]

"""Calibrated arms: a score's percentile window chosen on validation data by cheap probes.

The paper leaves its thresholds to manual tuning. An arm named ``calibrated_<family>`` (family
``tif``, ``lossdiff`` or ``lossdiff_irm``) tries every window of a small grid instead:

* ``calibrated_<family>`` keeps the run's fraction `keep` and chooses how the dropped pairs are
  split between the two tails of each score (`calibration.splits`; 0.5 is the paper's middle
  window, 0 cuts only the top, 1 only the bottom);
* ``calibrated_<family>_free`` chooses LOW % cut from the bottom and HIGH % from the top of each
  score (`calibration.tails` x `calibration.tails`), so the kept fraction is chosen too.

Each candidate's probe is θ trained further on that window's pairs for `probe_epochs` (a fraction
of an epoch, the arm's other settings, the first training seed), then judged on the *validation*
prompts against π_ref by the run's judge (its WinRate), or with ``by: loss`` by the objective's
loss on the validation pairs (no judge needed). The arm is then trained, for every seed, on the
best candidate's pairs. The test prompts are never looked at. Each probe's result is kept in
calibrate/ARM/probeN.json under a key (a rerun or a killed run reuses it) and its model folder is
deleted; calibrate/ARM/calibration.json holds every candidate, the choice and the probes' cost."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import asdict

import numpy as np

from .. import artifacts
from ..errors import ConfigError
from .rundir import stage_key

from .arms import FAMILIES, CalibrationSettings, calibrated_family  # noqa: F401  (CalibrationSettings: re-exported)


def probe_count(arm: str, settings: CalibrationSettings) -> int:
    """How many candidate windows (so probes) a calibrated arm tries."""
    from ..selection import tail_grid

    family, free = calibrated_family(arm)
    return len(tail_grid(FAMILIES[family], settings.tails)) if free else len(settings.splits)


def candidates(table, arm: str, keep: float, settings: CalibrationSettings) -> list[tuple[dict, np.ndarray]]:
    """The candidate windows of a calibrated arm over a scores table: (description, mask) each."""
    from ..selection import split_windows, tail_grid, window_of

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
        # (10 digits: the window as written selects the same pairs, so it can be copied into `windows:`)
        out.append(({"window": ",".join(f"{c}:{lo:.10g}:{100 - hi:.10g}" for c in scores), "split": float(split),
                     "low": lo, "high": hi, "width": w}, mask))
    return out


def validation_prompts(inp, n: int) -> list[str]:
    """The first `n` distinct prompts of the validation pairs, in file order: what probes are judged on."""
    return list(dict.fromkeys(r["prompt"] for r in inp.validation.records()))[:n]


def read_calibrations(rd, arms=None, seeds=()) -> dict[str, dict]:
    """{arm: its calibration.json} for the calibrated arms of run directory `rd` that have one (every
    such arm when `arms` is None), each with "arm_seconds": the arm's own training summed over the
    `seeds` whose stage.json exists, and "arm_seeds": how many those were."""
    folders = (sorted(p.parent for p in (rd.root / "calibrate").glob("*/calibration.json")) if arms is None
               else [rd.calibration(a) for a in arms])
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


class ProbeJudge:
    """How a probe is valued on validation data: WinRate against π_ref on the validation prompts
    (answers sampled as the test evaluation samples them), or the objective's validation loss."""

    def __init__(self, run, inp, judge):
        self.run, self.inp, self.judge = run, inp, judge
        st = run.cfg.calibration
        self.by = st.by
        self.seed = int(run.cfg.seeds[0])
        if self.by == "judge":
            from .answers import Answers

            prompts = validation_prompts(inp, st.prompts)
            if not prompts:
                raise ConfigError(key="validation", problem="holds no pairs, so the calibrated arms have no prompts "
                                                            "to judge their probes on: give validation pairs")
            self.answers = Answers(run, inp, prompts, per_prompt=st.answers)
            # What the test evaluation's key holds: the judge as configured, the sampler, the sampling.
            self.key = stage_key("judge", run.cfg.judge, judge.name, self.answers.sampler.name, stage_key(prompts),
                                 st.answers, run.cfg.temperature, run.cfg.max_new_tokens, self.seed)
        else:
            from ..scoring.columns import tokenized

            self.pairs = tokenized(inp.validation, inp.tokenizer)
            if not self.pairs:
                raise ConfigError(key="validation", problem="holds no usable pairs, so `calibration.by: loss` has "
                                                            "nothing to value the probes on: give validation pairs")
            self._ref = None
            # TRL's max_length: the loss is over the tokens the probe trained on (as TRL's eval_loss is).
            self.max_length = run.cfg.final.max_length
            self.key = stage_key("loss", self.max_length, stage_key([r["prompt"] + r["chosen"] + r["rejected"]
                                                                     for r in inp.validation.records()]))

    def _logps(self, model):
        from ..scoring.logprobs import LogprobSettings, compute_pair_logps

        pad = self.inp.tokenizer.pad_token_id
        return compute_pair_logps(model, self.pairs, pad if pad is not None else 0,
                                  LogprobSettings(max_length=self.max_length), progress=False)

    def value(self, model) -> dict:
        """The probe's metrics; "value" is the one candidates are compared on (higher is better)."""
        if self.by == "judge":
            from ..eval.winrate import evaluate_answers

            a = self.answers
            e = evaluate_answers(self.judge, a.asked, a.of(model, self.seed), a.reference(self.seed), seed=self.seed,
                                 n_prompts=len(a.prompts))
            return {"value": e.win_rate.win_rate, "win_rate": e.win_rate.win_rate, "wr_low": e.win_rate.low,
                    "wr_high": e.win_rate.high, "score": e.score_aligned}
        import torch

        if self._ref is None:
            self._ref = self._logps(self.inp.reference)
        p, r = self._logps(model), self._ref
        obj = self.inp.objective
        t = torch.as_tensor
        margin = obj.margin(t(p.chosen), t(p.rejected), t(r.chosen), t(r.rejected), t(p.chosen_tokens),
                            t(p.rejected_tokens))
        loss = float(obj.loss(margin).mean())  # the preference loss only (no sft_weight term)
        return {"value": -loss if np.isfinite(loss) else float("-inf"), "val_loss": loss,
                "val_margin": float(margin.mean())}


def calibration_stage(run, inp, theta_key: str, table, probe_judge: ProbeJudge, arm: str) -> np.ndarray:
    """Probe every candidate window of ``arm`` (reusing finished probes), choose the best on
    validation data, write calibrate/ARM/calibration.json; returns the chosen window's mask."""
    from ..train import train_stage

    cfg, log = run.cfg, run.log
    st = cfg.calibration
    cands = candidates(table, arm, cfg.keep, st)
    folder = run.dir.calibration(arm)
    settings = dataclasses.replace(cfg.final, epochs=st.probe_epochs, seed=int(cfg.seeds[0]))
    how = (f"WinRate vs π_ref on {len(probe_judge.answers.prompts)} validation prompts x {st.answers} answers"
           if st.by == "judge" else "the validation loss")
    log(f"[calibrate] {arm}: {len(cands)} probes of {st.probe_epochs:g} epoch from θ, judged by {how}")
    results = []
    for i, (desc, mask) in enumerate(cands):
        ids = table.loc[mask, "id"].tolist()
        key = stage_key(theta_key, stage_key(ids), asdict(settings), asdict(inp.objective),
                        asdict(inp.lora) if inp.lora else None, probe_judge.key)
        path = folder / f"probe{i}.json"
        done = _reusable(path, key)
        if done is not None:  # a run killed after the result was written may have left the model
            shutil.rmtree(folder / f"probe{i}", ignore_errors=True)
        else:
            row = {"key": key, **desc, "n_pairs": int(mask.sum())}
            if mask.any():
                t = time.time()
                model, info = train_stage(run.dir.warmup_model, inp.reference, inp.tokenizer, inp.train.records(mask),
                                          inp.objective, settings, folder / f"probe{i}", start_key=theta_key,
                                          data_key=stage_key(ids), name=f"probe-{arm}-{i}", lora=inp.lora,
                                          log=lambda *a, **k: None, label=f"probe {i + 1}/{len(cands)} {arm}",
                                          progress=run.progress)
                t_train = time.time() - t
                t = time.time()
                row.update(probe_judge.value(model), steps=info["steps"], train_seconds=t_train,
                           judge_seconds=time.time() - t)
                del model
                shutil.rmtree(folder / f"probe{i}", ignore_errors=True)  # its result is all a rerun needs
            else:
                row.update(value=float("-inf"), note="no pair in this window", steps=0, train_seconds=0.0,
                           judge_seconds=0.0)
            artifacts.write_json(path, row)
            done = row
        results.append(done)
        log(f"  probe {i + 1}/{len(cands)} {done['window']}: {done['n_pairs']} pairs, "
            + (f"WinRate {100 * done['win_rate']:.1f} %" if "win_rate" in done else
               f"validation loss {done['val_loss']:.4f}" if "val_loss" in done else done.get("note", "")))
    values = np.array([r["value"] for r in results], dtype=float)
    best = int(np.argmax(np.where(np.isnan(values), -np.inf, values)))  # a diverged probe never wins
    cost = sum(r["train_seconds"] + r["judge_seconds"] for r in results)
    artifacts.write_json(folder / "calibration.json", {
        "arm": arm, "by": st.by, "probe_epochs": st.probe_epochs, "candidates": results, "chosen": best,
        "window": results[best]["window"], "n_pairs": results[best]["n_pairs"], "probe_seconds": cost,
        "probe_steps": int(sum(r["steps"] for r in results))})
    log(f"  {arm} chose {results[best]['window']} ({results[best]['n_pairs']} pairs); probes took {cost:.0f} s")
    return cands[best][1]


def _reusable(path, key: str) -> dict | None:
    try:
        row = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return row if isinstance(row, dict) and row.get("key") == key else None

"""Claims across independently built labs: each arm's WinRate and its paired differences from
`random` and `full`, pooled over several run directories (one lab each), the bootstrap resampling
labs, then each lab's training seeds and its prompts
(`prefsift.eval.paired.paired_difference_over_labs`).

    python experiments/labs.py runs/e6/injected-lab0 runs/e6/injected-lab1 runs/e6/injected-lab2
    python experiments/labs.py --seeds 0,1,2 runs/e6/ratings-lab*   # only these seeds
    python experiments/labs.py --calibration runs/e6/ratings-lab*   # what the calibrated arms chose
    python experiments/labs.py --curves runs/e7/injected-lab*       # validation loss, margin

Nothing is recomputed: it reads each run's arms/ARM-seedS/eval.json (every answer's preference
against π_ref, answer-major), config.yaml and manifest.json. A lab counts once however many
seeds it has; an arm is compared with a baseline on the seeds both have."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from prefsift.eval.paired import (  # noqa: E402
    paired_difference_over_labs,
    per_prompt,
    smallest_detectable,
)
from prefsift.pipeline.calibrate import read_calibrations  # noqa: E402
from prefsift.pipeline.rundir import RunDir  # noqa: E402
from prefsift.runtime.devices import machine_line  # noqa: E402

BASELINES = ("random", "full")


def judged_trainings(run: Path, filename: str) -> list[tuple[str, int]]:
    """(arm, seed) of every arms/ARM-seedS/<filename> whose evaluation the manifest records as
    finished: a training killed before its judging, or left from another run's pass, is not
    counted."""
    import re

    stages = json.loads((run / "manifest.json").read_text())["stages"]
    found = [re.fullmatch(r"(.+)-seed(\d+)", p.parent.name)
             for p in (run / "arms").glob(f"*/{filename}")]
    return sorted((m[1], int(m[2])) for m in found if m and f"eval/{m[1]}/{int(m[2])}" in stages)


def lab_values(run: Path, seeds=None) -> dict:
    """{arm: {seed: per-prompt WinRate vs π_ref}}, each arm's pair count and the prompts' count of
    one finished run: every arms/ARM-seedS/eval.json the manifest records as finished (a later
    pass over the same folder may list fewer seeds in config.yaml; its earlier seeds still
    count)."""
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    values, pairs, prompts = {}, {}, set()
    order = {a: i for i, a in enumerate(list(BASELINES) + list(cfg["arms"]))}
    for arm, seed in sorted(judged_trainings(run, "eval.json"),
                            key=lambda x: (order.get(x[0], 99), x)):
        if seeds is not None and seed not in seeds:
            continue
        ev = json.loads((run / "arms" / f"{arm}-seed{seed}" / "eval.json").read_text())
        values.setdefault(arm, {})[seed] = per_prompt(ev["prefs"], ev["win_rate"]["n"])
        pairs.setdefault(arm, []).append(ev["n_pairs"])
        prompts.add(ev["win_rate"]["n"])
    return {"values": values, "pairs": {a: float(np.mean(p)) for a, p in pairs.items()},
            "config": cfg, "prompts": prompts}


def _grid(by_seed: dict, seeds) -> np.ndarray:
    return np.stack([by_seed[s] for s in seeds])


def arm_rows(labs: list[dict], n_boot: int = 2000, baselines=BASELINES) -> list[dict]:
    """Per arm: the pooled WinRate and differences (mean over labs, three-level bootstrap), the
    labs' own differences and their spread."""
    arms = [a for a in labs[0]["values"] if all(a in lab["values"] for lab in labs)]
    rows = []
    for arm in arms:
        row = {"arm": arm, "pairs": float(np.mean([lab["pairs"][arm] for lab in labs])),
               "seeds": [len(lab["values"][arm]) for lab in labs]}
        own = [_grid(lab["values"][arm], sorted(lab["values"][arm])) for lab in labs]
        wr = paired_difference_over_labs([(a, np.zeros_like(a)) for a in own], n_boot=n_boot)
        row.update(win_rate=wr.mean, low=wr.low, high=wr.high, per_lab=[d.mean for d in wr.per_lab])
        for base in baselines:
            if arm == base or not all(base in lab["values"] for lab in labs):
                continue
            grids = []
            for lab in labs:
                common = sorted(set(lab["values"][arm]) & set(lab["values"][base]))
                if not common:
                    break
                grids.append((_grid(lab["values"][arm], common),
                              _grid(lab["values"][base], common)))
            else:
                d = paired_difference_over_labs(grids, n_boot=n_boot)
                row[f"d_{base}"] = d
        rows.append(row)
    return rows


def _pct(x: float, sign: bool = False) -> str:
    return f"{100 * x:+.1f}" if sign else f"{100 * x:.1f}"


def labs_table(runs: list[Path], seeds=None, n_boot: int = 2000, baselines=BASELINES,
               arms=None) -> str:
    labs = [lab_values(r, seeds) for r in runs]
    # only these arms (a run folder copied from another run holds that run's arms too)
    if arms is not None:
        for lab in labs:
            lab["values"] = {a: v for a, v in lab["values"].items() if a in arms}
    rows = arm_rows(labs, n_boot, baselines)
    cfg = labs[0]["config"]
    prompts = sorted(set().union(*(lab["prompts"] for lab in labs)))
    hosts = {json.dumps(json.loads((r / "manifest.json").read_text()).get("versions",
                                                                          {}).get("host"),
                        sort_keys=True)
             for r in runs}
    if hosts == {"null"}:
        where = (f"the machine these tables were made on: {machine_line()} (the runs predate the "
                 f"machine record)")
    else:
        where = "; ".join(machine_line(json.loads(h)) if h != "null" else "not recorded"
                          for h in sorted(hosts))
    lines = [f"{len(runs)} labs ({', '.join(f'`{r}`' for r in runs)}); "
             f"{'/'.join(map(str, prompts))} prompts x {cfg['answers_per_prompt']} answers per "
             f"lab; keep {cfg['keep']}; machine: {where}", "",
             "| arm | pairs | WinRate vs π_ref (per lab) | "
             + " | ".join(f"− {b}: mean [across labs] [these labs] | per lab"
                          + (" | between-lab sd" if i == 0 else "")
                          for i, b in enumerate(baselines)) + " |",
             "|---|---|---|" + "---|---|" * len(baselines) + "---|"]

    def iv(d, lo, hi):
        return f"[{_pct(getattr(d, lo), True)}, {_pct(getattr(d, hi), True)}]"

    for r in rows:
        n_seeds = set(r["seeds"])
        cells = [r["arm"] + ("" if len(n_seeds) == 1
                             else f" ({'/'.join(map(str, r['seeds']))} seeds)"),
                 f"{r['pairs']:.0f}",
                 f"{_pct(r['win_rate'])} % ({' / '.join(_pct(x) for x in r['per_lab'])})"]
        for i, base in enumerate(baselines):
            d = r.get(f"d_{base}")
            if d is None:
                cells += ["–", "–"] + (["–"] if i == 0 else [])
                continue
            cells += [f"{_pct(d.mean, True)} {iv(d, 'low', 'high')} "
                      f"{iv(d, 'within_low', 'within_high')}",
                      " / ".join(f"{_pct(x.mean, True)} [{_pct(x.low, True)}, {_pct(x.high, True)}]"
                                 for x in d.per_lab)]
            if i == 0:
                cells.append(_pct(d.between_labs_sd))
        lines.append("| " + " | ".join(cells) + " |")
    seeds_line = sorted({len(v) for lab in labs for v in lab["values"].values()})
    first = f"d_{baselines[0]}"
    detectable = [smallest_detectable(x) for r in rows if first in r for x in r[first].per_lab]
    if detectable:
        lines += ["", f"Seeds per arm and lab: {'/'.join(map(str, seeds_line))}. Smallest "
                      f"difference from {baselines[0]} one "
                      f"lab detects (80 % power, 5 % level, from each lab's own paired interval): "
                      f"{_pct(min(detectable))}–{_pct(max(detectable))} points."]
    return "\n".join(lines)


def calibration_table(runs: list[Path]) -> str:
    """What each calibrated arm chose in each lab, and its probes' cost against its own training."""
    lines = ["| lab | arm | probes | chosen window | pairs | probe WinRate (chosen / paper's 0.5 "
             "split) | probes' time | arm's training (all seeds) |",
             "|---|---|---|---|---|---|---|---|"]
    for run in runs:
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        for arm, cal in read_calibrations(RunDir(run), None, cfg["seeds"]).items():
            cands = cal["candidates"]
            chosen = cands[cal["chosen"]]
            paper = next((c for c in cands if c.get("split") == 0.5), None)
            wr = (f"{_pct(chosen['win_rate'])} %"
                  + (f" / {_pct(paper['win_rate'])} %" if paper else "")
                  if "win_rate" in chosen else f"loss {chosen.get('val_loss', float('nan')):.4f}")
            lines.append(f"| `{run.name}` | {arm} | {len(cands)} | {chosen['window']} | "
                         f"{chosen['n_pairs']} | {wr} | {cal['probe_seconds']:.0f} s "
                         f"({cal['probe_steps']} steps) | {cal['arm_seconds']:.0f} s "
                         f"({cal['arm_seeds']} seeds) |")
    return "\n".join(lines)


def _span(xs, fmt="{:.3f}") -> str:
    if any(x != x for x in xs):
        return "nan"  # a seed without the value (or a diverged one): shown, never hidden
    lo, hi = min(xs), max(xs)
    if fmt.format(lo) == fmt.format(hi):
        return fmt.format(lo)
    # "-0.12–-0.05" reads badly
    return f"{fmt.format(lo)}{' to ' if lo < 0 else '–'}{fmt.format(hi)}"


def arm_curves(run: Path) -> dict:
    """{arm: [per seed {"steps", "loss", "margin"}]}: the validation curve each arm's training
    logged (stage.json's log: the evaluation at step 0, then every `eval_steps`), in step order."""
    out = {}
    for arm, seed in judged_trainings(run, "stage.json"):
        info = json.loads((run / "arms" / f"{arm}-seed{seed}" / "stage.json").read_text())
        evals = sorted((e for e in info.get("log", []) if "eval_loss" in e),
                       key=lambda e: e["step"])
        if evals:
            out.setdefault(arm, []).append({"steps": [e["step"] for e in evals],
                                             "loss": [e["eval_loss"] for e in evals],
                                             "margin": [e.get("eval_rewards/margins", float("nan"))
                                                        for e in evals]})
    return out


def curves_table(runs: list[Path]) -> str:
    """Per arm and lab, over its seeds: validation loss at the start → its lowest (at which step) →
    at the end, and the validation margin at the start → the end; each a range over the seeds."""
    per_run = [arm_curves(r) for r in runs]
    arms = [a for a in per_run[0] if all(a in c for c in per_run)]
    lines = ["| arm | " + " | ".join(f"`{r.name}`: validation loss start → lowest (step) → end; "
                                     f"margin start → end"
                                      for r in runs) + " |", "|---|" + "---|" * len(runs)]
    for arm in arms:
        cells = []
        for curves in per_run:
            seeds = curves[arm]
            low = [int(np.nanargmin(c["loss"])) for c in seeds]
            cells.append(f"{_span([c['loss'][0] for c in seeds])} → "
                         f"{_span([c['loss'][i] for c, i in zip(seeds, low)])} "
                         f"({_span([c['steps'][i] for c, i in zip(seeds, low)], '{}')}) → "
                         f"{_span([c['loss'][-1] for c in seeds])}; "
                         f"{_span([c['margin'][0] for c in seeds], '{:.2f}')} → "
                    f"{_span([c['margin'][-1] for c in seeds], '{:.2f}')} ({len(seeds)} seeds)")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="finished run directories, one lab each")
    ap.add_argument("--seeds", help="only these training seeds, comma-separated")
    ap.add_argument("--calibration", action="store_true",
                    help="the calibrated arms' choices and costs instead")
    ap.add_argument("--arms", help="only these arms (and the baselines), comma-separated")
    ap.add_argument("--curves", action="store_true",
                    help="each arm's validation loss and margin over its training instead (runs "
                         "with eval_steps)")
    ap.add_argument("--boot", type=int, default=2000, help="bootstrap draws (default 2000)")
    ap.add_argument("--baselines", default=",".join(BASELINES),
                    help="arms every other arm is compared with, comma-separated (default "
                         "random,full)")
    args = ap.parse_args()
    runs = [Path(r) for r in args.runs]
    for r in runs:
        if not (r / "config.yaml").exists():
            raise SystemExit(f"{r}: no config.yaml; is it a run directory of `prefsift run`?")
    if args.calibration:
        print(calibration_table(runs))
        return
    if args.curves:
        print(curves_table(runs))
        return
    seeds = None if args.seeds is None else [int(s) for s in args.seeds.split(",")]
    baselines = tuple(args.baselines.split(","))
    arms = None if args.arms is None else set(args.arms.split(",")) | set(baselines)
    print(labs_table(runs, seeds, args.boot, baselines, arms))


if __name__ == "__main__":
    main()

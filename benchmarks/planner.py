"""The planner's predictions against the actual times, side by side in one run: the lab (a whole
`prefsift run` of configs/lab_small.yaml) and SmolLM2-135M-Instruct (`prefsift score` on 48 chat
pairs with IRM, LossDiff and exact IF by forward mode over the last two decoder layers).

    python benchmarks/planner.py [--threads 2] [--out runs/bench-planner]

For each: `prefsift plan` (or `score --plan`) first, then the real command into the same folder;
the table lists every stage's predicted and actual seconds and their ratio. Run it alone: another
heavy job on the same cores changes the actual times (not the predictions' probes alone)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))


def _prefsift(threads: int, *args) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-m", "prefsift", "--threads", str(threads), *args],
                       capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"prefsift {' '.join(args)} failed:\n{r.stderr[-3000:]}")


def _rows(name: str, folder: Path, actual: dict) -> list[tuple]:
    plan = json.loads((folder / "plan.json").read_text())
    return [(name, s["stage"], s["seconds"], actual[s["stage"]]) for s in plan["stages"]
            if s["stage"] in actual]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="runs/bench-planner")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []

    from prefsift.pipeline.rundir import RunDir
    from prefsift.planning import actual_run_seconds

    t = time.perf_counter()
    lab = out / "lab"
    config = str(ROOT / "configs" / "lab_small.yaml")
    _prefsift(a.threads, "plan", config, "--out", str(lab))
    t_plan = time.perf_counter() - t
    _prefsift(a.threads, "run", config, "--out", str(lab), "--quiet")
    import yaml

    ran = yaml.safe_load((lab / "config.yaml").read_text())
    rows += _rows("lab_small run", lab, actual_run_seconds(RunDir(lab), ran["arms"], ran["seeds"]))
    print(f"lab: plan (with the lab built first) {t_plan:.0f} s, run "
          f"{time.perf_counter() - t - t_plan:.0f} s",
          flush=True)

    from precision import make_pairs

    smol = out / "smollm2"
    smol.mkdir(exist_ok=True)
    for name, n, seed in (("train", 48, 1), ("validation", 16, 3)):
        (smol / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n"
                                                    for r in make_pairs(n, seed)))
    # θ must differ from π_ref (else θ's log-prob pass is π_ref's, from the cache): SmolLM2 with one
    # layer nudged.
    theta = smol / "theta"
    if not (theta / "config.json").exists():
        import torch

        from prefsift.models.loading import load_model, load_tokenizer

        m = load_model("smollm2")
        with torch.no_grad():
            m.model.layers[29].mlp.down_proj.weight.mul_(1.001)
        m.save_pretrained(theta)
        load_tokenizer("smollm2").save_pretrained(theta)
    args = ["score", "--policy", str(theta), "--reference", "smollm2", "--train",
            str(smol / "train.jsonl"), "--validation", str(smol / "validation.jsonl"), "--out",
            str(smol / "run"), "--if-method", "jvp", "--if-params", r"layers\.(28|29)\.", "--quiet"]
    t = time.perf_counter()
    _prefsift(a.threads, *args, "--plan")
    t_plan = time.perf_counter() - t
    _prefsift(a.threads, *args)
    rows += _rows("SmolLM2 score", smol / "run",
                  json.loads((smol / "run" / "score_timings.json").read_text()))
    print(f"SmolLM2: plan {t_plan:.0f} s, score {time.perf_counter() - t - t_plan:.0f} s\n")

    print(f"{'what':<14} {'stage':<11} {'predicted s':>12} {'actual s':>9} "
          f"{'actual/predicted':>17}")
    for what, stage, p, act in rows:
        flag = "" if 1 / 1.5 <= act / max(p, 1e-9) <= 1.5 else "  (outside 1.5x)"
        print(f"{what:<14} {stage:<11} {p:>12.1f} {act:>9.1f} {act / max(p, 1e-9):>16.2f}x{flag}")
    for what in dict.fromkeys(r[0] for r in rows):
        p = sum(r[2] for r in rows if r[0] == what)
        act = sum(r[3] for r in rows if r[0] == what)
        print(f"{what:<14} {'total':<11} {p:>12.1f} {act:>9.1f} {act / p:>16.2f}x")


if __name__ == "__main__":
    main()

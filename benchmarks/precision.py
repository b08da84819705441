"""What bf16 weights cost in accuracy: SmolLM2-135M-Instruct scored in fp32 and in bf16 on the same
pairs, side by side in one run, on this machine's CPU (bf16 runs on CPU too).

    python benchmarks/precision.py --pairs 96 --val 24 [--threads 2] [--out runs/bench-precision]

θ is SmolLM2 after a short LoRA DPO warm-up on the pairs (merged), so the margins are those of a
warmed-up policy. Both precisions score with prefsift's defaults (θ_val by SGD, exact IF by the
per-pair route over the last two decoder layers, as configs/smollm2_sentiment.yaml does). Printed:
max |Δ| of the policy's log-probs and of IRM against fp32, Spearman's ρ of IRM, LossDiff and IF
against fp32, and the overlap of the LossDiff-IRM and TIF selections with fp32's at keep 0.64.
The pairs are short chat answers about everyday topics, one positive and one negative sentence."""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

TOPICS = ["the weather", "a morning walk", "a new phone", "the city bus", "a coffee shop",
          "a football match", "a birthday party", "a rainy day", "the library", "a long flight",
          "a home-cooked meal", "a job interview", "a summer holiday", "the dentist",
          "a school trip", "a traffic jam", "a new neighbour", "a concert", "a garden",
          "online shopping", "a museum visit", "a power cut", "a bike ride", "a movie night"]
GOOD = ["I really enjoyed {t}; it made my whole day brighter.",
        "{T} was wonderful, and I felt calm and happy.", "What a lovely experience {t} turned out "
        "to be!", "{T} went better than I hoped, a true pleasure."]
BAD = ["{T} was awful and left me tired and annoyed.",
       "I hated {t}; it was a complete waste of time.", "{T} turned out badly, and I felt "
       "miserable afterwards.", "Nothing about {t} was good; it was dreadful."]


def make_pairs(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = rng.choice(TOPICS)
        good, bad = rng.choice(GOOD), rng.choice(BAD)
        fill = lambda s: s.format(t=t, T=t[0].upper() + t[1:])  # noqa: E731
        chosen, rejected = ((fill(good), fill(bad)) if rng.random() > 0.15
                            else (fill(bad), fill(good)))
        out.append({"prompt": [{"role": "user", "content": f"Write one sentence about {t}."}],
                    "chosen": [{"role": "assistant", "content": chosen}],
                    "rejected": [{"role": "assistant", "content": rejected}]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=96)
    ap.add_argument("--val", type=int, default=24)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default="runs/bench-precision")
    args = ap.parse_args()

    import numpy as np
    import torch
    from scipy.stats import spearmanr

    import prefsift
    from prefsift.core.quiet import quiet_libraries
    from prefsift.models.loading import LoraSettings, load_model, load_tokenizer
    from prefsift.models.objectives import PairwiseObjective
    from prefsift.scoring.logprobs import model_fingerprint
    from prefsift.selection.rules import overlap_coefficient
    from prefsift.train import StageSettings, TrainingStage

    quiet_libraries()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", make_pairs(args.pairs, 0)),
                       ("validation", make_pairs(args.val, 1))):
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tok, ref = load_tokenizer("smollm2"), load_model("smollm2")
    t0 = time.perf_counter()
    recs = [json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()]
    TrainingStage(ref, ref, tok, recs, PairwiseObjective("dpo", 0.1),
                StageSettings(epochs=1, learning_rate=2e-4, batch_size=8, max_length=192),
                out / "theta",
                start_key=model_fingerprint(ref), data_key=f"precision-{args.pairs}", name="warmup",
                lora=LoraSettings(r=8, alpha=16), log=lambda *a: None).run()
    print(f"θ: LoRA warm-up on {args.pairs} pairs in {time.perf_counter() - t0:.0f} s")
    settings = dict(beta=0.1, max_length=192, val_lr=1e-3, if_params=r"layers\.(28|29)\.",
                    device="cpu")
    tables, seconds = {}, {}
    for dtype in ("fp32", "bf16"):
        t0 = time.perf_counter()
        tables[dtype] = prefsift.score(str(out / "theta" / "model"), "smollm2",
                                       str(out / "train.jsonl"),
                                       validation=str(out / "validation.jsonl"),
                                       out=str(out / f"score-{dtype}"),
                                       dtype=dtype, progress=False, log=lambda *a: None, **settings)
        seconds[dtype] = time.perf_counter() - t0
    a, b = tables["fp32"], tables["bf16"]
    ok = a["valid"].to_numpy() & b["valid"].to_numpy()
    a, b = a[ok], b[ok]
    lp = np.abs(np.concatenate([b["logp_chosen"] - a["logp_chosen"],
                                b["logp_rejected"] - a["logp_rejected"]]))
    rows = {
        "max |Δ log-prob| (nats)": f"{lp.max():.4f}",
        "median |Δ log-prob| (nats)": f"{np.median(lp):.4f}",
        "max |Δ IRM|": f"{np.abs(b['irm'] - a['irm']).max():.4f} (IRM spread, sd: "
                       f"{a['irm'].std():.4f})",
        "Spearman IRM": f"{spearmanr(a['irm'], b['irm'])[0]:.4f}",
        "Spearman LossDiff": f"{spearmanr(a['lossdiff'], b['lossdiff'])[0]:.4f}",
        "Spearman IF": f"{spearmanr(a['if'], b['if'])[0]:.4f}",
    }
    for rule in ("lossdiff_irm", "tif"):
        ma, mb = prefsift.select(a, rule, keep=0.64), prefsift.select(b, rule, keep=0.64)
        rows[f"overlap of {rule} at keep 0.64"] = f"{overlap_coefficient(ma, mb):.3f}"
    rows["seconds (fp32, bf16)"] = f"{seconds['fp32']:.0f}, {seconds['bf16']:.0f}"
    print(f"SmolLM2-135M-Instruct, {int(ok.sum())} pairs, bf16 against fp32 "
          f"({torch.get_num_threads()} threads):")
    w = max(map(len, rows))
    for k, v in rows.items():
        print(f"  {k:<{w}}  {v}")


if __name__ == "__main__":
    main()

"""Log-prob engine against TRL's own reference log-prob pass, side by side in one run.

For each model (the lab's tiny model and SmolLM2-135M-Instruct) and the same 256 pairs of mixed
lengths, time
  - TRL 1.16: `DPOTrainer._precompute_ref_logps` (what `precompute_ref_log_probs=True` runs), with
    the trainer's own tokenization, collator and batch size;
  - prefsift: `compute_pair_logps` on the same token ids;
and print pairs/s, padding efficiency, the speed-up and the largest absolute difference.

    python benchmarks/logprobs.py [--pairs 256] [--threads 2] [--batch-size 8] \\
        [--models lab,smollm2]
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch

WORDS = ("the model answer should explain why a short reply is better than a long one when the "
         "user asks for facts about rivers mountains history science cooking music sport weather "
         "travel code").split()


def mixed_pairs(n: int, seed: int, lab: bool):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        if lab:
            from prefsift.lab import PromptGenerator, best_response, random_response

            p = PromptGenerator(rng.randrange(10**6)).draw(1)[0].text
            out.append({"prompt": p, "chosen": best_response(p), "rejected": random_response(rng)})
            continue
        # Mixed lengths, long-tailed like real preference data: prompts 8-300 words, answers 4-250.
        plen = int(min(300, 8 + rng.expovariate(1 / 60)))
        p = " ".join(rng.choice(WORDS) for _ in range(plen)) + "?"
        c = (" "
             + " ".join(rng.choice(WORDS) for _ in range(int(min(250,
                                                                 4 + rng.expovariate(1 / 50))))))
        r = (" "
             + " ".join(rng.choice(WORDS) for _ in range(int(min(250,
                                                                 4 + rng.expovariate(1 / 50))))))
        out.append({"prompt": p, "chosen": c, "rejected": r})
    return out


def bench(name, model, tok, records, batch_size, max_length):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from prefsift.data.tokenization import TokenizedPair
    from prefsift.scoring.logprobs import EngineStats, LogprobSettings, compute_pair_logps

    args = DPOConfig(output_dir="/tmp/prefsift-bench", use_cpu=True, bf16=False, report_to=[],
                     max_length=max_length, per_device_train_batch_size=batch_size,
                     precompute_ref_batch_size=batch_size, dataset_num_proc=None, disable_tqdm=True)
    trainer = DPOTrainer(model=copy.deepcopy(model), ref_model=copy.deepcopy(model), args=args,
                         train_dataset=Dataset.from_list(records), processing_class=tok)
    ds = trainer.train_dataset
    toks = [TokenizedPair(r["prompt_ids"], r["chosen_ids"], r["rejected_ids"]) for r in ds]

    # TRL: padded tokens per batch in data order, as its collator pads.
    trl_real = trl_proc = 0
    for s in range(0, len(toks), batch_size):
        lens = [min(len(t.prompt_ids) + len(x), max_length) for t in toks[s:s + batch_size]
                for x in (t.chosen_ids, t.rejected_ids)]
        trl_real += sum(lens)
        trl_proc += max(lens) * len(lens)

    model.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        out = trainer._precompute_ref_logps(ds, "bench", batch_size)
    t_trl = time.perf_counter() - t0
    trl_c = np.array(out["ref_chosen_logps"], dtype=np.float64)
    trl_r = np.array(out["ref_rejected_logps"], dtype=np.float64)

    stats = EngineStats()
    t0 = time.perf_counter()
    ours = compute_pair_logps(model, toks, tok.pad_token_id, LogprobSettings(max_length=max_length),
                              progress=False, stats=stats)
    t_ours = time.perf_counter() - t0
    diff = max(np.abs(ours.chosen - trl_c).max(), np.abs(ours.rejected - trl_r).max())
    n = len(toks)
    print(f"\n{name}: {n} pairs, {trl_real / n / 2:.0f} tokens per sequence on average "
          f"(max "
          f"{max(len(t.prompt_ids) + max(len(t.chosen_ids), len(t.rejected_ids)) for t in toks)})")
    print(f"  TRL DPOTrainer ref pass   {n / t_trl:8.1f} pairs/s   padding efficiency "
          f"{trl_real / trl_proc:6.1%}")
    print(f"  prefsift engine           {n / t_ours:8.1f} pairs/s   padding efficiency "
          f"{stats.padding_efficiency:6.1%}")
    print(f"  speed-up {t_trl / t_ours:.2f}x   max |Δ log-prob| prefsift vs TRL = {diff:.2e} nat")
    # The option of running each prompt once (KV cache shared by chosen and rejected).
    st2 = EngineStats()
    t0 = time.perf_counter()
    shared = compute_pair_logps(model, toks, tok.pad_token_id,
                                LogprobSettings(max_length=max_length, share_prompt=True),
                                progress=False, stats=st2)
    t_sh = time.perf_counter() - t0
    d2 = max(np.abs(shared.chosen - trl_c).max(), np.abs(shared.rejected - trl_r).max())
    print(f"  prefsift, prompt once     {n / t_sh:8.1f} pairs/s   padding efficiency "
          f"{st2.padding_efficiency:6.1%}   speed-up {t_trl / t_sh:.2f}x, max |Δ| {d2:.2e} nat")
    # Who is closer to the exact value? fp64, one sequence at a time, on the pairs that differ most.
    worst = np.argsort(-np.maximum(np.abs(ours.chosen - trl_c), np.abs(ours.rejected - trl_r)))[:4]
    m64 = copy.deepcopy(model).double().eval()
    err_trl = err_ours = 0.0
    with torch.no_grad():
        for i in worst:
            tp = toks[i]
            for resp, o, t in ((tp.chosen_ids, ours.chosen[i], trl_c[i]),
                               (tp.rejected_ids, ours.rejected[i], trl_r[i])):
                ids = (tp.prompt_ids + resp)[:max_length]
                logp = torch.log_softmax(m64(torch.tensor([ids])).logits[0], -1)
                exact = sum(logp[k - 1, ids[k]].item()
                            for k in range(max(len(tp.prompt_ids), 1), len(ids)))
                err_trl, err_ours = max(err_trl, abs(t - exact)), max(err_ours, abs(o - exact))
    print(f"  on the {len(worst)} pairs that differ most, error against fp64: TRL {err_trl:.2e}, "
          f"prefsift {err_ours:.2e} nat")
    return t_trl / t_ours, diff


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8, help="TRL's batch size (its default is 8)")
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--models", default="lab,smollm2")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    import transformers

    transformers.logging.set_verbosity_error()
    import datasets

    datasets.disable_progress_bars()
    print(f"torch {torch.__version__}, {a.threads} threads, TRL batch size {a.batch_size}")
    for name in a.models.split(","):
        if name == "lab":
            from prefsift.lab import build_lab_model, build_lab_tokenizer

            tok = build_lab_tokenizer()
            model = build_lab_model(tok, "lab-a", 0)
            # 8x the pairs: a tiny model scores 256 pairs in well under a second, too short to time.
            bench("lab-a (1.8 M params)", model, tok, mixed_pairs(8 * a.pairs, 0, lab=True),
                  a.batch_size, a.max_length)
        elif name == "smollm2":
            from prefsift.models.loading import load_model, load_tokenizer

            tok, model = load_tokenizer("smollm2"), load_model("smollm2")
            bench("SmolLM2-135M-Instruct", model, tok, mixed_pairs(a.pairs, 0, lab=False),
                  a.batch_size, a.max_length)


if __name__ == "__main__":
    main()

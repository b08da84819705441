"""`prefsift audit` at 10⁴ and 10⁵ synthetic pairs, without a model: the time of each check and the
total (reading the file included), one thread. Target: 10⁵ pairs in under a minute on 2 cores.

    python benchmarks/audit.py                 # --sizes 10000 100000 --threads 1

The pairs are shaped like UltraFeedback-binarized (string prompt, [user, assistant] message lists,
ratings on 1–10, four sources): prompts of 10–30 words, answers of 20–120 words from a 5,000-word
Zipf vocabulary, a share with list markup, a small careful validation file (1,000 pairs) and
1,000 test prompts, so every check runs."""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np


def write_file(path: Path, n: int, seed: int, vocab: np.ndarray, p: np.ndarray) -> list[str]:
    rng = np.random.default_rng(seed)
    lines, prompts = [], []
    sources = ["evol_instruct", "sharegpt", "ultrachat", "flan"]
    for i in range(n):
        prompt = " ".join(rng.choice(vocab, int(rng.integers(10, 31)), p=p))
        answers = []
        for _ in range(2):
            text = " ".join(rng.choice(vocab, int(rng.integers(20, 121)), p=p))
            if rng.random() < 0.2:
                text = "- " + text.replace(" the ", "\n- the ", 2)
            answers.append(text)
        user = {"role": "user", "content": prompt}
        lines.append(json.dumps({"id": f"b{seed}-{i}", "prompt": prompt,
                                 "chosen": [user, {"role": "assistant", "content": answers[0]}],
                                 "rejected": [user, {"role": "assistant", "content": answers[1]}],
                                 "score_chosen": int(rng.integers(6, 11)),
                                 "score_rejected": int(rng.integers(1, 6)),
                                 "source": sources[i % 4]}))
        prompts.append(prompt)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return prompts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    import prefsift

    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines()
                  if line.startswith("Model name")), "?")
    print(f"CPU: {model}; {platform.python_version()}; torch threads {args.threads}")
    vocab = np.array(["the", "a", "of", "and", "to"] + [f"w{i}" for i in range(4995)])
    p = 1.0 / np.arange(1, len(vocab) + 1)
    p /= p.sum()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        val = write_file(tmp / "validation.jsonl", 1000, 99, vocab, p)
        (tmp / "test.jsonl").write_text("".join(json.dumps({"prompt": q}) + "\n" for q in
                                                write_file(tmp / "t.jsonl", 1000, 98, vocab, p)))
        del val
        rows = []
        for n in args.sizes:
            path = tmp / f"train{n}.jsonl"
            write_file(path, n, n, vocab, p)
            t0 = time.perf_counter()
            pairs = prefsift.load_pairs(path)
            t_read = time.perf_counter() - t0
            t1 = time.perf_counter()
            report = prefsift.audit(pairs, validation=tmp / "validation.jsonl",
                                    test_prompts=tmp / "test.jsonl")
            t_audit = time.perf_counter() - t1
            rows.append((n, t_read, report.timings, t_audit, len(report.reported)))
    checks = ["read_lengths", "length", "style", "duplicates", "truncation", "ratings"]
    print("| pairs | read the file | " + " | ".join(checks)
          + " | audit total | with reading | findings |")
    print("|---" * (len(checks) + 5) + "|")
    for n, t_read, timings, t_audit, found in rows:
        cells = " | ".join(f"{timings.get(c, 0):.2f}" for c in checks)
        print(f"| {n:,} | {t_read:.2f} | {cells} | {t_audit:.2f} | **{t_read + t_audit:.1f} s** | "
              f"{found} |")


if __name__ == "__main__":
    main()

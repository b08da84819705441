"""Peak memory of `prefsift score` on SmolLM2-135M-Instruct at two dataset sizes, side by side in
one run, and what the data itself holds per token.

    python benchmarks/memory.py [--sizes 256 2048] [--threads 2] [--out runs/bench-memory]

Each size is scored in a fresh process (`prefsift score`, IRM + LossDiff + exact IF by forward
mode over the last decoder layer, θ = π_ref = SmolLM2, 64 validation pairs), and its peak resident
set size (ru_maxrss) is printed with its time. The pairs are the chat pairs of
benchmarks/precision.py. What grows with the dataset is the pairs' text and token ids and the
per-pair columns; the second table measures (tracemalloc) the token ids held per token as prefsift
stores them (int32 arrays) against a list of ints, and the sequences of one log-prob pass."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

CHILD = """
import resource, sys, time
from prefsift.cli import main
t = time.perf_counter()
rc = main(sys.argv[1:])
print("PEAK_RSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "SECONDS", time.perf_counter() - t)
sys.exit(rc)
"""  # noqa: E501  (the child's script)


def _write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def score_peak(out: Path, n: int, val: Path, threads: int) -> tuple[float, float]:
    from precision import make_pairs

    train = out / f"train-{n}.jsonl"
    _write(train, make_pairs(n, seed=1))
    args = ["--threads", str(threads), "score", "--policy", "smollm2", "--reference", "smollm2",
            "--train", str(train),
            "--validation", str(val), "--out", str(out / f"run-{n}"), "--if-method", "jvp",
            "--if-params", r"layers\.29\.", "--quiet"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True,
                       env=env)
    if r.returncode != 0:
        raise SystemExit(f"prefsift score failed on {n} pairs:\n{r.stderr[-3000:]}")
    line = next(x for x in r.stdout.splitlines() if x.startswith("PEAK_RSS_KB"))
    parts = line.split()
    return int(parts[1]) / 2**20, float(parts[3])  # GiB, seconds


def token_memory(n: int = 2000) -> dict:
    """Bytes per token held by the token ids (tracemalloc), prefsift's int32 arrays against
    lists."""
    import tracemalloc
    from array import array

    from precision import make_pairs

    from prefsift.data.tokenization import TokenizedPair, tokenize_pairs
    from prefsift.models.loading import load_tokenizer
    from prefsift.scoring.logprobs import pair_sequences

    tok = load_tokenizer("smollm2")
    rows = make_pairs(n, seed=2)
    pairs = tokenize_pairs(tok, [r["prompt"] for r in rows], [r["chosen"] for r in rows],
                           [r["rejected"] for r in rows], "conversational")
    tokens = sum(len(p.prompt_ids) + len(p.chosen_ids) + len(p.rejected_ids) for p in pairs)

    def held(make) -> float:
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        obj = make()
        size = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        del obj
        return size / tokens

    as_arrays = held(lambda: [TokenizedPair(array("i", p.prompt_ids), array("i", p.chosen_ids),
                                            array("i", p.rejected_ids)) for p in pairs])
    as_lists = held(lambda: [TokenizedPair(list(p.prompt_ids), list(p.chosen_ids),
                                           list(p.rejected_ids)) for p in pairs])
    seqs = pair_sequences(pairs, 1024)
    # every sequence built at once (the old engine)
    eager = held(lambda: [seqs[k] for k in range(len(seqs))])
    lazy = held(lambda: pair_sequences(pairs, 1024))
    return {"pairs": n, "tokens": tokens, "int32 arrays": as_arrays, "lists of ints": as_lists,
            "sequences, all built": eager, "sequences, built per batch": lazy}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 2048])
    ap.add_argument("--val", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="runs/bench-memory")
    a = ap.parse_args()
    from precision import make_pairs

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    val = out / "validation.jsonl"
    _write(val, make_pairs(a.val, seed=3))
    print(f"prefsift score on SmolLM2-135M-Instruct (IRM, LossDiff, IF by jvp over layer 29), "
          f"{a.threads} threads, {a.val} validation pairs")
    print(f"{'pairs':>7} {'peak RSS (GiB)':>15} {'seconds':>9}")
    for n in a.sizes:
        gib, sec = score_peak(out, n, val, a.threads)
        print(f"{n:>7} {gib:>15.2f} {sec:>9.0f}", flush=True)
    t = time.perf_counter()
    m = token_memory()
    print(f"\ntoken ids held, bytes per token ({m['tokens']} tokens of {m['pairs']} pairs, "
          f"tracemalloc, {time.perf_counter() - t:.0f} s):")
    for k in ("int32 arrays", "lists of ints", "sequences, all built",
              "sequences, built per batch"):
        print(f"  {k:<28} {m[k]:>7.1f}")


if __name__ == "__main__":
    main()

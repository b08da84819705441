"""Hand-made preference files for the audit's tests, with the faults each one holds known by
construction (no prefsift code is used to build them).

`ultrafeedback(...)` writes a file shaped like UltraFeedback-binarized: a string `prompt`, `chosen`
and `rejected` as [user, assistant] message lists, `score_chosen`/`score_rejected` on a 1–10 scale
(chosen 6–10, rejected 1–5, so every clean pair's label agrees with its ratings) and a `source`
column with four sources. Answers are words drawn from one vocabulary for both sides and lengths
from one distribution, so a clean file has no length bias and no style habit. With `faults=True` it
plants one or more of every fault the audit looks for and returns where each one is."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

VOCAB = [f"w{i:03d}" for i in range(300)]
SOURCES = ["evol_instruct", "sharegpt", "ultrachat", "flan"]


def _text(rng, n: int) -> str:
    return " ".join(rng.choice(VOCAB, size=n))


def _row(i: int, prompt: str, chosen: str, rejected: str, sc, sr, source: str) -> dict:
    user = {"role": "user", "content": prompt}
    return {
        "id": f"uf{i:04d}",
        "prompt": prompt,
        "chosen": [user, {"role": "assistant", "content": chosen}],
        "rejected": [user, {"role": "assistant", "content": rejected}],
        "score_chosen": sc,
        "score_rejected": sr,
        "source": source,
    }


def _plain_rows(rng, n: int, prefix: str) -> list[dict]:
    """``n`` fault-free rows: prompt "<prefix> i: ...", two answers of 20–59 words, ratings."""
    rows = []
    for i in range(n):
        prompt = f"{prefix} {i}: " + _text(rng, 8)
        chosen, rejected = (_text(rng, int(rng.integers(20, 60))),
                            _text(rng, int(rng.integers(20, 60))))
        rows.append(_row(i, prompt, chosen, rejected, int(rng.integers(6, 11)),
                         int(rng.integers(1, 6)), SOURCES[i % 4]))
    return rows


def careful_pairs(path: Path, n: int = 400, seed: int = 7) -> list[str]:
    """A careful validation file of the same shape, no fault; returns its prompts."""
    rng = np.random.default_rng(seed)
    rows = _plain_rows(rng, n, "validation question")
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return [r["prompt"] for r in rows]


def ultrafeedback(
    path: Path,
    n: int = 400,
    seed: int = 0,
    faults: bool = False,
    validation_prompts=(),
    test_prompts=(),
) -> dict:
    """Write the file; return {"rows": [...], fault name: [row positions], ...} (positions in the
    file, 0-based; a malformed line is a row too)."""
    rng = np.random.default_rng(seed)
    rows = _plain_rows(rng, n, "question")
    planted: dict[str, list[int]] = {}
    if faults:
        a = lambda r: r["chosen"][1]  # noqa: E731 (the chosen answer's message)
        b = lambda r: r["rejected"][1]  # noqa: E731
        # Length: every sharegpt pair's chosen is the longer (rejected cut to 10 words, chosen
        # 45–60).
        share = [i for i in range(n) if rows[i]["source"] == "sharegpt"]
        for i in share:
            a(rows[i])["content"] = _text(rng, int(rng.integers(45, 61)))
            b(rows[i])["content"] = " ".join(b(rows[i])["content"].split()[:10])
        planted["length_source"] = ["sharegpt"]
        # Style: 60 chosen answers open with "Sure!" (never a rejected one).
        sure = [i for i in range(n) if rows[i]["source"] != "sharegpt"][:60]
        for i in sure:
            a(rows[i])["content"] = "Sure! " + a(rows[i])["content"]
        planted["sure"] = sure
        free = [i for i in range(n) if rows[i]["source"] != "sharegpt" and i not in sure]
        take = iter(free)
        # Near-identical answers: rejected = chosen with one word changed (6 pairs, 1.5 %).
        near = [next(take) for _ in range(6)]
        for i in near:
            words = a(rows[i])["content"].split()
            words[len(words) // 2] = "zzz"
            b(rows[i])["content"] = " ".join(words)
        planted["near"] = near
        # Chosen the same as rejected: two exact copies (the data layer's `identical`) and one that
        # differs in case and spacing only.
        same = [next(take) for _ in range(3)]
        for i in same[:2]:
            b(rows[i])["content"] = a(rows[i])["content"]
        b(rows[same[2]])["content"] = "  " + a(rows[same[2]])["content"].upper() + " "
        planted["same"] = same
        planted["identical_reason"] = same[:2]
        # Leaks: 3 prompts of the validation file, 2 of the test prompts.
        leak_v, leak_t = [next(take) for _ in range(3)], [next(take) for _ in range(2)]
        for i, p in zip(leak_v, validation_prompts):
            rows[i]["prompt"] = rows[i]["chosen"][0]["content"] = rows[i]["rejected"][0][
                "content"
            ] = p
        for i, p in zip(leak_t, test_prompts):
            rows[i]["prompt"] = rows[i]["chosen"][0]["content"] = rows[i]["rejected"][0][
                "content"
            ] = p
        planted["leak_validation"], planted["leak_test"] = leak_v, leak_t
        # Truncation at 1024 (in words): two chosen answers of 1,100 words; one prompt of 1,100
        # words.
        cut = [next(take) for _ in range(2)]
        for i in cut:
            a(rows[i])["content"] = _text(rng, 1100)
        drop = next(take)
        long_prompt = _text(rng, 1100)
        rows[drop]["prompt"] = rows[drop]["chosen"][0]["content"] = rows[drop]["rejected"][0][
            "content"
        ] = long_prompt
        planted["cut_chosen"], planted["dropped"] = cut, [drop]
        # Ratings: 4 chosen rated below rejected, 3 ties, 2 outside the 1–10 scale, 1 not a number.
        below, ties = [next(take) for _ in range(4)], [next(take) for _ in range(3)]
        for i in below:
            rows[i]["score_chosen"], rows[i]["score_rejected"] = 3, 8
        for i in ties:
            rows[i]["score_rejected"] = rows[i]["score_chosen"]
        out = [next(take) for _ in range(2)]
        rows[out[0]]["score_chosen"] = 50
        rows[out[1]]["score_rejected"] = -1
        nan = next(take)
        rows[nan]["score_rejected"] = "n/a"
        planted.update(below=below, ties=ties, out_of_scale=out, not_number=[nan])
    lines = [json.dumps(r) for r in rows]
    if faults:
        # Identical pairs: rows 1 and 2 copied to the end under new ids; one line that is not JSON.
        dup = []
        for src in (free[-1], free[-2]):
            copy = dict(rows[src], id=f"copy-of-{rows[src]['id']}")
            lines.append(json.dumps(copy))
            dup += [src, len(lines) - 1]
        planted["identical_pairs"] = sorted(dup)
        lines.append('{"prompt": "broken line"')
        planted["malformed"] = [len(lines) - 1]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    planted["rows"] = rows
    planted["n_rows"] = len(lines)
    return planted

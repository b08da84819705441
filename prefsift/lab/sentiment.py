"""A sentiment-style preference file built from a real model's own samples, judged by a lexicon.

The lab's second world, for real models (SmolLM2-135M-Instruct by default): prompts ask for one
sentence about an everyday topic; the model answers each prompt a few times at temperature 1; VADER
rates every answer (compound score in [-1, 1]); the most and least positive answers of a prompt
make its pair. The goal being aligned for is "answer positively", and the lexicon judge that built
the labels also judges the aligned model, like the oracle in the digit lab.

Tagged imperfections, as in the digit lab: ``near_tie`` pairs (rating gap below ``tie_max_gap``) are
kept as they come, and a share ``flip_rate`` of the other *training* pairs is deliberately flipped
(``pair_type = "flipped"``); ``label_correct`` says whether chosen is the more positive answer.
``score_chosen``/``score_rejected`` are the VADER ratings plus Gaussian rater noise, for the
score-gap baseline.

Writes ``train.jsonl`` and ``validation.jsonl`` (conversational: message lists), and
``test_prompts.jsonl`` (a held-out prompt per line), plus ``sentiment_summary.json``.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from ..core.checks import check_fields
from ..core.errors import ConfigError, UserError
from ..eval.answers import generate_answers
from ..eval.judges import LexiconJudge
from ..models.loading import (
    ModelSourceError,
    load_model,
    load_tokenizer,
    resolve_model_path,
)

TOPICS = (
    "rainy Mondays", "a long queue at the bank", "a job interview", "morning traffic",
    "cold coffee",
    "a delayed train", "doing the laundry", "a power cut", "a dentist visit", "tax forms",
    "a crowded bus", "a broken umbrella", "losing your keys", "a noisy neighbour", "a flat tyre",
    "waiting on hold", "a missed flight", "spilled milk", "an empty fridge", "a burnt toast",
    "the first snow", "a new neighbour", "a weekend at home", "learning to cook", "a small garden",
    "an old bicycle", "a school reunion", "moving house", "a long walk", "a thunderstorm",
    "a second-hand book", "public libraries", "the night shift", "a cat on the sofa",
    "a rainy holiday", "cleaning the kitchen", "an exam result", "a birthday alone",
    "a hospital waiting room", "the gym",
    "a team meeting", "a phone update", "a cancelled concert", "a lost wallet", "an online course",
    "a winter morning", "a long meeting", "a slow computer", "an empty beach", "autumn leaves",
    "a village market", "a late bus", "a hot summer day", "a quiet office", "a crowded supermarket",
    "a first day at work", "a road trip", "a museum visit", "a street musician", "a football match",
    "a job rejection", "a leaking roof", "a traffic fine", "a wrong order at a cafe",
    "a cold shower",
    "a parking ticket", "an early alarm", "a stuck elevator", "a late delivery", "a difficult exam",
    "homework", "a hospital stay", "a rainy picnic", "a long flight", "a broken phone screen",
    "a new haircut", "a family dinner", "a video call", "a garden in spring", "a bakery",
)
TEMPLATES = (
    "Write one sentence about {t}.",
    "Describe {t} in one sentence.",
    "What do you think of {t}? Answer in one sentence.",
    "Give a one-line review of {t}.",
    "Tell a friend about {t} in one sentence.",
)


@dataclass
class SentimentConfig:
    """A sentiment pair file from a model's own samples."""

    model: str = field(default="smollm2", metadata={"help": "the model that writes the answers "
            "(and is aligned later): `smollm2` or a folder"})
    seed: int = field(default=0, metadata={"help": "prompt split, sampling, flips and rater noise"})
    n_train: int = field(default=240,
                         metadata={"help": "training prompts (one pair each)", "check": ">= 1"})
    n_validation: int = field(default=60, metadata={"help": "validation prompts (one pair each)",
                                                    "check": ">= 1"})
    n_test_prompts: int = field(default=60, metadata={"help": "held-out prompts for evaluation",
                                                      "check": ">= 1"})
    samples_per_prompt: int = field(default=4, metadata={"help": "answers sampled per prompt",
                                                         "check": ">= 2"})
    temperature: float = field(default=1.0,
                               metadata={"help": "sampling temperature", "check": "> 0"})
    max_new_tokens: int = field(default=40,
                                metadata={"help": "answer length limit in tokens", "check": ">= 1"})
    flip_rate: float = field(default=0.1, metadata={"help": "share of non-tie training pairs whose "
            "label is deliberately flipped (validation pairs never are)", "check": "[0, 1]"})
    tie_max_gap: float = field(default=0.1, metadata={"help": "a pair whose VADER gap is below "
                                                      "this is a near_tie", "check": ">= 0"})
    rater_noise: float = field(default=0.2, metadata={"help": "std of the noise added to "
            "score_chosen/score_rejected", "check": ">= 0"})
    batch_size: int = field(default=16,
                            metadata={"help": "prompts per generation batch", "check": ">= 1"})

    def __post_init__(self):
        # types and the ranges in each field's "check" (samples_per_prompt >= 2: a pair needs two)
        check_fields(self)
        total = self.n_train + self.n_validation + self.n_test_prompts
        if total > len(TOPICS) * len(TEMPLATES):
            raise ConfigError(key="n_train",
                              problem=f"+ n_validation + n_test_prompts is {total}, but at most "
                                      f"{len(TOPICS) * len(TEMPLATES)} prompts exist; ask for "
                                      f"fewer")


def sentiment_prompts(seed: int) -> list[str]:
    """Every prompt, in a seeded order."""
    prompts = [t.format(t=topic) for topic in TOPICS for t in TEMPLATES]
    random.Random(f"{seed}-sentiment-prompts").shuffle(prompts)
    return prompts


def build_sentiment_pairs(prompts, answers, ratings, *, split: str, flip_rate: float,
                          tie_max_gap: float, rater_noise: float, seed: int) -> list[dict]:
    """One pair per prompt from its answers and their ratings (see the module docstring). A prompt
    with fewer than two different non-empty answers gives no pair (the caller reports how many)."""
    rng = random.Random(f"{seed}-{split}-sentiment-pairs")
    rows = []
    for k, (prompt, draws, rates) in enumerate(zip(prompts, answers, ratings)):
        order = sorted(range(len(draws)), key=lambda i: (-rates[i], i))
        usable = [i for i in order if draws[i].strip()]
        if len({draws[i] for i in usable}) < 2:
            continue
        hi = usable[0]
        lo = next(i for i in reversed(usable) if draws[i] != draws[hi])
        gap = rates[hi] - rates[lo]
        pair_type = ("near_tie" if gap < tie_max_gap
                     else ("flipped" if rng.random() < flip_rate else "clean"))
        c, r = (lo, hi) if pair_type == "flipped" else (hi, lo)
        rows.append({
            "id": f"sentiment-{split}-{k:06d}",
            "prompt": [{"role": "user", "content": prompt}],
            "chosen": [{"role": "assistant", "content": draws[c]}],
            "rejected": [{"role": "assistant", "content": draws[r]}],
            "pair_type": pair_type,
            "label_correct": bool(rates[c] >= rates[r]),
            "oracle_chosen": round(rates[c], 6),
            "oracle_rejected": round(rates[r], 6),
            "score_chosen": round(rates[c] + rng.gauss(0.0, rater_noise), 6),
            "score_rejected": round(rates[r] + rng.gauss(0.0, rater_noise), 6),
        })
    return rows


def check_sentiment_inputs(cfg: SentimentConfig) -> None:
    """The checks `make_sentiment_lab` makes before any work: the model resolves to a loadable
    folder and VADER is installed. A problem is a `UserError` naming the setting."""
    try:
        resolve_model_path(cfg.model)
    except ModelSourceError as e:
        raise ConfigError(key="model", problem=f": {e}") from None
    try:
        import vaderSentiment.vaderSentiment  # noqa: F401  (VADER rates the answers)
    except ImportError:
        raise UserError("the sentiment lab rates answers with VADER, which is not installed: "
                        "`pip install vaderSentiment`") from None


def make_sentiment_lab(cfg: SentimentConfig, out_dir, progress: bool = True) -> dict:
    """Sample, rate and pair (see the module docstring); returns the summary it writes."""

    check_sentiment_inputs(cfg)  # before any folder or model
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    prompts = sentiment_prompts(cfg.seed)
    test = prompts[: cfg.n_test_prompts]
    val = prompts[cfg.n_test_prompts: cfg.n_test_prompts + cfg.n_validation]
    train = prompts[cfg.n_test_prompts + cfg.n_validation: cfg.n_test_prompts + cfg.n_validation
                    + cfg.n_train]
    tok, model = load_tokenizer(cfg.model), load_model(cfg.model)
    judge = LexiconJudge()

    def sample(split_prompts, split):
        jobs = [p for p in split_prompts for _ in range(cfg.samples_per_prompt)]
        answers = []
        step = cfg.batch_size
        for s in tqdm(range(0, len(jobs), step), desc=f"sampling {split}", unit="batch",
                      disable=not progress):
            answers += generate_answers(model, tok, jobs[s:s + step], temperature=cfg.temperature,
                                        max_new_tokens=cfg.max_new_tokens,
                                        seed=cfg.seed * 1_000_003 + s, batch_size=step)
        answers = [a.strip() for a in answers]
        n = cfg.samples_per_prompt
        grouped = [answers[i * n:(i + 1) * n] for i in range(len(split_prompts))]
        rates = [[judge.score(p, a) for a in g] for p, g in zip(split_prompts, grouped)]
        return grouped, rates

    kw = dict(flip_rate=cfg.flip_rate, tie_max_gap=cfg.tie_max_gap, rater_noise=cfg.rater_noise,
              seed=cfg.seed)
    splits = {}
    for name, split_prompts in (("validation", val), ("train", train)):
        grouped, rates = sample(split_prompts, name)
        # Validation pairs are the trusted proxy LossDiff and IF aim at: never deliberately flipped.
        rows = build_sentiment_pairs(split_prompts, grouped, rates, split=name,
                                     **{**kw, "flip_rate": kw["flip_rate"] if name == "train"
                                        else 0.0})
        with open(out / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        splits[name] = {
            "pairs": len(rows),
            "prompts_without_a_pair": len(split_prompts) - len(rows),
            "by_type": {t: sum(r["pair_type"] == t for r in rows)
                        for t in ("clean", "flipped", "near_tie")},
            "label_correct_rate": sum(r["label_correct"] for r in rows) / max(1, len(rows)),
            "mean_rating": sum(x for rs in rates for x in rs)
        / max(1, sum(len(rs) for rs in rates)), }
    with open(out / "test_prompts.jsonl", "w", encoding="utf-8") as f:
        for i, p in enumerate(test):
            f.write(json.dumps({"id": f"sentiment-test-{i:06d}", "prompt": p}) + "\n")
    summary = {"config": asdict(cfg), "splits": splits, "test_prompts": len(test),
               "seconds": round(time.perf_counter() - t0, 1), "out_dir": str(out)}
    (out / "sentiment_summary.json").write_text(json.dumps(summary, indent=1))
    return summary

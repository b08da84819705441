"""Build the whole lab into a folder: tokenizer, SFT model, preference pairs, held-out prompts.

``make_lab(LabConfig(), "lab/")`` writes::

    lab/train.jsonl         pairs: prompt, chosen, rejected + id, pair_type, task, label_correct,
    lab/validation.jsonl        oracle_*, score_*, origin_* (see `prefsift.lab.pairs`)
    lab/test_prompts.jsonl  held-out prompts (never in SFT, train or validation): id, prompt, task,
                            reference (the oracle's best response)
    lab/sft_model/          the SFT (reference) model + tokenizer, `from_pretrained`-loadable
    lab/lab_summary.json    counts, mean rewards (SFT samples, random tokens, best), timings

The SFT stage is skipped when ``sft_model/`` already holds a model trained with the same settings
(``sft_model/lab_sft.json`` records their hash), so changing only pair settings is quick.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from prefsift.models.loading import cache_dir

from ..core import artifacts
from ..core.checks import check_fields
from ..core.errors import ConfigError
from ..eval.truth import gap_below_zero
from ..models.loading import TINY_PRESETS
from .pairs import PAIR_TYPES, PairConfig, build_pairs
from .sample import sample_responses
from .sft import SFTConfig, load_sft, save_sft, torch_threads, train_sft
from .task import (
    PromptGenerator,
    best_response,
    oracle_reward,
    parse_prompt,
    random_response,
)
from .tokenizer import build_lab_tokenizer, lab_vocab

SFT_STAMP = "lab_sft.json"


@dataclass
class LabConfig:
    """Everything that defines a lab; the same config and seed give byte-identical data files."""

    seed: int = field(default=0, metadata={"help": "master seed (prompts, model init, sampling, labels)"})
    preset: str = field(default="lab-a", metadata={"help": "tiny model preset: lab-a (Llama-style), lab-b (Qwen2-style), tiny (tests)", "check": tuple(TINY_PRESETS)})
    n_train: int = field(default=2000, metadata={"help": "training pairs (one prompt each)", "check": ">= 1"})
    n_validation: int = field(default=300, metadata={"help": "validation pairs (prompts disjoint from train)", "check": ">= 0"})
    n_test_prompts: int = field(default=1000, metadata={"help": "held-out prompts for evaluation (1,000 by default, so that paired differences of a few points between arms can be seen; docs/results.md gives the smallest difference this design detects)", "check": ">= 0"})
    samples_per_prompt: int = field(default=6, metadata={"help": "SFT samples drawn per prompt to build its pair", "check": ">= 1"})
    sample_temperature: float = field(default=1.0, metadata={"help": "sampling temperature of the SFT model", "check": "> 0"})
    frac_clean: float = field(default=0.6, metadata={"help": "share of clean pairs (clear gap, Bradley–Terry label)", "check": "[0, 1]"})
    frac_flipped: float = field(default=0.1, metadata={"help": "share of deliberately flipped labels", "check": "[0, 1]"})
    frac_near_tie: float = field(default=0.1, metadata={"help": "share of near-tie pairs", "check": "[0, 1]"})
    frac_near_duplicate: float = field(default=0.1, metadata={"help": "share of pairs differing in one token", "check": "[0, 1]"})
    frac_easy: float = field(default=0.1, metadata={"help": "share of good-vs-garbage pairs", "check": "[0, 1]"})
    # Default careful (since 2026-12-07; it was clean): every testbed validates the same way, as a team
    # can (an expert-labelled sample of its own data), so that a rule reading the validation set is
    # ranked on how the labels are wrong, not on what the validation set looks like.
    validation_mix: str = field(default="careful", metadata={"help": "'careful': train's mix of pair types, every label the oracle's (a team's small set of its own data labelled by experts); 'clean': validation pairs are all clean with oracle labels; 'train': same mix and noise as train", "check": ("careful", "clean", "train")})
    bt_temperature: float = field(default=0.1, metadata={"help": "Bradley–Terry labeller temperature: P(correct) = sigmoid(gap / T)", "check": "> 0"})
    clean_min_gap: float = field(default=0.2, metadata={"help": "minimum oracle gap of clean and flipped pairs", "check": ">= 0"})
    tie_max_gap: float = field(default=0.02, metadata={"help": "maximum oracle gap of near-tie pairs", "check": ">= 0"})
    easy_min_reward: float = field(default=0.5, metadata={"help": "minimum oracle reward of an easy pair's good side", "check": "[0, 1]"})
    rater_noise: float = field(default=0.1, metadata={"help": "std of the external rater's noise (score_chosen/score_rejected)", "check": ">= 0"})
    # Default off: the injected-flip lab controls the noise level and tags every flip (claim 5's
    # sweep needs that); labels_from_ratings is the lab as real data is (UltraFeedback-binarized).
    labels_from_ratings: bool = field(default=False, metadata={"help": "label the training pairs by the noisy rater (chosen = higher rated, as UltraFeedback-binarized): wrong labels are exactly its rating errors; no pair is flipped on purpose (frac_flipped's share is built as clean pairs) and rater_noise is solved from rater_agreement"})
    rater_agreement: float = field(default=0.85, metadata={"help": "with labels_from_ratings: the rater agrees with the oracle's preference on this share of non-tied pairs (default 0.85: GPT-4 against human experts on MT-Bench, Zheng et al. 2023)", "check": "(0.5, 1)"})
    rater_bias: float = field(default=0.0, metadata={"help": "a systematic rater bias: this share of the training pairs whose answers differ in length is labelled 'the longer one is better', right or wrong (column biased); no pair is flipped on purpose (frac_flipped's share is built as clean pairs)", "check": "[0, 1]"})
    ratings: str = field(default="rater", metadata={"help": "who gives the ratings score_chosen/score_rejected: 'rater', the rater who labelled (its ratings agree with its label, wrong or right, as in UltraFeedback); 'independent', each answer's own noisy rating whatever the label (the lab before 2026-12-07: on a wrong label the rating gap points to the truth, a leak no team has); with labels_from_ratings the label is the rating's argmax and both are the same", "check": ("rater", "independent")})
    sft_steps: int = field(default=800, metadata={"help": "SFT optimizer steps (the model learns the tasks, and the habits, but not perfectly)", "check": ">= 0"})
    sft_flaw_rate: float = field(default=0.3, metadata={"help": "share of SFT demonstrations with a systematic habit (extra item, dropped item, input echoed) that preference data can train away", "check": "[0, 1]"})
    sft_batch_size: int = field(default=64, metadata={"help": "SFT sequences per step", "check": ">= 1"})
    lr: float = field(default=3e-3, metadata={"help": "SFT peak learning rate (AdamW, warm-up then cosine)", "check": "> 0"})
    sft_warmup_steps: int = field(default=20, metadata={"help": "SFT linear warm-up steps", "check": ">= 0"})
    threads: int | None = field(default=None, metadata={"help": "torch intra-op threads while building (None: leave as is)", "check": ">= 1"})
    resume: bool = field(default=True, metadata={"help": "reuse sft_model/ when it was trained with the same settings"})
    share_sft: bool = field(default=True, metadata={"help": "keep a copy of the SFT model in the prefsift cache and reuse it in any folder whose lab has the same SFT settings"})
    progress: bool = field(default=True, metadata={"help": "show tqdm progress bars"})

    def __post_init__(self):
        check_fields(self)  # types and the ranges in each field's "check"
        total = sum(self.proportions().values())
        if abs(total - 1.0) > 1e-6:
            given = ", ".join(f"frac_{t} {v:g}" for t, v in self.proportions().items())
            raise ConfigError(key="frac_clean", problem=f"and the other pair type fractions must sum to 1, got "
                                                        f"{total:.6g} ({given})")

    def proportions(self) -> dict[str, float]:
        return {t: getattr(self, f"frac_{t}") for t in PAIR_TYPES}

    def sft_config(self) -> SFTConfig:
        return SFTConfig(preset=self.preset, seed=self.seed, steps=self.sft_steps,
                         batch_size=self.sft_batch_size, lr=self.lr, warmup_steps=self.sft_warmup_steps,
                         flaw_rate=self.sft_flaw_rate)

    def pair_config(self) -> PairConfig:
        return PairConfig(bt_temperature=self.bt_temperature, clean_min_gap=self.clean_min_gap,
                          tie_max_gap=self.tie_max_gap, easy_min_reward=self.easy_min_reward,
                          rater_noise=self.rater_noise, labels_from_ratings=self.labels_from_ratings,
                          rater_agreement=self.rater_agreement, rater_bias=self.rater_bias,
                          ratings=self.ratings)


# Bump when a change to the SFT code (sft.py, task.py, the presets) changes the model it trains, so
# that shared copies made by older code are not reused.
SFT_CODE_VERSION = 2


def _shared_sft_dir(sft_hash: str) -> Path:
    return cache_dir() / "lab_sft" / sft_hash


def _sft_problem(folder: Path, sft_hash: str) -> str | None:
    """None when ``folder`` holds the SFT model of ``sft_hash`` exactly as it was saved; otherwise
    why not ("absent" when there is no such model at all, which needs no note)."""
    try:
        stamp = json.loads((folder / SFT_STAMP).read_text())
    except (OSError, ValueError):
        return "absent" if not (folder / SFT_STAMP).exists() else "its stamp is unreadable"
    if not isinstance(stamp, dict) or stamp.get("hash") != sft_hash:
        return "absent"  # another lab's model
    return artifacts.verify_folder(folder, stamp.get("files"))


def _stamp_hash(folder: Path) -> str | None:
    """The hash of the SFT model in ``folder`` when its files match their recorded checksums."""
    try:
        sft_hash = json.loads((folder / SFT_STAMP).read_text()).get("hash")
    except (OSError, ValueError, AttributeError):
        return None
    return sft_hash if _sft_problem(folder, sft_hash) is None else None


def _write_stamp(sft_dir: Path, sft_hash: str, sft_log) -> None:
    files = {k: v for k, v in artifacts.folder_digest(sft_dir).items() if k != SFT_STAMP}
    artifacts.write_json(sft_dir / SFT_STAMP, {"hash": sft_hash, "log": sft_log, "files": files}, seal=False)


def _copy_from_cache(shared: Path, sft_dir: Path, sft_hash: str) -> bool:
    """Copy a shared SFT model into ``sft_dir`` through a temporary folder renamed into place, so a
    killed copy never leaves a stamp without weights; False (train instead) on any problem."""
    if _stamp_hash(shared) != sft_hash:
        return False
    tmp = Path(tempfile.mkdtemp(dir=sft_dir.parent, prefix=".sft-"))
    try:
        shutil.copytree(shared, tmp, dirs_exist_ok=True)
        if _stamp_hash(tmp) != sft_hash:
            return False
        if sft_dir.exists():
            shutil.rmtree(sft_dir)
        os.rename(tmp, sft_dir)
        return True
    except OSError:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _copy_to_cache(sft_dir: Path, shared: Path) -> None:
    """Publish a trained SFT model: copy to a private temporary folder, then rename it into place.
    If another process published the same hash first, keep theirs (same settings, same model)."""
    shared.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=shared.parent, prefix=f".{shared.name}-"))
    try:
        shutil.copytree(sft_dir, tmp, dirs_exist_ok=True)
        if shared.exists() and _stamp_hash(shared) is None:
            # A damaged published copy (it failed its checksums): replace it, or every later lab with
            # these settings would train again.
            print(f"note: replacing the damaged shared SFT model {shared}", flush=True)
            aside = shared.with_name(f".{shared.name}.damaged{os.getpid()}")
            os.rename(shared, aside)
            shutil.rmtree(aside, ignore_errors=True)
        os.rename(tmp, shared)
    except OSError:
        pass  # already published (rename onto a non-empty folder fails), or the cache is read-only
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    artifacts.write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), seal=False)


def _mean(xs) -> float | None:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else None


def make_lab(cfg: LabConfig, out_dir) -> dict:
    """Build the lab into ``out_dir`` (see the module docstring) and return its summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    with torch_threads(cfg.threads):
        # Prompts: held-out test prompts first, then validation, then train; all distinct.
        t0 = time.perf_counter()
        tokenizer = build_lab_tokenizer()
        gen = PromptGenerator(cfg.seed)
        test = [p.text for p in gen.draw(cfg.n_test_prompts)]
        val_prompts = [p.text for p in gen.draw(cfg.n_validation)]
        train_prompts = [p.text for p in gen.draw(cfg.n_train)]
        timings["prompts_and_tokenizer"] = time.perf_counter() - t0

        # SFT (skipped when a matching model is already there).
        t0 = time.perf_counter()
        sft_dir = out / "sft_model"
        sft_key = {"sft": asdict(cfg.sft_config()), "vocab": lab_vocab(), "code": SFT_CODE_VERSION,
                   "test_prompts": artifacts.stable_key(test)}
        sft_hash = artifacts.stable_key(sft_key)
        stamp = sft_dir / SFT_STAMP
        resumed = from_cache = False
        shared = _shared_sft_dir(sft_hash) if cfg.share_sft else None
        if cfg.resume and shared is not None and _stamp_hash(sft_dir) != sft_hash:
            from_cache = _copy_from_cache(shared, sft_dir, sft_hash)
        problem = _sft_problem(sft_dir, sft_hash)
        if cfg.resume and problem not in (None, "absent"):
            print(f"note: training the lab's SFT model again: {sft_dir} cannot be trusted, {problem}", flush=True)
        if cfg.resume and problem is None:
            model, _ = load_sft(sft_dir)
            sft_log = json.loads(stamp.read_text())["log"]
            resumed = True
        else:
            model, sft_log = train_sft(tokenizer, cfg.sft_config(), exclude_prompts=test,
                                       progress=cfg.progress)
            (sft_dir / SFT_STAMP).unlink(missing_ok=True)
            save_sft(model, tokenizer, sft_dir)
            _write_stamp(sft_dir, sft_hash, sft_log)
            if shared is not None:
                _copy_to_cache(sft_dir, shared)
        timings["sft"] = time.perf_counter() - t0

        # Sample the SFT model on every pair prompt (and once on each test prompt, for the summary).
        t0 = time.perf_counter()
        kw = dict(temperature=cfg.sample_temperature, progress=cfg.progress)
        val_samples = sample_responses(model, tokenizer, val_prompts, cfg.samples_per_prompt,
                                       seed=cfg.seed + 1, desc="sampling validation", **kw)
        train_samples = sample_responses(model, tokenizer, train_prompts, cfg.samples_per_prompt,
                                         seed=cfg.seed + 2, desc="sampling train", **kw)
        test_samples = sample_responses(model, tokenizer, test, 1, seed=cfg.seed + 3,
                                        desc="sampling test", **kw)
        timings["sampling"] = time.perf_counter() - t0

        # Pairs.
        t0 = time.perf_counter()
        pcfg = cfg.pair_config()
        val_mix = {"clean": 1.0} if cfg.validation_mix == "clean" else cfg.proportions()
        if cfg.validation_mix == "careful":  # the training mix, every label right: no flip either
            val_mix = {**val_mix, "clean": val_mix["clean"] + val_mix["flipped"], "flipped": 0.0}
        val_rows = build_pairs(val_prompts, val_samples, val_mix, pcfg, seed=cfg.seed,
                               split="validation", oracle_labels=cfg.validation_mix in ("clean", "careful"))
        train_rows = build_pairs(train_prompts, train_samples, cfg.proportions(), pcfg,
                                 seed=cfg.seed, split="train")
        test_rows = [{"id": f"lab-test-{i:06d}", "prompt": p, "task": parse_prompt(p).task,
                      "reference": best_response(p)} for i, p in enumerate(test)]
        timings["pairs"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        _write_jsonl(out / "train.jsonl", train_rows)
        _write_jsonl(out / "validation.jsonl", val_rows)
        _write_jsonl(out / "test_prompts.jsonl", test_rows)
        timings["write"] = time.perf_counter() - t0

    timings["total"] = time.perf_counter() - t_all
    summary = _summarise(cfg, train_prompts + val_prompts, train_samples + val_samples,
                         test, test_samples, train_rows, val_rows, sft_log, resumed, timings, from_cache)
    summary["out_dir"] = str(out)
    (out / "lab_summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _summarise(cfg, prompts, samples, test, test_samples, train_rows, val_rows, sft_log, resumed,
               timings, from_cache=False) -> dict:
    by_task: dict[str, list[float]] = defaultdict(list)
    for p, draws in zip(prompts, samples):
        task = parse_prompt(p).task
        by_task[task].extend(oracle_reward(p, s) for s in draws)
    rng = random.Random(f"{cfg.seed}-random-baseline")

    def split_stats(rows):
        kinds = Counter(r["pair_type"] for r in rows)
        correct = defaultdict(list)
        for r in rows:
            correct[r["pair_type"]].append(r["label_correct"])
        return {
            "pairs": len(rows),
            "by_type": {t: kinds.get(t, 0) for t in PAIR_TYPES},
            "label_correct_rate": _mean(r["label_correct"] for r in rows),
            "label_correct_by_type": {t: _mean(v) for t, v in correct.items()},
            "both_sides_sampled": _mean(r["origin_chosen"] == r["origin_rejected"] == "sample" for r in rows),
            "ratings": rating_leak(rows),
        }

    return {
        "config": asdict(cfg),
        "splits": {"train": split_stats(train_rows), "validation": split_stats(val_rows),
                   "test_prompts": len(test)},
        "rewards": {
            "sft_samples": _mean(x for v in by_task.values() for x in v),
            "sft_samples_by_task": {t: _mean(v) for t, v in sorted(by_task.items())},
            "sft_test": _mean(oracle_reward(p, s[0]) for p, s in zip(test, test_samples)),
            "random_tokens": _mean(oracle_reward(p, random_response(rng)) for p in prompts),
            "best": _mean(oracle_reward(p, best_response(p)) for p in prompts),
        },
        "sft": {"preset": cfg.preset, "steps": cfg.sft_steps, "final_loss": sft_log.get("final_loss"),
                "resumed": resumed and not from_cache, "from_cache": from_cache},
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }


def rating_leak(rows) -> dict:
    """How much the ratings say about the truth the labels hide: over the wrong labels, the share
    whose rating gap (score_chosen − score_rejected) points to the truth (< 0: the rejected answer
    rated higher); over the right labels, the share whose gap points against the label. With
    ``ratings: rater`` both are 0 by construction; with ``independent`` the first is near 1."""
    right = np.array([bool(r["label_correct"]) for r in rows], dtype=bool)
    gap = np.array([r["score_chosen"] - r["score_rejected"] for r in rows], dtype=float)
    share = lambda among: (gap_below_zero(gap, among) or (None,))[0]  # noqa: E731
    return {"wrong_labels": int((~right).sum()), "wrong_gap_points_to_truth": share(~right),
            "right_gap_points_against_label": share(right)}


def _fmt(x, width: int = 8, digits: int = 3) -> str:
    return f"{'-':>{width}}" if x is None else f"{x:>{width}.{digits}f}"


def format_summary(summary: dict) -> str:
    """A readable multi-line table of a `make_lab` summary, for a CLI to print."""
    lines = []
    rw = summary["rewards"]
    lines.append(f"prefsift lab  ->  {summary.get('out_dir', '')}")
    lines.append("")
    lines.append("mean oracle reward (temperature {:.1f})".format(summary["config"]["sample_temperature"]))
    lines.append(f"  {'random tokens':<24}{_fmt(rw['random_tokens'])}")
    lines.append(f"  {'SFT samples (pairs)':<24}{_fmt(rw['sft_samples'])}")
    lines.append(f"  {'SFT samples (test)':<24}{_fmt(rw['sft_test'])}")
    lines.append(f"  {'best response':<24}{_fmt(rw['best'])}")
    for task, v in rw["sft_samples_by_task"].items():
        lines.append(f"    SFT on {task:<17}{_fmt(v)}")
    lines.append("")
    tr, va = summary["splits"]["train"], summary["splits"]["validation"]
    lines.append(f"  {'pair type':<18}{'train':>8}{'labels ok':>11}{'validation':>12}{'labels ok':>11}")
    for t in PAIR_TYPES:
        a, b = tr["by_type"][t], va["by_type"][t]
        ca = tr["label_correct_by_type"].get(t)
        cb = va["label_correct_by_type"].get(t)
        fa, fb = _fmt(ca, 11, 2), _fmt(cb, 11, 2)
        lines.append(f"  {t:<18}{a:>8}{fa}{b:>12}{fb}")
    lines.append(f"  {'total':<18}{tr['pairs']:>8}{_fmt(tr['label_correct_rate'], 11, 2)}"
                 f"{va['pairs']:>12}{_fmt(va['label_correct_rate'], 11, 2)}")
    lines.append(f"  test prompts: {summary['splits']['test_prompts']}   pairs with both sides "
                 f"sampled: train {_fmt(tr['both_sides_sampled'], 0, 2)}, "
                 f"validation {_fmt(va['both_sides_sampled'], 0, 2)}")
    leak = tr.get("ratings") or {}
    if leak.get("wrong_labels"):
        lines.append(f"  ratings ({summary['config'].get('ratings', 'rater')}): on the {leak['wrong_labels']} "
                     f"wrong labels the rating gap points to the truth for "
                     f"{100 * leak['wrong_gap_points_to_truth']:.1f} %"
                     + (" (a leak: rules that read ratings see what a team cannot)"
                        if leak["wrong_gap_points_to_truth"] > 0 else ""))
    lines.append("")
    sft = summary["sft"]
    state = "from the prefsift cache" if sft.get("from_cache") else ("reused" if sft["resumed"] else "trained")
    lines.append(f"SFT model: {sft['preset']}, {sft['steps']} steps, final loss {sft['final_loss']:.3f} ({state})")
    lines.append("wall time: " + ", ".join(f"{k} {v:.1f}s" for k, v in summary["timings_s"].items()))
    return "\n".join(lines)

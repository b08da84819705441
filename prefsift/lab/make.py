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
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..core import artifacts
from ..core.checks import check_fields
from ..core.errors import ConfigError
from ..models.loading import TINY_PRESETS
from .pairs import PAIR_TYPES, PairConfig, build_pairs
from .sample import sample_responses
from .sft import SFTConfig, load_sft, save_sft, torch_threads, train_sft
from .sft_cache import (
    SFT_CODE_VERSION,
    SFT_STAMP,
    _copy_from_cache,
    _copy_to_cache,
    _sft_problem,
    _shared_sft_dir,
    _stamp_hash,
    _write_stamp,
)
from .summary import _summarise
from .task import (
    PromptGenerator,
    best_response,
    parse_prompt,
)
from .tokenizer import build_lab_tokenizer, lab_vocab


@dataclass
class LabConfig:
    """Everything that defines a lab; the same config and seed give byte-identical data files."""

    seed: int = field(default=0,
                      metadata={"help": "master seed (prompts, model init, sampling, labels)"})
    preset: str = field(default="lab-a", metadata={"help": "tiny model preset: lab-a "
            "(Llama-style), lab-b (Qwen2-style), tiny (tests)", "check": tuple(TINY_PRESETS)})
    n_train: int = field(default=2000,
                         metadata={"help": "training pairs (one prompt each)", "check": ">= 1"})
    n_validation: int = field(default=300, metadata={"help": "validation pairs (prompts disjoint "
                                                             "from train)", "check": ">= 0"})
    n_test_prompts: int = field(default=1000, metadata={"help": "held-out prompts for evaluation "
            "(1,000 by default, so that paired differences of a few points between arms can be "
            "seen; docs/results.md gives the smallest difference this design detects)",
            "check": ">= 0"})
    samples_per_prompt: int = field(default=6, metadata={"help": "SFT samples drawn per prompt to "
                                                                 "build its pair", "check": ">= 1"})
    sample_temperature: float = field(default=1.0, metadata={"help": "sampling temperature of the "
                                                                     "SFT model", "check": "> 0"})
    frac_clean: float = field(default=0.6, metadata={"help": "share of clean pairs (clear gap, "
                                                     "Bradley–Terry label)", "check": "[0, 1]"})
    frac_flipped: float = field(default=0.1, metadata={"help": "share of deliberately flipped "
                                                               "labels", "check": "[0, 1]"})
    frac_near_tie: float = field(default=0.1,
                                 metadata={"help": "share of near-tie pairs", "check": "[0, 1]"})
    frac_near_duplicate: float = field(default=0.1, metadata={"help": "share of pairs differing in "
                                                              "one token", "check": "[0, 1]"})
    frac_easy: float = field(default=0.1,
                             metadata={"help": "share of good-vs-garbage pairs", "check": "[0, 1]"})
    # Default careful (since 2026-12-07; it was clean): every testbed validates the same way, as a
    # team can (an expert-labelled sample of its own data), so that a rule reading the validation
    # set is ranked on how the labels are wrong, not on what the validation set looks like.
    validation_mix: str = field(default="careful", metadata={"help": "'careful': train's mix of "
            "pair types, every label the oracle's (a team's small set of its own data labelled by "
            "experts); 'clean': validation pairs are all clean with oracle labels; 'train': same "
            "mix and noise as train", "check": ("careful", "clean", "train")})
    bt_temperature: float = field(default=0.1, metadata={"help": "Bradley–Terry labeller "
            "temperature: P(correct) = sigmoid(gap / T)", "check": "> 0"})
    clean_min_gap: float = field(default=0.2, metadata={"help": "minimum oracle gap of clean and "
                                                                "flipped pairs", "check": ">= 0"})
    tie_max_gap: float = field(default=0.02, metadata={"help": "maximum oracle gap of near-tie "
                                                               "pairs", "check": ">= 0"})
    easy_min_reward: float = field(default=0.5, metadata={"help": "minimum oracle reward of an "
            "easy pair's good side", "check": "[0, 1]"})
    rater_noise: float = field(default=0.1, metadata={"help": "std of the external rater's noise "
            "(score_chosen/score_rejected)", "check": ">= 0"})
    # Default off: the injected-flip lab controls the noise level and tags every flip (claim 5's
    # sweep needs that); labels_from_ratings is the lab as real data is (UltraFeedback-binarized).
    labels_from_ratings: bool = field(default=False, metadata={"help": "label the training pairs "
            "by the noisy rater (chosen = higher rated, as UltraFeedback-binarized): wrong labels "
            "are exactly its rating errors; no pair is flipped on purpose (frac_flipped's share is "
            "built as clean pairs) and rater_noise is solved from rater_agreement"})
    rater_agreement: float = field(default=0.85, metadata={"help": "with labels_from_ratings: the "
            "rater agrees with the oracle's preference on this share of non-tied pairs (default "
            "0.85: GPT-4 against human experts on MT-Bench, Zheng et al. 2023)",
            "check": "(0.5, 1)"})
    rater_bias: float = field(default=0.0, metadata={"help": "a systematic rater bias: this share "
            "of the training pairs whose answers differ in length is labelled 'the longer one is "
            "better', right or wrong (column biased); no pair is flipped on purpose "
            "(frac_flipped's share is built as clean pairs)", "check": "[0, 1]"})
    ratings: str = field(default="rater", metadata={"help": "who gives the ratings "
            "score_chosen/score_rejected: 'rater', the rater who labelled (its ratings agree with "
            "its label, wrong or right, as in UltraFeedback); 'independent', each answer's own "
            "noisy rating whatever the label (the lab before 2026-12-07: on a wrong label the "
            "rating gap points to the truth, a leak no team has); with labels_from_ratings the "
            "label is the rating's argmax and both are the same",
            "check": ("rater", "independent")})
    sft_steps: int = field(default=800, metadata={"help": "SFT optimizer steps (the model learns "
            "the tasks, and the habits, but not perfectly)", "check": ">= 0"})
    sft_flaw_rate: float = field(default=0.3, metadata={"help": "share of SFT demonstrations with "
            "a systematic habit (extra item, dropped item, input echoed) that preference data can "
            "train away", "check": "[0, 1]"})
    sft_batch_size: int = field(default=64,
                                metadata={"help": "SFT sequences per step", "check": ">= 1"})
    lr: float = field(default=3e-3, metadata={"help": "SFT peak learning rate (AdamW, warm-up then "
                                                      "cosine)", "check": "> 0"})
    sft_warmup_steps: int = field(default=20,
                                  metadata={"help": "SFT linear warm-up steps", "check": ">= 0"})
    threads: int | None = field(default=None, metadata={"help": "torch intra-op threads while "
            "building (None: leave as is)", "check": ">= 1"})
    resume: bool = field(default=True, metadata={"help": "reuse sft_model/ when it was trained "
                                                         "with the same settings"})
    share_sft: bool = field(default=True, metadata={"help": "keep a copy of the SFT model in the "
            "prefsift cache and reuse it in any folder whose lab has the same SFT settings"})
    progress: bool = field(default=True, metadata={"help": "show tqdm progress bars"})

    def __post_init__(self):
        check_fields(self)  # types and the ranges in each field's "check"
        total = sum(self.proportions().values())
        if abs(total - 1.0) > 1e-6:
            given = ", ".join(f"frac_{t} {v:g}" for t, v in self.proportions().items())
            raise ConfigError(key="frac_clean",
                              problem=f"and the other pair type fractions must sum to 1, got "
                                      f"{total:.6g} ({given})")

    def proportions(self) -> dict[str, float]:
        return {t: getattr(self, f"frac_{t}") for t in PAIR_TYPES}

    def sft_config(self) -> SFTConfig:
        return SFTConfig(preset=self.preset, seed=self.seed, steps=self.sft_steps,
                         batch_size=self.sft_batch_size, lr=self.lr,
                         warmup_steps=self.sft_warmup_steps, flaw_rate=self.sft_flaw_rate)

    def pair_config(self) -> PairConfig:
        return PairConfig(bt_temperature=self.bt_temperature, clean_min_gap=self.clean_min_gap,
                          tie_max_gap=self.tie_max_gap, easy_min_reward=self.easy_min_reward,
                          rater_noise=self.rater_noise,
                          labels_from_ratings=self.labels_from_ratings,
                          rater_agreement=self.rater_agreement, rater_bias=self.rater_bias,
                          ratings=self.ratings)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    artifacts.write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows),
                         seal=False)


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
            print(f"note: training the lab's SFT model again: {sft_dir} cannot be trusted, "
                  f"{problem}", flush=True)
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
                               split="validation", oracle_labels=cfg.validation_mix
                               in ("clean", "careful"))
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
                         test, test_samples, train_rows, val_rows, sft_log, resumed, timings,
                         from_cache)
    summary["out_dir"] = str(out)
    (out / "lab_summary.json").write_text(json.dumps(summary, indent=1))
    return summary



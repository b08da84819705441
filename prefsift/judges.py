"""Judges: one small protocol, so users can bring their own.

A judge answers two questions about answers to a prompt:
- `score(prompt, answer)` → a number, higher is better (the "single score");
- `prefer(prompt, a, b)` → P(a is better than b) in [0, 1], 0.5 for a tie.

`Judge` derives `prefer` from `score` (a tie when the scores are equal); pairwise judges override
`prefer`. `Swapped(judge)` asks in both orders and averages, which cancels any preference for a
position: for a judge that always prefers the first answer it returns exactly 0.5."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from .errors import UserError


class Judge:
    name = "judge"

    def score(self, prompt: str, answer: str) -> float:
        raise NotImplementedError

    def scores(self, prompts: Sequence[str], answers: Sequence[str]) -> list[float]:
        return [self.score(p, a) for p, a in zip(prompts, answers)]

    def prefer(self, prompt: str, a: str, b: str) -> float:
        sa, sb = self.score(prompt, a), self.score(prompt, b)
        return 1.0 if sa > sb else 0.0 if sa < sb else 0.5

    def prefers(self, prompts: Sequence[str], a: Sequence[str], b: Sequence[str]) -> list[float]:
        return [self.prefer(p, x, y) for p, x, y in zip(prompts, a, b)]


class Swapped(Judge):
    """Ask the wrapped judge in both orders: ½·(P(a ≻ b) + 1 − P(b ≻ a))."""

    def __init__(self, judge: Judge):
        self.judge = judge
        self.name = f"{judge.name} (both orders)"

    def score(self, prompt, answer):
        return self.judge.score(prompt, answer)

    def prefer(self, prompt, a, b):
        return 0.5 * (self.judge.prefer(prompt, a, b) + 1.0 - self.judge.prefer(prompt, b, a))


class ConstantJudge(Judge):
    """Scores every answer the same: every comparison is a tie (a check of the WinRate arithmetic)."""

    name = "constant"

    def score(self, prompt, answer):
        return 0.0


class FirstPositionJudge(Judge):
    """Always prefers the answer shown first: pure position bias."""

    name = "first-position"

    def score(self, prompt, answer):
        return 0.0

    def prefer(self, prompt, a, b):
        return 1.0


class OracleJudge(Judge):
    """The lab's programmatic oracle reward in [0, 1]."""

    name = "lab oracle"

    def score(self, prompt, answer):
        from .lab import oracle_reward

        return float(oracle_reward(prompt, answer))


class LexiconJudge(Judge):
    """Positive sentiment by the VADER lexicon (compound score in [-1, 1]); needs `vaderSentiment`."""

    name = "VADER sentiment"

    def __init__(self):
        try:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        except ImportError as e:  # pragma: no cover - depends on the install
            raise UserError("the lexicon judge (VADER) is not installed: `pip install vaderSentiment`") from e
        self._analyzer = SentimentIntensityAnalyzer()

    def score(self, prompt, answer):
        return float(self._analyzer.polarity_scores(answer)["compound"])


class RewardModelJudge(Judge):
    """A local sequence-classification reward model folder: score = its logit for prompt+answer."""

    def __init__(self, folder: str, max_length: int = 1024, batch_size: int = 8):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from .models import load_pretrained

        self.model = load_pretrained(AutoModelForSequenceClassification, folder, dtype=torch.float32).eval()
        self.tok = AutoTokenizer.from_pretrained(folder)
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
            self.model.config.pad_token_id = self.tok.pad_token_id
        self.name = f"reward model {folder}"
        self.max_length, self.batch_size = max_length, batch_size

    def _texts(self, prompts, answers):
        if self.tok.chat_template:
            return [self.tok.apply_chat_template([{"role": "user", "content": p}, {"role": "assistant", "content": a}],
                                                 tokenize=False) for p, a in zip(prompts, answers)]
        return [p + a for p, a in zip(prompts, answers)]

    @torch.no_grad()
    def scores(self, prompts, answers):
        texts = self._texts(prompts, answers)
        out = []
        for s in range(0, len(texts), self.batch_size):
            enc = self.tok(texts[s:s + self.batch_size], return_tensors="pt", padding=True, truncation=True,
                           max_length=self.max_length)
            out += self.model(**enc).logits[:, 0].float().tolist()
        return out

    def score(self, prompt, answer):
        return self.scores([prompt], [answer])[0]


class LLMPairwiseJudge(Judge):
    """A local causal LM asked which of two answers is better; P(a ≻ b) from its next-token
    probabilities of "A" and "B". Wrap in `Swapped` to cancel its position bias."""

    TEMPLATE = ("Which answer to the question is better?\n\nQuestion: {prompt}\n\nAnswer A: {a}\n\n"
                "Answer B: {b}\n\nReply with the letter of the better answer, A or B.")

    def __init__(self, model, tokenizer, name: str = "LLM judge"):
        self.model, self.tok, self.name = model.eval(), tokenizer, name
        self._ids = [self._letter_id(x) for x in ("A", "B")]

    def _letter_id(self, letter):
        ids = self.tok.encode(letter, add_special_tokens=False)
        if len(ids) != 1:
            raise UserError(f"the judge's tokenizer splits {letter!r} into {len(ids)} tokens, so it cannot answer A "
                            "or B; use another judge model")
        return ids[0]

    @torch.no_grad()
    def prefer(self, prompt, a, b):
        text = self.TEMPLATE.format(prompt=prompt.strip(), a=a.strip(), b=b.strip())
        if self.tok.chat_template:
            enc = self.tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                               return_tensors="pt", return_dict=True)
        else:
            enc = self.tok(text + "\nAnswer:", return_tensors="pt")
        logits = self.model(**enc).logits[0, -1].float()
        pa, pb = torch.softmax(logits[self._ids], dim=0).tolist()
        return pa

    def score(self, prompt, answer):  # a single score: preference over an empty answer
        return self.prefer(prompt, answer, "")


JUDGE_SPECS = "oracle, lexicon, reward:FOLDER or llm:MODEL"


def judge_spec_problem(spec) -> str | None:
    """Why ``spec`` does not name a judge (None: it does); checks the form only, touches nothing."""
    if spec in ("oracle", "lexicon", "constant"):
        return None
    if isinstance(spec, str) and spec.startswith(("reward:", "llm:")):
        if spec.split(":", 1)[1].strip():
            return None
        return f"{spec!r} names no model: write {spec}FOLDER"
    from .errors import did_you_mean

    return f"must be {JUDGE_SPECS}; got {spec!r}{did_you_mean(spec, ('oracle', 'lexicon'))}"


def check_judge(spec: str, prompts: Sequence[str] | None = None, where: str = "the test prompts") -> None:
    """Everything about a judge that can be checked before any work: the spec's form, that what it
    needs is installed or exists (VADER, the reward model's folder, the LLM), and that it can judge
    ``prompts`` (the oracle knows only the lab's prompts). Raises a `ConfigError` keyed `judge`."""
    from .errors import ConfigError, require_path

    problem = judge_spec_problem(spec)
    if problem:
        raise ConfigError(key="judge", problem=problem)
    if spec == "oracle" and prompts is not None:
        from .lab import parse_prompt

        for i, p in enumerate(prompts):
            try:
                parse_prompt(p)
            except (ValueError, TypeError):
                raise ConfigError(key="judge", problem=f"`oracle` scores the lab's prompts only, and prompt {i + 1} of "
                                                       f"{where} is not one ({str(p)[:40]!r}); use lexicon, "
                                                       "reward:FOLDER or llm:MODEL") from None
    elif spec == "lexicon":
        try:
            import vaderSentiment.vaderSentiment  # noqa: F401
        except ImportError:
            raise ConfigError(key="judge", problem="`lexicon` needs VADER, which is not installed: "
                                                   "`pip install vaderSentiment`") from None
    elif spec.startswith("reward:"):
        folder = spec.split(":", 1)[1]
        require_path(folder, "reward model folder", "judge", kind="dir")
        if not (Path(folder).expanduser() / "config.json").exists():
            raise ConfigError(key="judge", problem=f": {folder!r} has no config.json, so it is not a Hugging Face "
                                                   "model folder; give a sequence-classification reward model folder")
        from .models import check_safe_weights

        check_safe_weights(Path(folder).expanduser())  # a pickle-only folder is refused now, not after training
    elif spec.startswith("llm:"):
        from .models import ModelSourceError, resolve_model_path

        target = spec.split(":", 1)[1]
        try:
            resolve_model_path(target)
        except ModelSourceError as e:
            raise ConfigError(key="judge", problem=f": {e}") from None
        from .models import load_tokenizer

        tok = load_tokenizer(target)  # the tokenizer only: cheap, and it decides whether the judge can answer
        for letter in ("A", "B"):
            n = len(tok.encode(letter, add_special_tokens=False))
            if n != 1:
                raise ConfigError(key="judge", problem=f": the tokenizer of {target!r} splits {letter!r} into {n} "
                                                       "tokens, so it cannot answer A or B; use another judge model")


def make_judge(spec: str) -> Judge:
    """`oracle`, `lexicon`, `reward:FOLDER`, `llm:MODEL` (a folder or `smollm2`, asked in both orders)."""
    if spec == "oracle":
        return OracleJudge()
    if spec == "lexicon":
        return LexiconJudge()
    if spec == "constant":
        return ConstantJudge()
    if spec.startswith("reward:"):
        return RewardModelJudge(spec.split(":", 1)[1])
    if spec.startswith("llm:"):
        from .models import load_model, load_tokenizer

        target = spec.split(":", 1)[1]
        return Swapped(LLMPairwiseJudge(load_model(target), load_tokenizer(target), name=f"LLM judge {target}"))
    from .errors import ConfigError

    raise ConfigError(key="judge", problem=judge_spec_problem(spec) or f"must be {JUDGE_SPECS}; got {spec!r}")

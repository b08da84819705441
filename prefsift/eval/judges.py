"""Judges: one small protocol, so users can bring their own.

A judge answers two questions about answers to a prompt:
- `score(prompt, answer)` → a number, higher is better (the "single score");
- `prefer(prompt, a, b)` → P(a is better than b) in [0, 1], 0.5 for a tie.

`Judge` derives `prefer` from `score` (a tie when the scores are equal); pairwise judges override
`prefer`. `Swapped(judge)` asks in both orders and averages, which cancels any preference for a
position: for a judge that always prefers the first answer it returns exactly 0.5."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from ..core.errors import ConfigError, UserError, did_you_mean, require_path
from ..core.registry import Registry
from ..models.loading import (
    ModelSourceError,
    check_safe_weights,
    load_model,
    load_pretrained,
    load_tokenizer,
    resolve_model_path,
    tokenizer_from_folder,
)
from .api_judge import check_openai, make_openai


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

    asks_both_orders = True

    def __init__(self, judge: Judge):
        self.judge = judge
        self.name = f"{judge.name} (both orders)"

    def score(self, prompt, answer):
        return self.judge.score(prompt, answer)

    def prefer(self, prompt, a, b):
        return 0.5 * (self.judge.prefer(prompt, a, b) + 1.0 - self.judge.prefer(prompt, b, a))


class ConstantJudge(Judge):
    """Scores every answer the same: every comparison is a tie (a check of the WinRate
    arithmetic)."""

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


class LexiconJudge(Judge):
    """Positive sentiment by the VADER lexicon (compound score in [-1, 1]); needs
    `vaderSentiment`."""

    name = "VADER sentiment"

    def __init__(self):
        try:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        except ImportError as e:  # pragma: no cover - depends on the install
            raise UserError("the lexicon judge (VADER) is not installed: `pip install "
                            "vaderSentiment`") from e
        self._analyzer = SentimentIntensityAnalyzer()

    def score(self, prompt, answer):
        return float(self._analyzer.polarity_scores(answer)["compound"])


class RewardModelJudge(Judge):
    """A local sequence-classification reward model folder: score = its logit for prompt+answer."""

    def __init__(self, folder: str, max_length: int = 1024, batch_size: int = 8):
        from transformers import AutoModelForSequenceClassification


        self.model = load_pretrained(AutoModelForSequenceClassification, folder,
                                     dtype=torch.float32).eval()
        self.tok = tokenizer_from_folder(folder)
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
            self.model.config.pad_token_id = self.tok.pad_token_id
        self.name = f"reward model {folder}"
        self.max_length, self.batch_size = max_length, batch_size

    def _texts(self, prompts, answers):
        if self.tok.chat_template:
            return [self.tok.apply_chat_template([{"role": "user", "content": p},
                                                  {"role": "assistant", "content": a}],
                                                 tokenize=False) for p, a in zip(prompts, answers)]
        return [p + a for p, a in zip(prompts, answers)]

    @torch.no_grad()
    def scores(self, prompts, answers):
        texts = self._texts(prompts, answers)
        out = []
        for s in range(0, len(texts), self.batch_size):
            enc = self.tok(texts[s:s + self.batch_size], return_tensors="pt", padding=True,
                           truncation=True, max_length=self.max_length)
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
            raise UserError(f"the judge's tokenizer splits {letter!r} into {len(ids)} tokens, so "
                            "it cannot answer A or B; use another judge model")
        return ids[0]

    @torch.no_grad()
    def prefer(self, prompt, a, b):
        text = self.TEMPLATE.format(prompt=prompt.strip(), a=a.strip(), b=b.strip())
        if self.tok.chat_template:
            enc = self.tok.apply_chat_template([{"role": "user", "content": text}],
                                               add_generation_prompt=True,
                                               return_tensors="pt", return_dict=True)
        else:
            enc = self.tok(text + "\nAnswer:", return_tensors="pt")
        logits = self.model(**enc).logits[0, -1].float()
        pa, pb = torch.softmax(logits[self._ids], dim=0).tolist()
        return pa

    def score(self, prompt, answer):  # a single score: preference over an empty answer
        return self.prefer(prompt, answer, "")


@dataclass(frozen=True)
class JudgeKind:
    """A registered judge: ``make(arg) -> Judge`` for the spec ``name`` or ``name:ARG``; ``takes``
    names the argument (FOLDER, MODEL) when one is needed; ``check(arg, prompts, where)`` raises a
    `ConfigError` for what can be found wrong before any work (None: nothing to check). A
    ``configured`` kind gets the run's `JudgeContext` as a last argument of both."""

    name: str
    make: Callable
    takes: str | None = None
    check: Callable | None = None
    help: str = ""
    listed: bool = True  # shown in the help and error texts (a test-only judge is not)
    configured: bool = False


@dataclass(frozen=True)
class JudgeContext:
    """What a run hands a judge that needs more than its spec: the `judge_api` settings, the folder
    of its verdict cache (None: in memory), and the run's log."""

    settings: object = None
    folder: Path | None = None
    log: Callable = print


JUDGES: Registry[JudgeKind] = Registry("judge", key="judge", plugins=True)


def register_judge(name: str, make: Callable, *, takes: str | None = None,
                   check: Callable | None = None, help: str = "", listed: bool = True,
                   replace: bool = False, configured: bool = False) -> JudgeKind:
    """Register a judge. ``make(arg)`` returns a `Judge` (``arg``: the text after ``name:`` in the
    spec, or None); a run config then names it (`judge: NAME` or `judge: NAME:ARG`), with the
    registering module under `plugins`."""
    return JUDGES.register(name, JudgeKind(name, make, takes, check, help, listed, configured),
                           replace=replace)


def judge_specs() -> str:
    """'lexicon, reward:FOLDER, ... or oracle': the specs of the listed judges, for help and
    errors."""
    specs = [k.name + (f":{k.takes}" if k.takes else "") for k in (JUDGES.get(n) for n in JUDGES)
             if k.listed]
    return specs[0] if len(specs) == 1 else ", ".join(specs[:-1]) + " or " + specs[-1]


def _split(spec) -> tuple[str, str | None]:
    name, sep, arg = spec.partition(":")
    return name, (arg if sep else None)


def judge_spec_problem(spec) -> str | None:
    """Why ``spec`` does not name a judge (None: it does); checks the form only, touches nothing."""
    if not isinstance(spec, str):
        return f"must be {judge_specs()}; got {spec!r}"
    name, arg = _split(spec)
    if name not in JUDGES:
        return f"must be {judge_specs()}; got {spec!r}{did_you_mean(spec, JUDGES.names())}"
    kind = JUDGES.get(name)
    if kind.takes and not (arg or "").strip():
        return f"{spec!r} names no {kind.takes.lower()}: write {name}:{kind.takes}"
    if not kind.takes and arg is not None:
        return f"{spec!r}: the {name} judge takes no argument; write {name}"
    return None


def check_judge(spec: str, prompts: Sequence[str] | None = None, where: str = "the test prompts",
                context: JudgeContext | None = None) -> None:
    """Everything about a judge that can be checked before any work: the spec's form, that what it
    needs is installed or exists (VADER, the reward model's folder, the LLM), and that it can judge
    ``prompts`` (the lab's oracle knows only the lab's prompts). Raises a `ConfigError` keyed
    `judge`."""
    problem = judge_spec_problem(spec)
    if problem:
        raise ConfigError(key="judge", problem=problem)
    name, arg = _split(spec)
    kind = JUDGES.get(name)
    if kind.check is not None:
        kind.check(arg, prompts, where, *([context] if kind.configured else []))


def make_judge(spec: str, context: JudgeContext | None = None) -> Judge:
    """The judge a spec names: `lexicon`, `reward:FOLDER`, `llm:MODEL` (a folder or `smollm2`, asked
    in both orders), `openai:MODEL` (an OpenAI-compatible endpoint, `context.settings`), the lab's
    `oracle` (registered by `prefsift.lab`), or a registered one."""
    problem = judge_spec_problem(spec)
    if problem:
        raise ConfigError(key="judge", problem=problem)
    name, arg = _split(spec)
    kind = JUDGES.get(name)
    return kind.make(arg, context) if kind.configured else kind.make(arg)


def _check_lexicon(arg, prompts, where):
    try:
        import vaderSentiment.vaderSentiment  # noqa: F401
    except ImportError:
        raise ConfigError(key="judge", problem="`lexicon` needs VADER, which is not installed: "
                                               "`pip install vaderSentiment`") from None


def _check_reward(folder, prompts, where):
    require_path(folder, "reward model folder", "judge", kind="dir")
    if not (Path(folder).expanduser() / "config.json").exists():
        raise ConfigError(key="judge",
                          problem=f": {folder!r} has no config.json, so it is not a Hugging Face "
                                  "model folder; give a sequence-classification reward model "
                                  "folder")
    # a pickle-only folder is refused now, not after training
    check_safe_weights(Path(folder).expanduser())


def _check_llm(target, prompts, where):
    try:
        resolve_model_path(target)
    except ModelSourceError as e:
        raise ConfigError(key="judge", problem=f": {e}") from None
    # the tokenizer only: cheap, and it decides whether the judge can answer
    tok = load_tokenizer(target)
    for letter in ("A", "B"):
        n = len(tok.encode(letter, add_special_tokens=False))
        if n != 1:
            raise ConfigError(key="judge",
                              problem=f": the tokenizer of {target!r} splits {letter!r} into {n} "
                                      "tokens, so it cannot answer A or B; use another judge model")


def _make_llm(target):
    return Swapped(LLMPairwiseJudge(load_model(target), load_tokenizer(target),
                                    name=f"LLM judge {target}"))


register_judge("lexicon", lambda arg: LexiconJudge(), check=_check_lexicon,
               help="VADER sentiment of the answer")
register_judge("reward", lambda folder: RewardModelJudge(folder), takes="FOLDER",
               check=_check_reward, help="a sequence-classification reward model's logit")
register_judge("llm", _make_llm, takes="MODEL", check=_check_llm,
               help="a causal LM asked which answer is better, in both orders")
def _check_openai(model, prompts, where, context=None):
    check_openai(model, prompts, where, context)


def _make_openai(model, context=None):
    return make_openai(model, context)


register_judge("openai", _make_openai, takes="MODEL", check=_check_openai, configured=True,
               help="a model behind an OpenAI-compatible endpoint (judge_api settings), in both "
                    "orders, cached")
register_judge("constant", lambda arg: ConstantJudge(), listed=False,
               help="every comparison a tie (for tests)")

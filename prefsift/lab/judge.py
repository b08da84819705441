"""The lab's oracle as a judge (`judge: oracle`), a judge with the length-biased rater's taste
(`judge: biased:SHARE`), and the lab's sampler as the answer sampler of lab models, registered with
`prefsift.eval` when the lab is imported."""

from __future__ import annotations

import hashlib

from ..core.errors import ConfigError
from ..eval.answers import SAMPLERS, Sampler
from ..eval.judges import Judge, register_judge
from .sample import sample_responses
from .task import oracle_reward, parse_prompt
from .tokenizer import lab_vocab


class OracleJudge(Judge):
    """The lab's programmatic oracle reward in [0, 1]."""

    name = "lab oracle"

    def score(self, prompt, answer):
        return float(oracle_reward(prompt, answer))


class BiasedOracleJudge(OracleJudge):
    """The oracle with a length-biased taste, like an AI judge that shares the raters' bias (one
    report counts the longer answer winning 68 % of GPT-4's verdicts): of the comparisons whose
    answers differ in length (words), a share ``share`` is decided "the longer is better"; the rest,
    and every single score, by the oracle. Which comparisons are biased is a fixed function of the
    prompt and the *unordered* pair of answers (a hash), so the verdict is the same in both orders
    and on every rerun."""

    def __init__(self, share: float):
        self.share = share
        self.name = f"lab oracle, length-biased on {100 * share:g} % of verdicts"

    def _biased(self, prompt: str, a: str, b: str) -> bool:
        x, y = sorted((a, b))
        h = hashlib.sha256("\x00".join((prompt, x, y)).encode()).digest()
        return int.from_bytes(h[:8], "big") / 2 ** 64 < self.share

    def prefer(self, prompt, a, b):
        la, lb = len(a.split()), len(b.split())
        if la != lb and self._biased(prompt, a, b):
            return 1.0 if la > lb else 0.0
        return super().prefer(prompt, a, b)


def _biased_share(arg) -> float | None:
    try:
        share = float(arg)
    except (TypeError, ValueError):
        return None
    return share if 0 <= share <= 1 else None


def _check_biased(arg, prompts, where):
    if _biased_share(arg) is None:
        raise ConfigError(key="judge", problem=f"biased:{arg}: the share of length-decided "
                                               "verdicts must be a number in [0, 1], e.g. "
                                               "biased:0.5")
    _check_oracle(None, prompts, where)


def _check_oracle(arg, prompts, where):
    for i, p in enumerate(prompts or ()):
        try:
            parse_prompt(p)
        except (ValueError, TypeError):
            raise ConfigError(key="judge", problem=f"`oracle` scores the lab's prompts only, and "
                                                   f"prompt {i + 1} of {where} is not one "
                                                   f"({str(p)[:40]!r}); use lexicon, "
                                                   "reward:FOLDER or llm:MODEL") from None


def _lab_answers(model, tokenizer, prompts, *, temperature, max_new_tokens, seed):
    return [s[0] for s in sample_responses(model, tokenizer, prompts, 1, temperature=temperature,
                                           max_new_tokens=max_new_tokens, seed=seed)]


def _is_lab_tokenizer(tokenizer) -> bool:
    return tokenizer.get_vocab() == lab_vocab()


register_judge("oracle", lambda arg: OracleJudge(), check=_check_oracle,
               help="the lab's programmatic oracle reward")
register_judge("biased", lambda arg: BiasedOracleJudge(_biased_share(arg)), takes="SHARE",
               check=_check_biased, help="the lab's oracle, but the longer answer wins a share "
                    "SHARE of the verdicts whose answers differ in length (a judge with the "
                    "raters' length bias)")
SAMPLERS.register("lab-sampler", Sampler("lab-sampler", _lab_answers, _is_lab_tokenizer))

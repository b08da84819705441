"""The lab's oracle as a judge (`judge: oracle`) and the lab's sampler as the answer sampler of lab
models, registered with `prefsift.eval` when the lab is imported."""

from __future__ import annotations

from ..errors import ConfigError
from ..eval.answers import SAMPLERS, Sampler
from ..eval.judges import Judge, register_judge
from .task import oracle_reward, parse_prompt


class OracleJudge(Judge):
    """The lab's programmatic oracle reward in [0, 1]."""

    name = "lab oracle"

    def score(self, prompt, answer):
        return float(oracle_reward(prompt, answer))


def _check_oracle(arg, prompts, where):
    for i, p in enumerate(prompts or ()):
        try:
            parse_prompt(p)
        except (ValueError, TypeError):
            raise ConfigError(key="judge", problem=f"`oracle` scores the lab's prompts only, and prompt {i + 1} of "
                                                   f"{where} is not one ({str(p)[:40]!r}); use lexicon, "
                                                   "reward:FOLDER or llm:MODEL") from None


def _lab_answers(model, tokenizer, prompts, *, temperature, max_new_tokens, seed):
    from .sample import sample_responses

    return [s[0] for s in sample_responses(model, tokenizer, prompts, 1, temperature=temperature,
                                           max_new_tokens=max_new_tokens, seed=seed)]


def _is_lab_tokenizer(tokenizer) -> bool:
    from .tokenizer import lab_vocab

    return tokenizer.get_vocab() == lab_vocab()


register_judge("oracle", lambda arg: OracleJudge(), check=_check_oracle, help="the lab's programmatic oracle reward")
SAMPLERS.register("lab-sampler", Sampler("lab-sampler", _lab_answers, _is_lab_tokenizer))

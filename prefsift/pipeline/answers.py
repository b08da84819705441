"""The held-out prompts' answers: π_ref's sampled once per seed and shared by every arm, and each
arm's own, on the same sampling seeds (the evaluation stage and the calibration probes use them)."""

from __future__ import annotations

from ..eval.answers import sampler_for


class Answers:
    """The held-out prompts, and π_ref's answers sampled once per seed and shared by every arm.

    Each prompt is answered `answers_per_prompt` times; answers are ordered answer-major (every
    prompt's first answer, then every prompt's second, ...), and `asked` holds the prompt of each.
    Answer k of every model is sampled with the same seed, so arms are compared on equal draws."""

    def __init__(self, run, inp, prompts: list[str], per_prompt: int | None = None):
        self.run, self.inp, self.prompts = run, inp, prompts
        self.per_prompt = run.cfg.answers_per_prompt if per_prompt is None else per_prompt
        self.asked = list(prompts) * self.per_prompt
        # A lab model (the lab's word-level tokenizer) is answered by the lab's sampler even from
        # files, as the lab's own runs are: the same answers for the same model and seed.
        self.sampler = sampler_for(inp.tokenizer)
        self._reference: dict[int, list[str]] = {}

    def of(self, model, seed: int) -> list[str]:
        cfg = self.run.cfg
        out = []
        for k in range(self.per_prompt):  # answer 0 keeps the seed a one-answer evaluation used
            out += self.sampler.answer(model, self.inp.tokenizer, self.prompts,
                                       temperature=cfg.temperature,
                                       max_new_tokens=cfg.max_new_tokens,
                                       seed=seed + 10_000 + 100_000 * k)
        return out

    def reference(self, seed: int) -> list[str]:
        if seed not in self._reference:
            self._reference[seed] = self.of(self.inp.reference, seed)
        return self._reference[seed]

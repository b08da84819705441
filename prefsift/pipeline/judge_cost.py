"""What a run's judging will cost, counted before it starts (`judge_budget` refuses a run over it).

The count is of judge calls: each question one order of one comparison asks (an API judge's
requests, without retries and before its cache). A run asks, per arm and seed, both orders of each
held-out prompt's answers against π_ref's (2·P·K), and, when `full` is an arm, both orders against
the full-data arm's answers for every other arm (2·P·K); a judge with single scores adds one call
per answer and per π_ref answer of each seed; calibration probes valued by a judge ask 2·P·K on the
validation prompts each. It is an upper bound: identical answers and cached verdicts cost nothing.

Tokens per call are the judge's prompt with the held-out prompt in it (counted with the judge's
tokenizer, `judge_api.tokenizer`, else the reference model's), plus two answers at the answer length
limit (`max_new_tokens`) and the reply (`judge_api.max_tokens`): an estimate from above, since an
answer is at most that many of the policy's tokens."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.errors import ConfigError
from ..selection.kinds import ArmContext
from .inputs import read_test_prompts
from .judging import is_api_judge, parse_budget
from .probed_arms import probe_plan


@dataclass
class JudgeCost:
    calls: int
    tokens: int | None  # None: not counted (the prompts or a tokenizer are not known yet)
    basis: str

    def describe(self) -> str:
        tokens = f", about {self.tokens:,} tokens" if self.tokens is not None else ""
        return f"{self.calls:,} judge calls{tokens} ({self.basis})"


def judge_cost(cfg, n_prompts: int, prompts: list[str] | None = None, tokenizer=None) -> JudgeCost:
    """The judge calls of a run with `cfg` on `n_prompts` held-out prompts (and, given the prompts
    and a tokenizer, the tokens)."""
    k, arms, seeds = cfg.answers_per_prompt, list(cfg.arms), list(cfg.seeds)
    api = cfg.judge_api
    scores = is_api_judge(cfg.judge) and api.single_score
    jobs = len(arms) * len(seeds)
    calls = 2 * n_prompts * k * jobs
    parts = [f"{jobs} arm x seed evaluations of {n_prompts} prompts x {k} answers in both orders"]
    if "full" in arms and len(arms) > 1:
        calls += 2 * n_prompts * k * (len(arms) - 1) * len(seeds)
        parts.append("the same against the full-data arm's answers")
    if scores:
        calls += n_prompts * k * (jobs + len(seeds))
        parts.append("single scores")
    st = cfg.calibration
    probes, _ = probe_plan(arms, st, ArmContext.of(cfg))
    if probes and st.by == "judge":
        calls += probes * st.prompts * st.answers * (3 if scores else 2)
        parts.append(f"{probes} calibration probes on at most {st.prompts} validation prompts x "
                     f"{st.answers} answers")
    if cfg.route == "rm_rl" and scores:
        parts.append("plus each reward model's judged validation pairs")
    tokens = None
    if is_api_judge(cfg.judge) and prompts and tokenizer is not None and n_prompts:
        template, system = api.prompt_texts()
        sent = [len(tokenizer.encode(system + template.format(prompt=p.strip(), a="", b=""),
                                     add_special_tokens=False))
                for p in prompts[:n_prompts]]
        tokens = int(round(calls * (sum(sent) / len(sent) + 2 * cfg.max_new_tokens
                                    + api.max_tokens)))
    return JudgeCost(calls, tokens, "; ".join(parts))


def check_judge_budget(cfg, cost: JudgeCost) -> None:
    """A `ConfigError` keyed `judge_budget` when `cost` exceeds it (tokens only once counted)."""
    if cfg.judge_budget is None:
        return
    budget = parse_budget(cfg.judge_budget)
    over = []
    if "calls" in budget and cost.calls > budget["calls"]:
        over.append(f"{cost.calls:,} judge calls, over the budget's {budget['calls']:,}")
    if "tokens" in budget and cost.tokens is not None and cost.tokens > budget["tokens"]:
        over.append(f"about {cost.tokens:,} judge tokens, over the budget's {budget['tokens']:,}")
    if over:
        raise ConfigError(key="judge_budget",
                          problem=f": the run needs {' and '.join(over)} ({cost.basis}); nothing "
                                  "was run. Fewer eval_prompts, answers_per_prompt, arms or seeds, "
                                  "or a larger judge_budget")


def judge_tokenizer(cfg, reference):
    """The tokenizer that counts the judge's tokens: `judge_api.tokenizer`, else
    ``reference()``'s."""
    if is_api_judge(cfg.judge) and cfg.judge_api.tokenizer:
        from ..models.loading import (
            ModelSourceError,
            resolve_model_path,
            tokenizer_from_folder,
        )

        spec = cfg.judge_api.tokenizer
        try:  # a folder with a tokenizer (a model's, or the tokenizer's files alone), or smollm2
            return tokenizer_from_folder(Path(spec).expanduser() if Path(spec).expanduser().is_dir()
                                         else resolve_model_path(spec))
        except (ModelSourceError, OSError, ValueError) as e:
            raise ConfigError(key="judge_api.tokenizer",
                              problem=f": {spec!r} has no tokenizer to load ({e}); give "
                                      "the judge model's folder, a folder with its "
                                      "tokenizer files, or smollm2") from None
    return reference()


def check_budget_before_work(cfg) -> None:
    """`judge_budget` against the run's calls before any work, and its tokens where the held-out
    prompts are known already (your files); the lab's are counted once the lab has made them."""
    if cfg.judge_budget is None:
        return

    files = cfg.lab is None and cfg.sentiment is None
    prompts = read_test_prompts(cfg.test_prompts, cfg.eval_prompts) if files else None
    reference = cfg.reference
    n = len(prompts) if prompts is not None else min(cfg.eval_prompts, cfg.lab.n_test_prompts) \
        if cfg.lab is not None else cfg.eval_prompts
    tok = None
    if (prompts is not None and "tokens" in parse_budget(cfg.judge_budget)
        and is_api_judge(cfg.judge)):
        from ..models.loading import load_tokenizer

        tok = judge_tokenizer(cfg, lambda: load_tokenizer(reference) if reference else None)
    check_judge_budget(cfg, judge_cost(cfg, n, prompts, tok))

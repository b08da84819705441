"""`judge_budget` and the count of a run's judge calls, against arithmetic done here."""

import pytest

from prefsift.core.errors import ConfigError
from prefsift.pipeline import RunConfig
from prefsift.pipeline.judge_cost import check_judge_budget, judge_cost
from prefsift.pipeline.judging import check_api_judge_use, parse_budget


def test_a_budget_is_calls_or_tokens_or_both():
    assert (parse_budget(20000) == parse_budget("20000") == parse_budget("20000 calls")
            == {"calls": 20000})
    assert parse_budget("3M tokens") == {"tokens": 3_000_000}
    assert parse_budget("1.5k calls, 2e6 tokens") == {"calls": 1500, "tokens": 2_000_000}
    for wrong in ("lots", "5 calls, 6 calls", "-3 calls", True):
        with pytest.raises(ValueError):
            parse_budget(wrong)
    with pytest.raises(ConfigError, match="judge_budget must be a number of calls and/or tokens"):
        RunConfig(judge_budget="lots")


def test_the_calls_of_a_run(tmp_path):
    P, K = 10, 3
    base = dict(judge="openai:m", answers_per_prompt=K, seeds=[0, 1])
    # 3 arms x 2 seeds judged against π_ref in both orders, and the 2 arms other than full against
    # full's
    cfg = RunConfig(arms=["full", "random", "tif"], **base)
    assert judge_cost(cfg, P).calls == 2 * P * K * 3 * 2 + 2 * P * K * 2 * 2 == 600
    assert judge_cost(RunConfig(arms=["random", "tif"], **base), P).calls == 2 * P * K * 2 * 2
    # single scores: one call per answer of each arm and seed, and of π_ref once per seed
    scored = RunConfig(arms=["full", "random", "tif"], judge_api={"single_score": True}, **base)
    assert judge_cost(scored, P).calls == 600 + P * K * (3 * 2 + 2)
    # a calibrated arm's probes judged on the validation prompts: 5 splits x 300 prompts x 4 answers
    # x 2 orders
    cal = RunConfig(arms=["full", "calibrated_lossdiff_irm"], calibration={"by": "judge"}, **base)
    assert judge_cost(cal, P).calls == 2 * P * K * 2 * 2 + 2 * P * K * 1 * 2 + 5 * 300 * 4 * 2
    with pytest.raises(ConfigError, match="the run needs 600 judge calls, over the budget's 599"):
        check_judge_budget(RunConfig(arms=["full", "random", "tif"], judge_budget=599, **base),
                           judge_cost(cfg, P))
    check_judge_budget(RunConfig(arms=["full", "random", "tif"], judge_budget="600 calls, 5 tokens",
                                 **base),
                       # tokens not counted yet: only the calls are held to the budget
                       judge_cost(cfg, P))


def test_the_reward_model_route_needs_an_api_judges_single_scores():
    with pytest.raises(ConfigError, match="judge_api.single_score is off, but route rm_rl labels"):
        check_api_judge_use(RunConfig(route="rm_rl", judge="openai:m"))
    check_api_judge_use(RunConfig(route="rm_rl", judge="openai:m",
                                  judge_api={"single_score": True}))

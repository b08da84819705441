"""`prefsift run` on a tiny lab judged by `openai:MODEL` through a local chat-completions server
(tests/judge_server.py): killed by SIGKILL while it judges and resumed, it asks the server for no
verdict it already had; it ends with an uninterrupted run's table; its report counts the calls;
the key is in no file of the run directory; a run over `judge_budget` is refused before any work."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytest.importorskip("openai", reason="pip install 'prefsift[api]' (in the dev extra)")

from prefsift.core.errors import ConfigError  # noqa: E402
from prefsift.pipeline import RunConfig, run_pipeline  # noqa: E402
from prefsift.pipeline.judge_cost import judge_cost  # noqa: E402
from tests.judge_server import JudgeServer, judge_model, judge_tokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-prefsift-test-6b1f0c93d2a84e57"
P, K = 8, 2  # held-out prompts, answers per prompt
CFG = dict(lab={"seed": 2, "preset": "tiny", "n_train": 96, "n_validation": 32, "n_test_prompts": P,
                "sft_steps": 30, "sft_warmup_steps": 5, "threads": 1, "share_sft": False},
           warmup={"epochs": 1, "learning_rate": 1e-3, "batch_size": 16},
           final={"epochs": 1, "learning_rate": 1e-3, "batch_size": 16},
           arms=["full", "random"], seeds=[0], eval_prompts=P, answers_per_prompt=K, eval_steps=0,
           judge="openai:tiny-judge")
# Both orders of every answer against π_ref's, for both arms, and random's against full's.
CALLS = 2 * P * K * 2 + 2 * P * K * 1
COLS = ["arm", "seed", "n_pairs", "win_rate", "low", "high", "head_to_head"]
QUIET = lambda *a, **k: None  # noqa: E731


class _Env:
    def __init__(self, **values):
        self.values, self.old = values, {}

    def __enter__(self):
        for k, v in self.values.items():
            self.old[k] = os.environ.get(k)
            os.environ[k] = v

    def __exit__(self, *exc):
        for k, v in self.old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The server (it wants KEY), and a config file for it: (server, config dict, tmp folder)."""
    tok = judge_tokenizer()
    server = JudgeServer(judge_model(tok), tok, key=KEY)
    api = {"base_url": server.url, "template": "prefsift", "top_logprobs": len(tok),
           "concurrency": 2, "backoff": 0.01, "max_backoff": 0.05, "timeout": 10}
    yield server, {**CFG, "judge_api": api}, tmp_path_factory.mktemp("api-run")
    server.stop()


@pytest.fixture(scope="module")
def killed_and_resumed(served):
    """`prefsift run` in a subprocess, SIGKILLed when the server gets its 30th question (that one
    unanswered), then resumed here. Returns what the server saw in each part and the run
    directory."""
    server, cfg, tmp = served
    out = tmp / "killed"
    path = tmp / "killed.yaml"
    path.write_text(yaml.safe_dump({**cfg, "out": str(out)}))
    env = {**os.environ, "OPENAI_API_KEY": KEY, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(ROOT)}
    server.reset()
    with open(tmp / "killed.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "prefsift", "run", str(path)], cwd=ROOT,
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        server.on_request = lambda n: n == 30 and (os.kill(proc.pid, signal.SIGKILL) or True)
        proc.wait(timeout=300)
    server.on_request = None
    assert proc.returncode == -signal.SIGKILL, (tmp / "killed.log").read_text()[-2000:]
    first = {"received": list(server.received), "answered": list(server.answered)}
    db = sqlite3.connect(out / "judge" / "verdicts.sqlite")
    cached = db.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]
    db.close()
    server.reset()
    lines = []
    with _Env(OPENAI_API_KEY=KEY):
        table = run_pipeline(RunConfig.from_yaml(path), progress=False,
                             log=lambda *a, **k: lines.append(" ".join(map(str, a))))
    return first, cached, list(server.received), out, table, lines


def test_a_run_killed_while_it_judges_asks_for_no_verdict_it_had(killed_and_resumed):
    first, cached, second, _, _, lines = killed_and_resumed
    answered = first["answered"]
    # killed mid-judging, verdicts on disk
    assert len(first["received"]) == 30 and 20 <= cached <= len(answered)
    # no question asked twice in a part
    assert len(set(answered)) == len(answered) and len(second) == len(set(second))
    assert first["received"][-1] in second  # the question the kill left unanswered is asked again
    # Each answered question is either cached, or (answered as the process died, before its verdict
    # was committed) asked again; so a cached one asked again would make `repeated` larger than
    # this:
    repeated = set(answered) & set(second)
    assert len(answered) - len(repeated) == cached  # zero repeated calls for verdicts the run had
    assert len(repeated) <= 1  # (concurrency 2: one other request in flight at most)
    print(f"\nkilled at question 30: {cached} verdicts cached, {len(second)} asked on resuming, of "
          f"which {len(repeated)} answered-but-uncommitted and 1 unanswered; cached verdicts asked "
          f"again: 0")
    said = [line for line in lines if line.startswith("judge openai:tiny-judge: ")]
    assert (said
            and said[0].startswith(f"judge openai:tiny-judge: {len(second)} calls made now (0 "
                                   f"retries), ")), said


def test_the_resumed_run_ends_as_an_uninterrupted_one_and_counts_its_calls(killed_and_resumed,
                                                                           served):
    server, cfg, tmp = served
    _, _, _, killed, table, _ = killed_and_resumed
    server.reset()
    with _Env(OPENAI_API_KEY=KEY):
        whole = run_pipeline(RunConfig(out=str(tmp / "whole"), **cfg), progress=False, log=QUIET)
    pd.testing.assert_frame_equal(table[COLS], whole[COLS])
    made = len(server.received)
    assert made == len(set(server.received))  # each question asked once
    # the plan's count: an upper bound
    assert made <= judge_cost(RunConfig(**cfg), P).calls == CALLS
    ev = json.loads((tmp / "whole" / "eval.json").read_text())["judge_calls"]
    # (cached: questions the run asks twice, e.g. where random's answer is full's, paid for once)
    assert {k: ev["this_process"][k] for k in ("calls", "retried", "failed")} == {"calls": made,
            "retried": 0,
                                                                                   "failed": 0}
    assert (ev["cache"]["verdicts"] == ev["cache"]["requests"] == made
            and ev["cache"]["by_how"] == {"logprobs": made})
    arms = {a: json.loads((tmp / "whole" / "arms" / f"{a}-seed0" / "eval.json").read_text())
            for a in ("full", "random")}
    # The rest is random's answers against full's, both orders of each distinct pair of different
    # answers (fewer where such a question was an evaluation's already: full's answer the same as
    # π_ref's).
    prompts = [json.loads(line)["prompt"].strip()
               for line in (killed / "lab" / "test_prompts.jsonl").open()][:P] * K
    h2h = {(p, r.strip(), f.strip())
           for p, r, f in zip(prompts, arms["random"]["answers"], arms["full"]["answers"])
           if r.strip() != f.strip()}
    evaluations = sum(arms[a]["judge_calls"]["calls"] for a in arms)
    assert evaluations < made <= evaluations + 2 * len(h2h)
    report = (tmp / "whole" / "report.html").read_text()
    made_row = f"<td>calls made (retries included)</td><td>{made}</td>"
    assert "Judge calls (openai:tiny-judge)" in report and made_row in report
    # The killed run's directory: every verdict, and the resumed process's counts in its report
    assert (json.loads((killed / "eval.json").read_text())["judge_calls"]["cache"]["verdicts"]
            == made)
    # A rerun of a finished run asks nothing (the head-to-head is recomputed, from the cache)
    server.reset()
    with _Env(OPENAI_API_KEY=KEY):
        run_pipeline(RunConfig(out=str(tmp / "whole"), **cfg), progress=False, log=QUIET)
    assert server.received == []


def test_the_key_is_in_no_file_of_the_run_directory(killed_and_resumed, served):
    server, _, tmp = served
    assert KEY in server.keys_seen  # it was sent
    files = [p for p in tmp.rglob("*") if p.is_file()]
    assert len(files) > 20 and any(p.name == "verdicts.sqlite" for p in files)
    assert [p for p in files if KEY.encode() in p.read_bytes()] == []


def test_a_run_over_its_judge_budget_is_refused_before_any_work(served):
    _, cfg, tmp = served
    with _Env(OPENAI_API_KEY=KEY):
        with pytest.raises(ConfigError, match=rf"judge_budget: the run needs {CALLS} judge calls, "
                                              rf"over the budget's {CALLS - 1}"):
            run_pipeline(RunConfig(out=str(tmp / "over"), judge_budget=CALLS - 1, **cfg),
                         progress=False, log=QUIET)
    assert not (tmp / "over").exists()
    with pytest.raises(ConfigError, match=r"needs a key, and \$PREFSIFT_TEST_UNSET is not set"):
        run_pipeline(RunConfig(out=str(tmp / "nokey"),
                               **{**cfg, "judge_api": {"key_env": "PREFSIFT_TEST_UNSET"}}),
                     progress=False, log=QUIET)
    assert not (tmp / "nokey").exists()


def test_the_plan_counts_the_judge_calls_and_tokens_and_asks_the_judge_nothing(served):
    from prefsift import api
    from prefsift.core.errors import UserError
    from prefsift.eval.api_settings import PREFSIFT

    server, cfg, tmp = served
    judge_tokenizer().save_pretrained(tmp / "judge-tokenizer")  # whitespace words: one token each
    cfg = {**cfg, "judge_api": {**cfg["judge_api"], "tokenizer": str(tmp / "judge-tokenizer")}}
    server.reset()
    with _Env(OPENAI_API_KEY=KEY):
        made = api.plan(cfg, out=tmp / "plan", log=QUIET)
        prompts = [json.loads(line)["prompt"].strip()
                   for line in (tmp / "plan" / "lab" / "test_prompts.jsonl").open()]
        words = sum(len(PREFSIFT.format(prompt=p, a="", b="").split()) for p in prompts[:P]) / P
        # two answers at the lab's 12 new tokens, a 1-token reply
        tokens = round(CALLS * (words + 2 * 12 + 1))
        assert made.judge["calls"] == CALLS and made.judge["tokens"] == tokens
        assert f"judge: at most {CALLS} calls, about {tokens:,} tokens" in made.describe()
        with pytest.raises(UserError, match=rf"about {tokens:,} judge tokens, over the budget's "
                                            rf"{tokens - 1:,}"):
            api.plan({**cfg, "judge_budget": f"{CALLS} calls, {tokens - 1} tokens"},
                     out=tmp / "plan", log=QUIET)
    assert server.received == []  # planning asks a paid judge nothing

"""The `openai:MODEL` judge against a real HTTP server on 127.0.0.1 (tests/judge_server.py) that
serves a tiny causal LM the way vLLM does: its verdicts equal the in-process `llm` judge's on the
same model and template, faults cost retries and never a verdict, a verdict that keeps failing is
recorded and never a tie, and the verdict cache makes a second judging free."""

import math
import sqlite3

import pytest
import torch

pytest.importorskip("openai", reason="pip install 'prefsift[api]' (in the dev extra)")

from prefsift.core.errors import ConfigError, UserError  # noqa: E402
from prefsift.eval.api_calls import EndpointRefused, Unreadable, read_verdict  # noqa: E402
from prefsift.eval.api_judge import APIJudge, JudgeFailed, check_openai  # noqa: E402
from prefsift.eval.api_settings import PREFSIFT, JudgeAPISettings  # noqa: E402
from prefsift.eval.judges import JudgeContext, LLMPairwiseJudge, Swapped  # noqa: E402
from tests.judge_server import JudgeServer, judge_model, judge_tokenizer  # noqa: E402

PROMPTS = ["copy : 1 5 2 =", "reverse : 0 5 7 =", "sort : 3 1 2 =", "increment : 9 1 ="] * 2
A = ["1 5 2", "7 5 0", "1 2 3", "good", "yes", "7 5 good", "1 2", "no"]
# the last two: identical answers
B = ["1 5 3", "0 5 7", "3 2 1", "bad", "maybe", "7 5 0", "1 2", "no"]
# both orders of each comparison of two different answers
ASKED = 2 * sum(a != b for a, b in zip(A, B))


@pytest.fixture(scope="module")
def tok():
    return judge_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    return judge_model(tok)


@pytest.fixture(scope="module")
def server(model, tok):
    s = JudgeServer(model, tok)
    yield s
    s.stop()


@pytest.fixture
def fresh(server):
    server.reset()
    server.on_request = None
    return server


@pytest.fixture(scope="module")
def truth(model, tok):
    """The in-process judge's verdicts on the same model and template, in both orders."""
    return Swapped(LLMPairwiseJudge(model, tok)).prefers(PROMPTS, A, B)


def settings(server, tok, **kw):
    # Every label in the returned log-probabilities (the whole vocabulary), so that the verdict is
    # exact.
    base = dict(base_url=server.url, template="prefsift", top_logprobs=len(tok), concurrency=2,
                backoff=0.01, max_backoff=0.05, timeout=5.0, retries=3)
    return JudgeAPISettings(**{**base, **kw})


# The in-process judge softmaxes the two labels' float32 logits; the server returns float32
# log_softmax over the vocabulary (|log p| up to ~40 with this sharp model, so a few ulps of 40,
# ~1e-5 in the log-odds), which changes P by at most P(1-P)·1e-5 < 3e-6. 2e-5 leaves room; a wrong
# order or prompt moves a verdict by far more (they spread over (0, 1), see the test).
TOL = 2e-5


def test_the_api_judges_verdicts_are_the_in_process_judges(fresh, tok, model, truth):
    j = APIJudge("tiny-judge", settings(fresh, tok), environ={})
    got = j.prefers(PROMPTS, A, B)
    assert got == pytest.approx(truth, abs=TOL)
    assert got[-2:] == [0.5, 0.5]  # identical answers: a tie, asked of no one
    assert len(fresh.received) == ASKED == j.counts.calls
    # Each order on its own (these spread, so a mix-up of orders or prompts would show), from the
    # cache now.
    questions = [(p, x, y) for p, a, b in zip(PROMPTS, A, B) for x, y in ((a, b), (b, a)) if a != b]
    one = j.verdicts(questions)
    in_process = LLMPairwiseJudge(model, tok)
    assert ([one[q] for q in questions]
            == pytest.approx([in_process.prefer(*q) for q in questions], abs=TOL))
    assert max(one.values()) - min(one.values()) > 0.1 and j.counts.calls == ASKED
    # One order by hand: the next-token probabilities of A and B after the chat-templated question.
    text = PREFSIFT.format(prompt=PROMPTS[0], a=A[0], b=B[0])
    ids = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1].double()
    la, lb = logits[tok.convert_tokens_to_ids("A")], logits[tok.convert_tokens_to_ids("B")]
    by_hand = float(1 / (1 + torch.exp(lb - la)))
    assert APIJudge("tiny-judge", settings(fresh, tok), environ={}).verdicts(
        [(PROMPTS[0], A[0], B[0])])[(PROMPTS[0], A[0], B[0])] == pytest.approx(by_hand, abs=TOL)


def test_single_scores_are_the_in_process_judges_and_off_by_default(fresh, tok, model):
    on = APIJudge("tiny-judge", settings(fresh, tok, single_score=True), environ={})
    assert on.scores(PROMPTS, A) == pytest.approx([LLMPairwiseJudge(model, tok).score(p, a)
                                                   for p, a in zip(PROMPTS, A)],
                                                  abs=TOL)
    fresh.reset()
    off = APIJudge("tiny-judge", settings(fresh, tok), environ={})
    assert all(math.isnan(s) for s in off.scores(PROMPTS, A)) and fresh.received == []


def test_a_verdict_is_read_from_the_labels_log_probabilities_else_from_the_text():
    def reply(tops=None, text=""):
        content = None if tops is None else {"content": [{"token": "x", "logprob": -0.1,
                                                          "top_logprobs": [
            {"token": t, "logprob": lp} for t, lp in tops]}]}
        return {"choices": [{"message": {"content": text}, "logprobs": content}]}

    p, how = read_verdict(reply([("x", -0.1), ("A", -2.0), ("B", -3.0)]))
    assert (how == "logprobs"
            and p == pytest.approx(math.exp(-2) / (math.exp(-2) + math.exp(-3)), abs=1e-12))
    # " A" and "A" are the same label; "A:" is not a label
    p, _ = read_verdict(reply([("A", -2.0), (" A", -2.5), ("B", -1.0), ("A:", -0.5)]))
    assert (p
            == pytest.approx((math.exp(-2) + math.exp(-2.5))
                             / (math.exp(-2) + math.exp(-2.5) + math.exp(-1))))
    # A not among the top: below the last listed
    assert read_verdict(reply([("B", -1.0), ("x", -0.5)]))[0] == 0.0
    assert read_verdict(reply(None, "B")) == (0.0, "text")
    assert read_verdict(reply(None, "Output (A)")) == (1.0, "text")
    assert read_verdict(reply([("x", -0.1)], "The better answer is B.")) == (0.0, "text")
    for unreadable in (reply(None, "maybe"), {"choices": []}, {"error": "x"}):
        with pytest.raises(Unreadable):
            read_verdict(unreadable)


FAULTS = [("429", 0.2), ("500",), ("sleep", 3.0), ("garbage",), ("kill", 0.2)]


@pytest.mark.parametrize("fault", FAULTS, ids=[f[0] for f in FAULTS])
def test_a_fault_costs_retries_never_a_verdict(fresh, tok, truth, fault):
    waits = []

    def sleep(s):
        waits.append(s)
        __import__("time").sleep(s)

    fresh.faults.append(fault)
    # (the waits, doubled from 0.01 s up to 0.2 s, at least 0.65 s in all, outlast a killed server's
    # 0.2 s down; a reply takes milliseconds, far within the 1 s timeout that the "sleep" fault's 3
    # s exceeds)
    j = APIJudge("tiny-judge", settings(fresh, tok, concurrency=1, timeout=1.0, retries=10,
                                        max_backoff=0.2),
                 environ={}, sleep=sleep)
    assert j.prefers(PROMPTS, A, B) == pytest.approx(truth, abs=TOL)
    assert j.counts.failed == 0 and j.counts.calls == ASKED + j.counts.retried
    assert len(fresh.received) == ASKED + 1  # the faulty request reached the server once
    # One retry each; a killed server refuses connections until it is back, which may take more.
    assert j.counts.retried == 1 if fault[0] != "kill" else j.counts.retried >= 1
    if fault[0] == "429":
        assert waits[0] >= fault[1]  # the server's Retry-After, over the 0.01 s backoff


def test_a_verdict_that_keeps_failing_is_recorded_with_its_reason_and_never_a_tie(fresh, tok, truth,
        tmp_path):
    st = settings(fresh, tok, concurrency=1, retries=2)
    # the first two questions: every try fails
    fresh.faults.extend([("500",)] * 3 + [("text", "maybe")] * 3)
    with pytest.raises(JudgeFailed, match=r"2 of 12 questions .*1x HTTP 500.*1x unreadable reply: "
                                          r"the reply names"):
        APIJudge("tiny-judge", st, folder=tmp_path, environ={}).prefers(PROMPTS, A, B)
    db = sqlite3.connect(tmp_path / "verdicts.sqlite")
    assert sorted(r for r, in db.execute("SELECT reason FROM failures")) == [
        "HTTP 500", "unreadable reply: the reply names neither A nor B: 'maybe'"]
    # the others: paid for, kept
    assert db.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0] == ASKED - 2
    db.close()
    fresh.reset()
    again = APIJudge("tiny-judge", st, folder=tmp_path, environ={})
    assert again.prefers(PROMPTS, A, B) == pytest.approx(truth, abs=TOL)
    # the failed two asked again, only them
    assert len(fresh.received) == 2 and again.counts.cached == ASKED - 2
    assert again.totals()["cache"]["failed"] == 0


def test_the_cache_and_a_shared_cache_make_a_second_judging_free(fresh, tok, truth, tmp_path):
    st = settings(fresh, tok, shared_cache=str(tmp_path / "shared.sqlite"))
    APIJudge("tiny-judge", st, folder=tmp_path / "run1", environ={}).prefers(PROMPTS, A, B)
    assert len(fresh.received) == ASKED
    # the run's own cache, then only the shared one
    for folder in (tmp_path / "run1", tmp_path / "run2"):
        j = APIJudge("tiny-judge", st, folder=folder, environ={})
        assert j.prefers(PROMPTS, A, B) == pytest.approx(truth, abs=TOL) and j.counts.calls == 0
    assert len(fresh.received) == ASKED
    other = APIJudge("tiny-judge", settings(fresh, tok, template="alpaca"),
                     folder=tmp_path / "run1", environ={})
    other.prefers(PROMPTS[:1], A[:1], B[:1])  # another template is another question
    assert len(fresh.received) == ASKED + 2


def test_what_the_endpoint_refuses_is_one_clear_error(model, tok):
    keyed = JudgeServer(model, tok, key="sk-right")
    try:
        st = settings(keyed, tok)
        with pytest.raises(EndpointRefused, match="refused the key"):
            APIJudge("tiny-judge", st, environ={"OPENAI_API_KEY": "sk-wrong"}).prefers(PROMPTS, A,
                    B)
        assert len(keyed.received) <= st.concurrency  # stopped at once, not after every question
        ctx = JudgeContext(st)
        with pytest.raises(ConfigError, match="refused the key"):
            check_openai("tiny-judge", None, "", ctx)  # before any work
        __import__("os").environ["OPENAI_API_KEY"] = "sk-right"
        try:
            check_openai("tiny-judge", None, "", ctx)
            with pytest.raises(ConfigError, match=r"serves \['tiny-judge'\], not 'tiny-judg'"):
                check_openai("tiny-judg", None, "", ctx)
        finally:
            del __import__("os").environ["OPENAI_API_KEY"]
    finally:
        keyed.stop()
    with pytest.raises(ConfigError, match="cannot reach the judge's endpoint"):
        check_openai("tiny-judge", None, "", ctx)
    with pytest.raises(ConfigError, match=r"needs a key, and \$OPENAI_API_KEY is not set"):
        APIJudge("gpt-4o", JudgeAPISettings(), environ={})
    assert issubclass(EndpointRefused, UserError)
    # a key where its variable's name belongs
    for pasted in ("sk-abc123", "0123456789abcdef0123456789abcdef"):
        with pytest.raises(ConfigError,
                           match="key_env names the environment variable .* never the key itself"):
            JudgeAPISettings(key_env=pasted)

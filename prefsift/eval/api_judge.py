"""`openai:MODEL`: a pairwise judge behind any OpenAI-compatible chat-completions endpoint (OpenAI,
vLLM, SGLang, llama.cpp's server), asked in both orders as the in-process `llm:MODEL` judge is,
so its position bias cancels: P(a ≻ b) = ½·(v(a, b) + 1 − v(b, a)), v one order's verdict.

Every verdict goes through the verdict cache (`verdicts.py`) first, and only the missing ones are
asked, `concurrency` at a time (`api_calls.Endpoint`). Two identical answers are a tie without a
call (both orders would ask the same question, and their average is exactly ½ whatever the
verdict). A verdict that fails after its retries is recorded with its reason; the judging then
stops with a `JudgeFailed` naming the reasons, once every other verdict is in the cache, so a rerun
asks for the failed ones only. It is never a tie.

The judge has the `Judge` protocol (`score`, `scores`, `prefer`, `prefers`, `name`) without
subclassing it, so that `judges.py` can register it without an import circle."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..core import artifacts
from ..core.errors import ConfigError, UserError, did_you_mean
from .api_calls import Endpoint, Failed
from .api_settings import JudgeAPISettings, endpoint
from .verdicts import VerdictCache, verdict_key


class JudgeFailed(UserError):
    """Some verdicts could not be had after their retries (recorded, with their reasons, in the
    cache)."""


class APIJudge:
    # `evaluate_answers` does not wrap it in `Swapped`: it asks both orders itself
    asks_both_orders = True
    # A paid judge: the planner counts its calls instead of timing it, and a run keys its
    # evaluations by `key`, records its `counts` per evaluation and its `totals()` in eval.json and
    # the report.
    paid = True

    def __init__(self, model: str, settings: JudgeAPISettings | None = None,
                 folder: str | Path | None = None, log=print, environ=None, sleep=time.sleep):
        self.model = model
        self.settings = settings if settings is not None else JudgeAPISettings()
        self.name = f"openai:{model} (both orders)"
        url, key = endpoint(self.settings, model, environ)
        self.endpoint = Endpoint(url, key, model, self.settings, sleep=sleep)
        self.counts = self.endpoint.counts
        # What the verdicts depend on: the model and what is sent, never the URL, the key or the
        # retries.
        self.key = artifacts.stable_key({"judge": "openai", "model": model,
                                         **self.settings.verdict_settings()})
        self.cache = VerdictCache(Path(folder) / "verdicts.sqlite" if folder else None,
                                  self.settings.shared_cache or None)
        self.log = log
        self._template, self._system = self.settings.prompt_texts()

    # -- the Judge protocol

    def prefers(self, prompts, a, b) -> list[float]:
        items = [(p.strip(), x.strip(), y.strip()) for p, x, y in zip(prompts, a, b)]
        asked = ([(p, x, y) for p, x, y in items if x != y]
                 + [(p, y, x) for p, x, y in items if x != y])
        got = self.verdicts(asked)
        return [0.5 if x == y else 0.5 * (got[(p, x, y)] + 1.0 - got[(p, y, x)])
                for p, x, y in items]

    def prefer(self, prompt, a, b) -> float:
        return self.prefers([prompt], [a], [b])[0]

    def scores(self, prompts, answers) -> list[float]:
        """Each answer's preference over an empty answer (one order), with `single_score`; else NaN:
        no score, and no call paid for one."""
        if not self.settings.single_score:
            return [math.nan] * len(answers)
        items = [(p.strip(), x.strip(), "") for p, x in zip(prompts, answers)]
        got = self.verdicts([t for t in items if t[1]])
        return [got[t] if t[1] else 0.5 for t in items]

    def score(self, prompt, answer) -> float:
        return self.scores([prompt], [answer])[0]

    # -- verdicts: cached, else asked

    def messages(self, prompt: str, first: str, second: str) -> list[dict]:
        user = self._template.format(prompt=prompt, a=first, b=second)
        return ([{"role": "system", "content": self._system}] if self._system else []) + \
            [{"role": "user", "content": user}]

    def verdicts(self, asked: list[tuple[str, str, str]]) -> dict[tuple, float]:
        """One order's verdicts, P(first ≻ second), of (prompt, first, second) questions: from the
        cache, else asked. Raises `JudgeFailed` once every other verdict is cached."""
        keys = {t: verdict_key(self.key, *t) for t in dict.fromkeys(asked)}
        cached = self.cache.get(list(set(keys.values())))
        out = {t: cached[k] for t, k in keys.items() if k in cached}
        todo = {k: t for t, k in keys.items() if k not in cached}
        self.endpoint._count(cached=len(keys) - len(todo))
        if not todo:
            return out
        stop, failed = threading.Event(), {}
        progress = _Progress(self.log, len(todo), self.model)

        def one(item):
            k, t = item
            try:
                got = self.endpoint.ask(self.messages(*t), stop)
            except BaseException:  # a refused key or model: no worker sends another request
                stop.set()
                raise
            if got is None:  # stopped: another request was refused
                return k, got
            if isinstance(got, Failed):
                self.cache.fail(k, got.reason, got.attempts)
                self.endpoint._count(failed=1)
                failed[k] = got.reason
            else:  # on disk before anything else happens: a kill now costs no second call for it
                self.cache.put(k, got.p, got.how, got.attempts)
            progress.step(self.counts)
            return k, got

        pool = ThreadPoolExecutor(max_workers=min(self.settings.concurrency, len(todo)))
        try:
            for k, got in pool.map(one, todo.items()):
                if got is not None and not isinstance(got, Failed):
                    out[todo[k]] = got.p
        # a refused key or model, Ctrl-C: what was paid for is cached, nothing more is sent
        except BaseException:
            stop.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if failed:
            reasons = "; ".join(f"{n}x {r}" for r, n in Counter(failed.values()).most_common(4))
            where = f" in {self.cache.path}" if self.cache.path else ""
            raise JudgeFailed(f"judge openai:{self.model} gave no verdict for {len(failed)} of "
                              f"{len(keys)} questions ({reasons}; up to {self.settings.retries} "
                              f"retries each); they are recorded{where}, and the other verdicts "
                              f"are cached, so a rerun asks for these {len(failed)} only (more "
                              "judge_api.retries or a longer judge_api.timeout help a flaky "
                              "endpoint)")
        return out

    def totals(self) -> dict:
        """This process's counts and, over every process that judged into the run's cache, its
        totals."""
        return {"judge": f"openai:{self.model}", "endpoint_model": self.model,
                "this_process": self.counts.as_dict(), "cache": self.cache.totals(),
                "cache_file": str(self.cache.path) if self.cache.path else None}


class _Progress:
    """A line now and then while many verdicts are asked (every 30 s)."""

    def __init__(self, log, total: int, model: str):
        self.log, self.total, self.model, self.done = log, total, model, 0
        self.last = time.time()
        self.lock = threading.Lock()

    def step(self, counts) -> None:
        with self.lock:
            self.done += 1
            if time.time() - self.last > 30 and self.done < self.total:
                self.last = time.time()
                self.log(f"  judge openai:{self.model}: {self.done}/{self.total} verdicts asked "
                         f"({counts.retried} retries, {counts.failed} failed so far)")


def check_openai(model: str, prompts, where, context=None) -> None:
    """Before any work: the client is installed, a key is set where one is needed, and (with
    `preflight`) the endpoint answers, takes the key and serves ``model``."""
    settings = getattr(context, "settings", None) or JudgeAPISettings()
    try:
        import openai  # noqa: F401
    except ImportError:
        raise ConfigError(key="judge", problem=f"openai:{model} needs the openai client, which is "
                                               "not installed: pip install 'prefsift[api]' (or "
                                               "openai>=1.0)") from None
    url, key = endpoint(settings, model)
    if not settings.preflight:
        return
    probe = Endpoint(url, key, model, settings)
    try:
        served = probe.models()
    except probe.openai.APIStatusError as e:
        if e.status_code in (401, 403):
            raise ConfigError(key="judge", problem=f": the endpoint {url} refused the key (HTTP "
                                                   f"{e.status_code}): export a valid one in "
                                                   f"${settings.key_env}") from None
        return  # a server without GET /models (some proxies): the first request will tell
    except probe.openai.APIConnectionError as e:
        raise ConfigError(key="judge", problem=f": cannot reach the judge's endpoint {url} "
                                               f"({type(e).__name__}): start "
                                               "the server, or set judge_api.base_url (or "
                                               "$OPENAI_BASE_URL); judge_api.preflight: false "
                                               "skips this check") from None
    if served and model not in served:
        raise ConfigError(key="judge",
                          problem=f": the endpoint {url} serves {sorted(served)[:8]}, not {model!r}"
                                  f"{did_you_mean(model, served)}: write judge: openai:NAME with a "
                                  "served name")


def make_openai(model: str, context=None) -> APIJudge:
    return APIJudge(model, getattr(context, "settings", None), getattr(context, "folder", None),
                    getattr(context, "log", print))

"""A run's judges: their context (settings, verdict cache), the `judge_budget` setting, and what
an API judge did, for the log and the report. What the judging will cost is `judge_cost.py`."""

from __future__ import annotations

import html
import re

from ..core.errors import ConfigError

_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "b": 10**9}
_PART = re.compile(r"^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([kmgb]?)\s*(calls?|tokens?)?\s*$",
                   re.IGNORECASE)


def parse_budget(value) -> dict[str, int]:
    """'20000', '20000 calls', '3M tokens', '20000 calls, 3M tokens' → {"calls": ..., "tokens":
    ...}."""
    if isinstance(value, bool) or value is None:
        raise ValueError(value)
    if isinstance(value, (int, float)):
        value = f"{value} calls"
    out: dict[str, int] = {}
    for part in str(value).split(","):
        m = _PART.match(part)
        if not m:
            raise ValueError(part)
        unit = (m.group(3) or "calls").lower().rstrip("s") + "s"
        if unit in out:
            raise ValueError(part)
        out[unit] = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    return out


def budget_problem(value) -> str | None:
    try:
        parse_budget(value)
    except ValueError:
        return (f"must be a number of calls and/or tokens, e.g. 20000, '20000 calls', '3M tokens' "
                f"or '20000 calls, 3M tokens'; got {value!r}")
    return None


def judge_context(cfg, folder=None, log=print):
    """The `JudgeContext` a run hands its judges: its `judge_api` settings, the verdict cache's
    folder."""
    from ..eval.judges import JudgeContext

    return JudgeContext(cfg.judge_api, folder, log)


def is_api_judge(spec) -> bool:
    return isinstance(spec, str) and spec.startswith("openai:")


def check_api_judge_use(cfg) -> None:
    """What an API judge cannot do in a run: label the reward-model route's validation pairs
    without single scores."""
    if cfg.route == "rm_rl" and is_api_judge(cfg.judge) and not cfg.judge_api.single_score:
        raise ConfigError(key="judge_api.single_score",
                          problem="is off, but route rm_rl labels the validation pairs by "
                                  "the judge's single scores: set judge_api.single_score: "
                                  "true")


def calls_line(totals: dict) -> str:
    """One line of what an API judge did: this process's calls, and the run directory's totals."""
    now, cache = totals["this_process"], totals["cache"]
    return (f"judge {totals['judge']}: {now['calls']} calls made now ({now['retried']} retries), "
            f"{now['cached']} verdicts from the cache, {now['failed']} failed; the run's verdict "
            f"cache holds {cache['verdicts']} verdicts "
            f"({', '.join(f'{n} by {h}' for h, n in sorted(cache['by_how'].items())) or 'none'}) "
            f"that cost {cache['requests']} requests in all, {cache['retried']} of them retries, "
            f"{cache['failed']} verdicts "
            "failed")


def calls_html(totals: dict) -> str:
    """The report's table of an API judge's calls (under the WinRate section)."""
    now, cache = totals["this_process"], totals["cache"]
    rows = [("calls made (retries included)", now["calls"], cache["requests"]),
            ("retried", now["retried"], cache["retried"]), ("verdicts from the cache",
                                                            now["cached"], "-"),
            ("verdicts failed", now["failed"], cache["failed"]),
            ("verdicts held", "-", cache["verdicts"])]
    body = "".join(f"<tr><td>{html.escape(a)}</td><td>{b}</td><td>{c}</td></tr>"
                   for a, b, c in rows)
    reasons = "".join(f"<li>{n} x {html.escape(r)}</li>" for r, n in cache["failures"].items())
    return (f"<h3>Judge calls ({html.escape(totals['judge'])})</h3><table><tr><th></th><th>this "
            f"process</th><th>every process of this run (verdict cache)</th></tr>{body}</table>"
            + (f"<p>Failed verdicts, by reason:</p><ul>{reasons}</ul>" if reasons else ""))

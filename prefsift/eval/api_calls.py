"""One request to an OpenAI-compatible chat-completions endpoint, tried until it gives a verdict.

Through the official `openai` client (its own retries off: these are counted here, for the report).
What is retried, with exponential backoff and jitter, never sooner than the server's Retry-After:
429, 408, 409 and 5xx replies, timeouts, lost connections, and a reply that cannot be read (not
JSON, no choice, neither letter). What is not: a refused key (401, 403) or an unknown model (404)
stop the judging at once (every other request would fail the same way); another 4xx (a prompt too
long for the model's context) fails that verdict only. A verdict that still fails is returned as a
`Failed` with its reason, never as a tie."""

from __future__ import annotations

import email.utils
import json
import math
import random
import re
import threading
import time
from dataclasses import asdict, dataclass

from ..core.errors import UserError
from .api_settings import LABELS


class Unreadable(Exception):
    """A reply that gives no verdict (the reason is the message)."""


class EndpointRefused(UserError):
    """The endpoint refused what every request would send (the key, the model, a setting)."""


@dataclass
class Failed:
    reason: str
    attempts: int


@dataclass
class Verdict:
    p: float  # P(first ≻ second)
    how: str  # "logprobs" or "text"
    attempts: int


@dataclass
class CallCounts:
    """What one judge did in this process: requests sent (retries included), verdicts found in the
    cache instead, retries, and verdicts that failed after their retries."""

    calls: int = 0
    cached: int = 0
    retried: int = 0
    failed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)

    def minus(self, before: dict) -> dict:
        return {k: v - before.get(k, 0) for k, v in self.as_dict().items()}


def _label(token) -> str | None:
    """The verdict label a returned token is ("A", " A", "▁A", "ĠA"), else None. Not "A:" or "(A":
    the in-process judge reads the label's own token only, and so does this one."""
    if not isinstance(token, str):
        return None
    t = token.replace("Ġ", " ").replace("▁", " ").strip()
    return t if t in LABELS else None


_TEXT = re.compile(r"^\W*(?:(?:the\s+)?(?:better\s+)?(?:output|answer)(?:\s+is)?\W*)?([AB])\b",
                   re.IGNORECASE)


def read_verdict(data) -> tuple[float, str]:
    """P(A) from a chat-completion reply (parsed JSON): from the log-probabilities of the two labels
    at the first position where either is among the returned ones, P(A)/(P(A)+P(B)) (a label not
    returned counts 0: below the last one listed); else from the reply's text (1 or 0)."""
    try:
        choice = data["choices"][0]
    except (KeyError, IndexError, TypeError):
        raise Unreadable(f"the reply has no choice: {json.dumps(data)[:120]}") from None
    content = (((choice.get("logprobs") or {}).get("content") or []) if isinstance(choice, dict)
               else [])
    for position in content:
        if not isinstance(position, dict):
            continue
        seen, mass = set(), {label: 0.0 for label in LABELS}
        for entry in [position, *(position.get("top_logprobs") or [])]:
            token, lp = ((entry.get("token"), entry.get("logprob")) if isinstance(entry, dict)
                         else (None, None))
            label = _label(token)
            if label and token not in seen and isinstance(lp, (int, float)) and math.isfinite(lp):
                seen.add(token)
                mass[label] += math.exp(lp)
        total = sum(mass.values())
        if total > 0:
            return mass[LABELS[0]] / total, "logprobs"
    message = choice.get("message") if isinstance(choice, dict) else None
    text = (message or {}).get("content") or ""
    m = _TEXT.match(text) if isinstance(text, str) else None
    if not m:
        raise Unreadable(f"the reply names neither {' nor '.join(LABELS)}: {str(text)[:60]!r}")
    return (1.0 if m.group(1).upper() == LABELS[0] else 0.0), "text"


def retry_after(headers) -> float | None:
    """The server's Retry-After (or retry-after-ms) in seconds, if it sent one."""
    if headers is None:
        return None
    try:
        if headers.get("retry-after-ms") is not None:
            return float(headers.get("retry-after-ms")) / 1000
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:  # an HTTP date
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class Endpoint:
    """Chat-completion requests to ``url`` for ``model`` with ``settings`` (`JudgeAPISettings`);
    ``sleep`` waits between retries (a test passes its own to see the waits)."""

    MAX_RETRY_AFTER = 600.0  # a server asking for more is waited for this long, then asked again

    def __init__(self, url: str, key: str | None, model: str, settings, sleep=time.sleep):
        try:
            import openai
        except ImportError:  # pragma: no cover - depends on the install
            raise UserError("the openai judge needs the openai client: pip install 'prefsift[api]' "
                            "(or openai>=1.0)") \
                from None
        self.openai, self.model, self.settings, self.sleep = openai, model, settings, sleep
        self.url = url
        # A local server needs no key, but the client wants one: "EMPTY" is vLLM's convention.
        self.client = openai.OpenAI(base_url=url, api_key=key or "EMPTY", timeout=settings.timeout,
                                    max_retries=0)
        self.counts = CallCounts()
        self._lock = threading.Lock()
        self._random = random.Random()

    def _count(self, **more) -> None:
        with self._lock:
            for k, v in more.items():
                setattr(self.counts, k, getattr(self.counts, k) + v)

    def body(self, messages: list[dict]) -> dict:
        st = self.settings
        body = dict(model=self.model, messages=messages, max_tokens=st.max_tokens,
                    temperature=st.temperature)
        if st.top_logprobs > 0:
            body.update(logprobs=True, top_logprobs=st.top_logprobs)
        if st.seed is not None:
            body["seed"] = st.seed
        return body

    def wait(self, retry: int, server_asked: float | None) -> float:
        """Seconds before retry number ``retry`` (0 first): backoff·2^retry capped at max_backoff,
        jittered to between half and all of it, and never less than what the server asked."""
        st = self.settings
        cap = min(st.max_backoff, st.backoff * 2 ** retry)
        with self._lock:
            delay = cap * (0.5 + 0.5 * self._random.random())
        if server_asked is not None:
            delay = max(delay, min(server_asked, self.MAX_RETRY_AFTER))
        return delay

    def ask(self, messages: list[dict],
            stop: threading.Event | None = None) -> Verdict | Failed | None:
        """One verdict: the request sent until a reply is read, or `Failed` after the retries (None:
        ``stop`` was set first). Raises `EndpointRefused` for what no retry can fix."""
        openai, st = self.openai, self.settings
        reason = ""
        for attempt in range(st.retries + 1):
            if stop is not None and stop.is_set():
                return None
            if attempt:
                self._count(retried=1)
            self._count(calls=1)
            asked = None
            try:
                raw = self.client.chat.completions.with_raw_response.create(**self.body(messages))
                try:
                    data = json.loads(raw.text)
                except ValueError:
                    raise Unreadable(f"the reply is not JSON: {raw.text[:60]!r}") from None
                p, how = read_verdict(data)
                return Verdict(p, how, attempt + 1)
            except openai.APIStatusError as e:
                status = e.status_code
                reason = f"HTTP {status}"
                if status in (401, 403):
                    raise EndpointRefused(f"the judge's endpoint {self.url} refused the key (HTTP "
                                          f"{status}): export a valid key in "
                                          f"${st.key_env}") from None
                if status == 404:
                    raise EndpointRefused(f"the judge's endpoint {self.url} knows no model "
                                          f"{self.model!r} (HTTP 404): "
                                          "name a served model in `judge: openai:MODEL`") from None
                if status not in (408, 409, 429) and status < 500:
                    text = _message(e)
                    if "logprob" in text.lower():
                        raise EndpointRefused(f"the judge's endpoint refused log-probabilities "
                                              f"(HTTP {status}: {text}): set "
                                f"judge_api.top_logprobs: 0 (or at most what it allows)") \
                            from None
                    # this request only (e.g. too long)
                    return Failed(f"HTTP {status}: {text}", attempt + 1)
                asked = retry_after(getattr(e.response, "headers", None))
            except openai.APITimeoutError:
                reason = f"no reply in {st.timeout:g} s (judge_api.timeout)"
            except openai.APIConnectionError as e:
                reason = (f"connection failed "
                          f"({type(e.__cause__).__name__ if e.__cause__ else 'no reply'})")
            except Unreadable as e:
                reason = f"unreadable reply: {e}"
            if attempt < st.retries:
                self.sleep(self.wait(attempt, asked))
        return Failed(reason, st.retries + 1)

    def models(self) -> list[str]:
        """The endpoint's served models (GET /models: free, and it checks the URL and the key)."""
        return [m.id for m in self.client.models.list()]


def _message(e) -> str:
    try:
        body = e.response.json()
        msg = (body.get("error", {}).get("message") if isinstance(body.get("error"), dict)
               else body.get("error"))
        return str(msg or body)[:200]
    except Exception:  # noqa: BLE001 - any body a server sends; its text is enough
        return str(getattr(e.response, "text", e))[:200]

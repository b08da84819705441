"""The `judge_api:` settings of a run: how the `openai:MODEL` judge reaches an OpenAI-compatible
endpoint (OpenAI, vLLM, SGLang, llama.cpp's server), what it asks, and how hard it tries.

The API key is never a setting: it is read from the environment variable `key_env` names
(`OPENAI_API_KEY` by default) when the judge is made, and is written nowhere (config, log, report,
stage key, verdict cache)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ..core.checks import check_fields
from ..core.errors import ConfigError

OPENAI_URL = "https://api.openai.com/v1"  # the openai client's own default

# The verdict labels. One token each in every tokenizer a judge model is likely to have.
LABELS = ("A", "B")

# AlpacaEval-style: an instruction, two outputs, the letter of the better one and nothing else (the
# letter's log-probability is read where the endpoint returns it, as AlpacaEval's weighted judges
# do).
ALPACA_SYSTEM = ("You are a careful and impartial judge of the answers AI assistants give to "
                 "instructions.")
ALPACA = ("Select the output, A or B, that better follows the instruction below: the more helpful, "
          "accurate and relevant one. Do not let the order of the outputs or their length decide. "
          "Reply with one letter only, A or B.\n\n# Instruction\n{prompt}\n\n# Output A\n{a}\n\n"
          "# Output B\n{b}\n\n# The better output (A or B)")
# The in-process `llm:MODEL` judge's own template (eval.judges.LLMPairwiseJudge.TEMPLATE, which the
# tests compare against), without a system prompt: the same model then gives the same verdicts
# either way.
PREFSIFT = ("Which answer to the question is better?\n\nQuestion: {prompt}\n\nAnswer A: {a}\n\n"
            "Answer B: {b}\n\nReply with the letter of the better answer, A or B.")
TEMPLATES = {"alpaca": (ALPACA, ALPACA_SYSTEM), "prefsift": (PREFSIFT, "")}


def _template_problem(value: str) -> str | None:
    if value in TEMPLATES:
        return None
    missing = [f"{{{k}}}" for k in ("prompt", "a", "b") if f"{{{k}}}" not in value]
    if missing:
        return (f"must be {' or '.join(TEMPLATES)}, or a text with the fields {{prompt}}, {{a}} "
                f"and {{b}} (missing {', '.join(missing)}); write other braces doubled, {{{{ and "
                f"}}}}")
    try:
        value.format(prompt="", a="", b="")
    except (KeyError, IndexError, ValueError) as e:
        return (f"is not a template of {{prompt}}, {{a}} and {{b}} only ({type(e).__name__}: {e}); "
                "write other braces doubled, {{ and }}")
    return None


def _url_problem(value: str) -> str | None:
    if value and not re.match(r"^https?://[^\s/]+", value):
        return f"must be an http(s) URL such as http://127.0.0.1:8000/v1, got {value!r}"
    return None


def _key_env_problem(value: str) -> str | None:
    # A key pasted here would be written to config.yaml: refuse anything but a variable's name in
    # upper case (keys have lower-case letters or dashes; a long run of upper case and digits alone
    # is refused too).
    if not re.fullmatch(r"[A-Z_][A-Z0-9_]{0,63}", value or "") or re.search(r"[A-Z0-9]{24}", value):
        return ("names the environment variable that holds the API key, in upper case (e.g. "
                "OPENAI_API_KEY), never the key itself: export the key in that variable and write "
                "its name here")
    return None


@dataclass
class JudgeAPISettings:
    """The `judge_api:` section, for `judge: openai:MODEL` (the `openai` extra: `pip install
    prefsift[api]`)."""

    base_url: str = field(default="", metadata={
        "help": "the endpoint's base URL, e.g. http://127.0.0.1:8000/v1 for a local vLLM server; "
                "empty: $OPENAI_BASE_URL, else OpenAI's", "check": _url_problem})
    key_env: str = field(default="OPENAI_API_KEY", metadata={
        "help": "the environment variable that holds the API key (the key is read from it and "
                "written nowhere); needed for OpenAI's endpoint, optional for a local server",
        "check": _key_env_problem})
    template: str = field(default="alpaca", metadata={
        "help": "the judge's prompt: alpaca (AlpacaEval-style, with a system prompt), prefsift "
                "(the llm:MODEL judge's), or a text with {prompt}, {a} and {b}",
        "check": _template_problem})
    system: str | None = field(default=None, metadata={
        "help": "the system message; null: the template's own (alpaca has one, the others none); "
                "'': none"})
    top_logprobs: int = field(default=20, metadata={
        "help": "log-probabilities asked per token: the verdict is P(A)/(P(A)+P(B)) read from "
                "them; 0: the letter in the reply's text (a verdict of 0 or 1). OpenAI and vLLM "
                "allow at most 20", "check": ">= 0"})
    max_tokens: int = field(default=1, metadata={
        "help": "tokens the judge may reply with (1: the letter; more for a judge that writes "
                "'Output (A)')",
                 "check": ">= 1"})
    temperature: float = field(default=0.0, metadata={"help": "the judge's sampling temperature",
                                                      "check": ">= 0"})
    seed: int | None = field(default=None, metadata={"help": "the sampling seed sent to the "
                                                             "endpoint (null: none)"})
    single_score: bool = field(default=False, metadata={
        "help": "also ask for each answer's single score (its preference over an empty answer, one "
                "call each, as the llm:MODEL judge scores); off: the score column is empty and "
                "only the pairwise verdicts are paid for"})
    concurrency: int = field(default=8,
                             metadata={"help": "requests in flight at once", "check": ">= 1"})
    timeout: float = field(default=60.0,
                           metadata={"help": "seconds before a request is abandoned and retried",
                                     "check": "> 0"})
    retries: int = field(default=6, metadata={
        "help": "retries of a request after a 429, a 5xx, a timeout, a lost connection or an "
                "unreadable reply; then the verdict is recorded as failed, with its reason",
        "check": ">= 0"})
    backoff: float = field(default=1.0, metadata={
        "help": "seconds before the first retry; doubled each retry, with random jitter, and never "
                "shorter than the server's Retry-After", "check": ">= 0"})
    max_backoff: float = field(default=60.0,
                               metadata={"help": "the longest wait between retries (Retry-After "
                                                 "excepted)", "check": "> 0"})
    shared_cache: str = field(default="", metadata={
        "help": "a verdict cache shared between runs (an SQLite file on a local disk), read before "
                "the endpoint is asked and written with every new verdict; the run's own is "
                "RUN/judge/verdicts.sqlite"})
    tokenizer: str = field(default="", metadata={
        "help": "the judge model's tokenizer (a folder or smollm2), to count the plan's tokens; "
                "empty: estimated with the reference model's"})
    preflight: bool = field(default=True, metadata={
        "help": "before any work, list the endpoint's models (free): an unreachable endpoint, a "
                "refused key or an unknown model is an error then, not after the training"})

    def __post_init__(self):
        check_fields(self)

    def prompt_texts(self) -> tuple[str, str]:
        """(user template, system message) as sent."""
        template, system = TEMPLATES.get(self.template, (self.template, ""))
        return template, system if self.system is None else self.system

    def verdict_settings(self) -> dict:
        """Everything that changes a verdict (the cache and the stage keys hold these, never the
        URL, the key or how hard the requests are tried)."""
        template, system = self.prompt_texts()
        return {"template": template, "system": system, "top_logprobs": self.top_logprobs,
                "max_tokens": self.max_tokens, "temperature": self.temperature, "seed": self.seed}


def endpoint(settings: JudgeAPISettings, model: str, environ=None) -> tuple[str, str | None]:
    """(base URL, API key or None) of `settings`; a `ConfigError` keyed `judge` when OpenAI's own
    endpoint is meant and no key is set."""
    environ = os.environ if environ is None else environ
    url = (settings.base_url or environ.get("OPENAI_BASE_URL") or OPENAI_URL).rstrip("/")
    key = environ.get(settings.key_env) or None
    if key is None and url == OPENAI_URL:
        raise ConfigError(key="judge",
                          problem=f"openai:{model} asks OpenAI's API, which needs a key, and "
                                  f"${settings.key_env} is not set: export {settings.key_env}=... "
                                  "(the key is read from the environment only), or "
                                  "set judge_api.base_url to a local server")
    return url, key

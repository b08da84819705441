"""Turn raw rows into preference pairs the way TRL's DPOTrainer reads them, with a reason for
every row that cannot be used.

Formats accepted (TRL's names): *standard* (strings) or *conversational* (lists of
{"role", "content"} messages), each with an *explicit* prompt column or an *implicit* prompt (the
shared beginning of chosen and rejected). Also the UltraFeedback layout: a string prompt next to
full message lists that repeat the user turn; there the prompt is taken from the messages.

Unlike TRL, the format is decided per file by majority rather than from the first row, and a row
of the other format is reported instead of crashing the run."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from .readers import DataError, RawFile, RawRow

ROLES = {"system", "user", "assistant", "tool"}
# UltraFeedback's names for the dataset's own ratings of the two responses; they feed the
# `score_gap` baseline (chosen's rating minus rejected's) and nothing else.
RATING_FIELDS = ("score_chosen", "score_rejected")


@dataclass(frozen=True)
class ColumnMap:
    """Which columns of the file hold the pair. `prompt=None` forces the implicit-prompt format."""

    prompt: str | None = "prompt"
    chosen: str = "chosen"
    rejected: str = "rejected"
    id: str | None = "id"  # used when the file has it; otherwise ids are content hashes


@dataclass
class PairRow:
    index: int
    where: str
    id: str | None = None
    kind: str | None = None  # "standard" | "conversational"
    prompt: Any = None  # str, or list of messages
    chosen: Any = None
    rejected: Any = None
    valid: bool = True
    code: str | None = None  # machine-readable reason: missing_field, empty_response, ...
    field: str | None = None  # the field the reason is about
    reason: str | None = None  # for a person: what is wrong and the fix
    # non-fatal: e.g. truncated to max_length
    notes: list[str] = dataclasses.field(default_factory=list)
    n_tokens: int | None = None  # longest of prompt+chosen / prompt+rejected, once tokenized
    rating_gap: float | None = None  # score_chosen − score_rejected, when both are usable numbers
    rating_problem: str | None = None  # why the ratings are not usable (the pair itself still is)
    rating_field: str | None = None

    def fail(self, code: str, fld: str | None, reason: str) -> "PairRow":
        if self.valid:  # the first problem found is the one reported
            self.valid, self.code, self.field, self.reason = False, code, fld, reason
        return self


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _maybe_messages(value: Any, from_csv: bool) -> Any:
    # CSV cells are text; a conversational CSV stores each message list as JSON.
    if from_csv and isinstance(value, str) and value.lstrip().startswith("["):
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError:
            return value
        if isinstance(decoded, list):
            return decoded
    return value


def _message_problem(messages: list, name: str) -> str | None:
    if not messages:
        return f"'{name}' is an empty message list"
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            return (f"message {i} of '{name}' is a {type(m).__name__}, expected {{'role': ..., "
                    f"'content': ...}}")
        if "role" not in m or "content" not in m:
            missing = "role" if "role" not in m else "content"
            return f"message {i} of '{name}' has no '{missing}'"
        # a list or dict role is unhashable
        if not isinstance(m["role"], str) or m["role"] not in ROLES:
            return (f"message {i} of '{name}' has role {m['role']!r}; expected one of "
                    f"{sorted(ROLES)}")
        if not isinstance(m["content"], str):
            return (f"message {i} of '{name}' has content of type {type(m['content']).__name__}, "
                    f"expected a string")
    return None


def content_id(prompt: Any, chosen: Any, rejected: Any) -> str:
    """Stable id from the pair's content: the same pair gets the same id in any file format."""
    blob = json.dumps([prompt, chosen, rejected], ensure_ascii=False, sort_keys=True,
                      separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def extract_implicit_prompt_text(chosen: str, rejected: str) -> tuple[str, str, str]:
    """TRL's `extract_prompt` for strings: the shared character prefix, minus a trailing space.

    Mirrors TRL 1.16 exactly (including that when one string is a prefix of the other the last
    shared character stays in the completion), so that both tools train on the same tokens."""
    idx = 0
    for idx in range(min(len(chosen), len(rejected))):
        if chosen[idx] != rejected[idx]:
            if chosen[idx - 1] == " ":
                idx -= 1
            break
    return chosen[:idx], chosen[idx:], rejected[idx:]


def _common_message_prefix(a: list, b: list) -> int:
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    return k


def _parse_row(raw: RawRow, cols: ColumnMap, implicit: bool, from_csv: bool) -> PairRow:
    row = PairRow(raw.index, raw.where)
    if raw.record is None:
        return row.fail("malformed", None, raw.error or "unreadable row")
    rec = raw.record
    names = {"chosen": cols.chosen, "rejected": cols.rejected}
    if not implicit:
        names = {"prompt": cols.prompt, **names}
    values: dict[str, Any] = {}
    for role, col in names.items():
        if col not in rec or _is_missing(rec[col]):
            flag = f"--{role}-key"
            return row.fail("missing_field", col,
                            f"missing field '{col}' (map another column with {flag})")
        values[role] = _maybe_messages(rec[col], from_csv)

    for role, v in values.items():
        if not isinstance(v, (str, list)):
            return row.fail("wrong_type", names[role],
                            f"field '{names[role]}' is a {type(v).__name__}; expected a string or "
                            f"a list of messages")
        if isinstance(v, list):
            problem = _message_problem(v, names[role])
            if problem:
                return row.fail("bad_message", names[role], problem)

    chosen, rejected = values["chosen"], values["rejected"]
    if isinstance(chosen, str) != isinstance(rejected, str):
        return row.fail("wrong_type", cols.rejected,
                        "'chosen' and 'rejected' must both be strings or both be message lists")
    row.kind = "standard" if isinstance(chosen, str) else "conversational"
    prompt = values.get("prompt")

    if row.kind == "standard":
        if prompt is not None and not isinstance(prompt, str):
            return row.fail("wrong_type", cols.prompt,
                            f"'{cols.prompt}' is a message list but the responses are strings")
        if implicit:
            prompt, chosen, rejected = extract_implicit_prompt_text(chosen, rejected)
            if not prompt:
                return row.fail("prompt_mismatch", cols.chosen,
                                "implicit prompt: chosen and rejected share no common beginning, "
                                "so there is no prompt; add a prompt column or check that the rows "
                                "hold the whole conversation")
    else:
        if prompt is None or isinstance(prompt, str):
            # Implicit prompt, or the UltraFeedback layout (string prompt + full conversations).
            k = _common_message_prefix(chosen, rejected)
            if k == 0:
                return row.fail("prompt_mismatch", cols.chosen,
                                "chosen and rejected differ from the first message: they do not "
                                "share a prompt")
            if chosen[k - 1]["role"] == "assistant" or (k < len(chosen)
                                                        and chosen[k]["role"] != "assistant") or (
                k < len(rejected) and rejected[k]["role"] != "assistant"
            ):
                return row.fail("prompt_mismatch", cols.chosen,
                                f"chosen and rejected first differ at message {k}, which is not "
                                "the answer to a shared prompt: their prompts do not match")
            if isinstance(prompt, str):
                users = [m["content"] for m in chosen[:k] if m["role"] == "user"]
                if users and users[-1].strip() != prompt.strip():
                    row.notes.append(f"'{cols.prompt}' differs from the user turn inside "
                                     f"'{cols.chosen}'; "
                                     "the messages were used")
            prompt, chosen, rejected = chosen[:k], chosen[k:], rejected[k:]
        elif (len(chosen) > len(prompt) and chosen[: len(prompt)] == prompt
              and rejected[: len(prompt)] == prompt):
            # responses that repeat the prompt
            chosen, rejected = chosen[len(prompt):], rejected[len(prompt):]

        if not prompt:
            return row.fail("bad_message", cols.prompt, f"'{cols.prompt}' is an empty message list")
        for role, msgs in (("chosen", chosen), ("rejected", rejected)):
            if not msgs:
                return row.fail("empty_response", names[role],
                                f"'{names[role]}' has no message after the prompt")
            if msgs[-1]["role"] != "assistant":
                return row.fail("no_final_assistant", names[role],
                                f"'{names[role]}' ends with a {msgs[-1]['role']} turn, not an "
                                "assistant turn: there is no answer to score")

    for role, resp in (("chosen", chosen), ("rejected", rejected)):
        text = (resp if isinstance(resp, str)
                else "".join(m["content"] for m in resp if m["role"] == "assistant"))
        if not text.strip():
            return row.fail("empty_response", names[role],
                            f"'{names[role]}' is empty or whitespace only")
    if chosen == rejected:
        return row.fail("identical", cols.chosen,
                        "chosen and rejected are identical: the pair carries no preference")

    row.prompt, row.chosen, row.rejected = prompt, chosen, rejected
    return row


def _assign_ids(rows: list[PairRow], raw: RawFile, cols: ColumnMap, from_csv: bool) -> None:
    has_id_col = cols.id is not None and cols.id in raw.columns
    first_seen: dict[str, str] = {}
    for row, rawrow in zip(rows, raw.rows):
        rec = rawrow.record
        if (has_id_col and rec is not None and not _is_missing(rec.get(cols.id))
            and str(rec.get(cols.id)) != ""):
            row.id = str(rec[cols.id])
            by = "id"
        elif rec is not None:
            # Hash decoded values, so a pair has the same id in a CSV (JSON text cells) as
            # elsewhere.
            row.id = content_id(*(_maybe_messages(rec.get(c), from_csv) if c else None
                                  for c in (cols.prompt, cols.chosen, cols.rejected)))
            by = "content"
        else:  # unreadable: still needs an id so it appears in every table
            row.id = "unreadable-" + hashlib.sha256((rawrow.raw_text
                                                     or rawrow.where).encode("utf-8", "replace")
                                                    + rawrow.where.encode()).hexdigest()[:12]
            by = "position"
        if row.id in first_seen:
            what = "the same content as" if by == "content" else "already used by"
            row.fail("duplicate_id", cols.id if by == "id" else None,
                     f"id {row.id!r} is {what} {first_seen[row.id]}; remove the duplicate or give "
                     f"it its own id")
        else:
            first_seen[row.id] = row.where


def _rating_value(value: Any, from_csv: bool) -> tuple[float | None, str | None]:
    """(the rating as a finite float, None) or (None, what is wrong with it)."""
    if _is_missing(value):
        return None, "is missing" if value is None else "is NaN"
    if isinstance(value, bool):
        return None, f"is a boolean ({value}), not a number"
    if isinstance(value, str):
        if not from_csv:
            return None, f"is the string {value[:40]!r}; store ratings as numbers"
        if not value.strip():
            return None, "is empty"
        try:
            value = float(value)
        except ValueError:
            return None, f"is the text {value[:40]!r}, not a number"
    if not isinstance(value, (int, float)):
        return None, f"is a {type(value).__name__}, not a number"
    try:
        value = float(value)
    except OverflowError:  # a JSON integer beyond float range
        return None, "is too large for a floating-point number"
    if math.isnan(value):
        return None, "is NaN"
    if math.isinf(value):
        return None, "is infinite"
    return value, None


def _check_ratings(rows: list[PairRow], raw: RawFile, from_csv: bool) -> None:
    """Flag usable pairs whose ratings are not numbers. They stay scorable; only the rating-gap
    baseline leaves them out, so that a NaN is never sorted to one end of it."""
    if not all(f in raw.columns for f in RATING_FIELDS):
        return  # no ratings (or only one side of them): there is no rating gap to compute
    for row, rawrow in zip(rows, raw.rows):
        if not row.valid or rawrow.record is None:
            continue
        values = []
        for fld in RATING_FIELDS:
            value, problem = _rating_value(rawrow.record.get(fld), from_csv)
            if problem:
                row.rating_field = fld
                row.rating_problem = (f"field '{fld}' {problem}: the pair is scored, but left out "
                                      "of the score_gap baseline; give both ratings as numbers to "
                                      "include it")
                row.notes.append(f"bad_rating: {row.rating_problem}")
                break
            values.append(value)
        else:
            row.rating_gap = values[0] - values[1]


def parse_pairs(raw: RawFile, cols: ColumnMap, strict: bool) -> tuple[list[PairRow], str, bool]:
    """All rows of a file as `PairRow`s (rows in = rows out). Returns (rows, kind, implicit)."""
    implicit = cols.prompt is None or not any(
        r.record is not None and cols.prompt in r.record for r in raw.rows
    )
    from_csv = raw.file_format == "csv"
    rows = [_parse_row(r, cols, implicit, from_csv) for r in raw.rows]
    _assign_ids(rows, raw, cols, from_csv)
    _check_ratings(rows, raw, from_csv)

    kinds = Counter(r.kind for r in rows if r.kind is not None)
    kind = kinds.most_common(1)[0][0] if kinds else "standard"
    for r in rows:
        if r.kind is not None and r.kind != kind:
            r.fail("mixed_format", cols.chosen,
                   f"this row is {r.kind} but most of the file is {kind}; one file must use one "
                   f"format")

    if strict:
        for r in rows:
            if not r.valid:
                fld = f", field '{r.field}'" if r.field else ""
                raise DataError(f"{raw.path}: {r.where}{fld}: {r.reason}. "
                                "(Use lenient mode to list every bad row and keep the good ones.)")
    return rows, kind, implicit

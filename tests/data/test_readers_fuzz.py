"""Property-based fuzzing of the data layer (readers, pair validation, ids, writers).

Hypothesis generates small datasets of random rows: mixed value types (str, int, float with NaN and
inf, bool, None, lists, dicts), unicode and control characters (NUL, CR, LF, U+2028, BOM, ...),
empty and huge strings, well-formed and malformed message lists, missing keys, extra columns, id
columns, exact duplicates, rows that are not JSON objects and lines that are not JSON at all.

The test writes every dataset with its OWN code (json, csv, pyarrow, datasets; never prefsift's
writers) in every format that can hold it, loads each file with `load_pairs` and checks:

* no exception, except the documented `DataError` for a file with no rows;
* rows in = rows out, and every unusable row has a reason code and a reason;
* simple oracles computed here from what the file holds (missing fields, unreadable rows, ids taken
  from the id column, duplicate ids, usable pairs carrying the file's own content);
* the same content gets the same id in every format that stored it unchanged (see `_survived`);
* `write_pairs` of the usable rows, read back, gives the same rows with the same ids; of all rows
  (include_invalid), every row again with the same outcome (JSONL: byte for byte).

Every failure the fuzzer found is an @example on the property test and a plain regression test
below it.

Profiles: "ci" (derandomized, fixed number of examples) is loaded when the CI environment variable
is set, "dev" otherwise; HYPOTHESIS_PROFILE=<name> picks one explicitly ("thorough" for a long local
hunt). Neither writes an example database into the work tree."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, Phase, event, example, given, settings
from hypothesis import strategies as st

from prefsift.data import DataError, load_pairs, write_pairs

# No explain phase: it re-runs a failing example hundreds of times (minutes here) to say which
# part of it matters; the shrunk example is enough.
_COMMON = dict(deadline=None, database=None, print_blob=True,
               phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.large_base_example])
settings.register_profile("ci", derandomize=True, max_examples=150, **_COMMON)
settings.register_profile("dev", max_examples=100, **_COMMON)
settings.register_profile("thorough", max_examples=3000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE")
                      or ("ci" if os.environ.get("CI") else "dev"))

PAIR_FIELDS = ("prompt", "chosen", "rejected")
ROLES = ["system", "user", "assistant", "tool"]


# --------------------------------------------------------------------------------------------
# The generated dataset
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NonObject:
    """A row that is valid JSON but not an object (a list, a number, ...): JSONL and JSON only."""
    value: Any


@dataclass(frozen=True)
class Broken:
    """A JSONL line that is not JSON at all (or not UTF-8): JSONL only."""
    line: bytes


@dataclass
class Case:
    items: list  # dict | NonObject | Broken, one per row
    jsonl_ascii: bool = False  # json.dumps(ensure_ascii=...) for the JSONL file
    json_ascii: bool = False  # ... and for the JSON files
    crlf: bool = False  # JSONL line ends
    bom: bool = False  # the JSONL, JSON and CSV files start with a UTF-8 byte order mark
    # rows after which the JSONL and CSV files have a blank line (not a row)
    blank_after: tuple = ()

    def __repr__(self) -> str:  # shorter than the dataclass repr for 100k-char strings
        def short(v):
            if isinstance(v, str) and len(v) > 60:
                return f"{v[:20]!r}*{len(v)}"
            if isinstance(v, dict):
                return {k: short(x) for k, x in v.items()}
            if isinstance(v, list):
                return [short(x) for x in v]
            return v
        return (f"Case(items={[short(i) if isinstance(i, dict) else i for i in self.items]!r}, "
                f"jsonl_ascii={self.jsonl_ascii}, json_ascii={self.json_ascii}, crlf={self.crlf}, "
                f"bom={self.bom}, blank_after={self.blank_after})")

    def _repr_pretty_(self, p, cycle) -> None:  # what Hypothesis prints for a failing example
        p.text(repr(self))


SPECIAL_CHARS = ["\x00", "\r", "\n", "\r\n", "\t", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\u2028",
                 "\u2029", "\ufeff", "\u200b", "\xa0", " ", "  ", "é", "中", "😀", "\\", '"', "'",
                 ",", ";", "[", "]", "{", "}", "nan", "null", "a", "b", "Q?"]


def _sometimes(one_in: int) -> st.SearchStrategy[bool]:
    """True about once in `one_in` draws. False is the simple side, so examples shrink towards
    it."""
    return st.integers(0, one_in - 1).map(lambda k: k == one_in - 1)


def _text(surrogates: bool, max_size: int = 10) -> st.SearchStrategy[str]:
    chars = [st.sampled_from(SPECIAL_CHARS), st.characters(codec="utf-8")]
    if surrogates:  # lone UTF-16 surrogates: only an ASCII-escaped JSON file can hold them
        chars.append(st.integers(0xD800, 0xDFFF).map(chr))
    small = st.lists(st.one_of(*chars), max_size=max_size).map("".join)
    # Huge strings, sparingly: 100k characters, and 140k (over the csv module's default field
    # limit).
    huge = st.tuples(st.sampled_from(["x", "é", "😀", " ", "\x00", "\r\n", '"']),
                     st.sampled_from([100_000, 140_000])).map(lambda t: (t[0] * t[1])[: t[1]])
    return _sometimes(80).flatmap(lambda big: huge if big else small)


def _scalars(t) -> st.SearchStrategy:
    return st.one_of(st.none(), st.booleans(), st.integers(),
                     st.floats(allow_nan=True, allow_infinity=True), t)


def _json_values(t) -> st.SearchStrategy:
    keys = st.sampled_from(["role", "content", "x", "", "é"]) | st.text(max_size=3)
    return st.recursive(_scalars(t), lambda kids: st.lists(kids, max_size=3) | st.dictionaries(keys,
            kids, max_size=3),
                        max_leaves=4)


def _messages(t, roles, min_size: int = 0) -> st.SearchStrategy[list]:
    """Mostly well-formed message lists with the given roles, sometimes broken ones."""
    anything = _json_values(t)
    good = st.fixed_dictionaries({"role": st.sampled_from(roles), "content": t})
    broken = st.one_of(
        st.fixed_dictionaries({}, optional={"role": st.sampled_from(ROLES) | anything,
                                            # missing or wrong-typed keys
                                            "content": t | anything}),
        # wrong role
        st.fixed_dictionaries({"role": st.sampled_from(["User", "bot", "", "ASSISTANT"]),
                               "content": t}),
        # role of any type, lists and dicts included
        st.fixed_dictionaries({"role": anything, "content": t}),
        st.fixed_dictionaries({"role": st.sampled_from(ROLES), "content": t},
                              optional={"name": t, "tool_calls": anything}),  # extra keys
        anything,  # not a dict at all
    )
    msg = _sometimes(12).flatmap(lambda bad: broken if bad else good)
    return st.lists(msg, min_size=min_size, max_size=3)


# Extra columns: the UltraFeedback ratings and a few other names, with values of one type most of
# the time (so that Arrow can store them) and of any type sometimes. Names are never blank and never
# start with a BOM: a CSV header cannot tell those from a blank line or the file's encoding marker.
EXTRA_NAMES = ["source", "score_chosen", "score_rejected", "n", "é 中", "a-b"]


@st.composite
def _record(draw, layout: str, surrogates: bool) -> dict:
    t = _text(surrogates)
    anything = _json_values(t)
    if layout.startswith("standard"):
        p, a, b = draw(t), draw(t), draw(t)
        rec = {"prompt": p, "chosen": a, "rejected": b} if layout == "standard_explicit" else {
            "chosen": p + a, "rejected": p + b}
    else:
        prefix = draw(_messages(t, ["system", "user"], min_size=1))
        if draw(_sometimes(3)):
            prefix = prefix + draw(_messages(t, ["user", "assistant", "tool"]))
        a = draw(_messages(t, ["assistant"], min_size=1))
        b = draw(_messages(t, ["assistant"], min_size=1) | _messages(t, ["assistant", "user"]))
        if layout == "conversational_explicit":
            repeat = draw(st.booleans())  # responses that repeat the prompt
            rec = {"prompt": prefix, "chosen": prefix + a if repeat else a,
                   "rejected": prefix + b if repeat else b}
        elif layout == "ultrafeedback":
            users = [m["content"] for m in prefix
                     if isinstance(m, dict) and m.get("role") == "user"
                     and isinstance(m.get("content"), str)]
            prompt = draw(t) if not users or draw(_sometimes(3)) else users[-1]
            rec = {"prompt": prompt, "chosen": prefix + a, "rejected": prefix + b}
        else:
            rec = {"chosen": prefix + a, "rejected": prefix + b}
    # Mutations, in about one row in three: a key deleted, a value of another type, None or NaN.
    for _ in range(draw(st.sampled_from([0, 0, 0, 0, 1, 2]))):
        key = draw(st.sampled_from(PAIR_FIELDS))
        op = draw(st.sampled_from(["delete", "any", "none", "nan", "messages", "text"]))
        if op == "delete":
            rec.pop(key, None)
        else:
            rec[key] = draw({"any": anything, "none": st.none(), "nan": st.just(math.nan),
                             "messages": _messages(t, ROLES), "text": t}[op])
    for name in draw(st.lists(st.sampled_from(EXTRA_NAMES), unique=True, max_size=2)):
        typed = {"source": t, "n": st.integers(-5, 5)}.get(name, st.floats(0, 10))
        rec[name] = draw(anything if draw(_sometimes(6)) else typed)
    if draw(_sometimes(3)):  # an id column
        rec["id"] = draw(anything if draw(_sometimes(4))
                         else st.text(st.sampled_from("abc1-"), max_size=3))
    keys = draw(st.permutations(list(rec)))
    return {k: rec[k] for k in keys}


LAYOUTS = ["standard_explicit", "standard_implicit", "conversational_explicit",
           "conversational_implicit", "ultrafeedback"]


@st.composite
def cases(draw) -> Case:
    surrogates = draw(_sometimes(10))
    file_layout = draw(st.sampled_from(LAYOUTS + ["mixed"]))
    items: list = []
    n_rows = 0 if draw(_sometimes(25)) else draw(st.integers(1, 6))
    for _ in range(n_rows):
        kind = draw(st.integers(0, 29))
        if kind == 29:
            items.append(NonObject(draw(_json_values(_text(surrogates)).filter(
                    lambda v: not isinstance(v, dict)))))
        elif kind == 28:
            rec = draw(_record("standard_explicit", False))
            text = json.dumps(rec, ensure_ascii=False).encode("utf-8")
            cut = draw(st.integers(1, max(1, len(text) - 1)))
            line = draw(st.sampled_from([text[:cut], b"\xff\xfe" + text, b"{'prompt': 1}",
                                         b"nope"]))
            items.append(Broken(line))
        # an exact duplicate of an earlier row
        elif kind >= 26 and any(isinstance(i, dict) for i in items):
            items.append(dict(draw(st.sampled_from([i for i in items if isinstance(i, dict)]))))
        else:
            layout = draw(st.sampled_from(LAYOUTS)) if file_layout == "mixed" else file_layout
            items.append(draw(_record(layout, surrogates)))
    blank_after = (tuple(sorted(draw(st.sets(st.integers(0, len(items) - 1), max_size=2)))) if items
                   else ())
    return Case(items, jsonl_ascii=surrogates or draw(st.booleans()),
                json_ascii=draw(st.booleans()),
                crlf=draw(st.booleans()), bom=draw(_sometimes(4)), blank_after=blank_after)


# --------------------------------------------------------------------------------------------
# The test's own writers. Each returns what the file holds ("the view": one record per row, None
# for a row that is not an object), or raises Unwritable when the format cannot hold the dataset.
# --------------------------------------------------------------------------------------------

class Unwritable(Exception):
    pass


def _union_columns(records: list[dict]) -> list[str]:
    return list(dict.fromkeys(k for r in records for k in r))


def _only_records(case: Case, fmt: str) -> list[dict]:
    if not all(isinstance(i, dict) for i in case.items):
        raise Unwritable(f"{fmt} holds only objects")
    return case.items


def _jsonl_lines(case: Case) -> list[bytes]:
    lines = []
    for item in case.items:
        if isinstance(item, Broken):
            lines.append(item.line)
        else:
            value = item.value if isinstance(item, NonObject) else item
            try:
                lines.append(json.dumps(value, ensure_ascii=case.jsonl_ascii).encode("utf-8"))
            except UnicodeEncodeError:
                raise Unwritable("a lone surrogate cannot be written as UTF-8") from None
    return lines


def _has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, list):
        return any(_has_surrogate(v) for v in value)
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    return False


def _json_view(values: list) -> list:
    """The rows of a JSON or JSONL file as decoded here by json.loads (which joins an escaped
    surrogate pair into one character): None for a row that is not an object, and for one holding a
    lone surrogate, which is not text and is reported as unreadable (malformed)."""
    return [v if isinstance(v, dict) and not _has_surrogate(v) else None for v in values]


def _decode_line(line: bytes) -> Any:
    try:
        return json.loads(line.decode("utf-8"))
    except ValueError:  # not UTF-8, or not JSON
        return None


BOM = "\ufeff".encode("utf-8")


def _jsonl_file_lines(case: Case) -> list[bytes]:
    """The rows' lines as they are in the file: the first one after the byte order mark, if any."""
    lines = _jsonl_lines(case)
    if lines and case.bom:
        lines[0] = BOM + lines[0]
    return lines


def write_jsonl(case: Case, path: Path) -> list:
    eol = b"\r\n" if case.crlf else b"\n"
    out = [BOM] if case.bom and not case.items else []
    for i, line in enumerate(_jsonl_file_lines(case)):
        out.append(line + eol)
        if i in case.blank_after:
            out.append((b"" if i % 2 else b" \t") + eol)
    path.write_bytes(b"".join(out))
    return _json_view([_decode_line(line) for line in _jsonl_lines(case)])


def write_json_records(case: Case, path: Path) -> list:
    if any(isinstance(i, Broken) for i in case.items):
        raise Unwritable("a JSON file cannot hold a line that is not JSON")
    values = [i.value if isinstance(i, NonObject) else i for i in case.items]
    try:
        data = json.dumps(values, ensure_ascii=case.json_ascii, indent=1).encode("utf-8")
    except UnicodeEncodeError:
        raise Unwritable("a lone surrogate cannot be written as UTF-8") from None
    path.write_bytes(BOM * case.bom + data)
    return _json_view(json.loads(data))


def write_json_columns(case: Case, path: Path) -> list:
    records = _only_records(case, "a JSON object of columns")
    keysets = {tuple(sorted(r)) for r in records}
    if len(keysets) != 1 or not records or not records[0]:
        raise Unwritable("columns need one non-empty key set shared by every row")
    cols = list(records[0])
    try:
        data = json.dumps({c: [r[c] for r in records] for c in cols},
                          ensure_ascii=case.json_ascii).encode("utf-8")
    except UnicodeEncodeError:
        raise Unwritable("a lone surrogate cannot be written as UTF-8") from None
    path.write_bytes(BOM * case.bom + data)
    columns = json.loads(data)
    return _json_view([dict(zip(columns, values)) for values in zip(*columns.values())])


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):  # how a conversational CSV stores a message list
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _csv_decode(cell: str) -> Any:
    """What a CSV cell means as a pair field: a JSON list is a message list, anything else is
    text."""
    try:
        decoded = json.loads(cell)
    except ValueError:
        return cell
    return decoded if isinstance(decoded, list) else cell


def write_csv(case: Case, path: Path) -> list:
    records = _only_records(case, "CSV")
    cols = _union_columns(records)
    if not cols:
        raise Unwritable("a CSV without columns holds no rows")
    cells = [[_csv_cell(r.get(c)) for c in cols] for r in records]
    try:
        with open(path, "w", encoding="utf-8-sig" if case.bom else "utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(cols)
            for i, row in enumerate(cells):
                w.writerow(row)
                if i in case.blank_after:
                    fh.write("\r\n")
    except UnicodeEncodeError:
        raise Unwritable("a lone surrogate cannot be written as UTF-8") from None
    # Every CSV cell is text; only the pair fields are read as message lists.
    return [{c: (_csv_decode(v) if c in PAIR_FIELDS else v) for c, v in zip(cols, row)}
            for row in cells]


ARROW_REFUSALS = (pa.lib.ArrowException, OverflowError, UnicodeError, TypeError, ValueError)


def _arrow_table(case: Case, fmt: str) -> pa.Table:
    records = _only_records(case, fmt)
    cols = _union_columns(records)
    if not cols:
        raise Unwritable(f"{fmt} without columns holds no rows")
    try:  # by columns, over every row's keys (from_pylist would take the first row's keys only)
        return pa.table({c: [r.get(c) for r in records] for c in cols})
    except ARROW_REFUSALS as e:  # heterogeneous types, ints over 64 bits, surrogates, ...
        raise Unwritable(f"pyarrow refuses this dataset: {e}") from None


def write_parquet(case: Case, path: Path) -> list:
    try:
        pq.write_table(_arrow_table(case, "Parquet"), path)
    except ARROW_REFUSALS as e:  # e.g. a struct with no fields, from a message list of empty dicts
        raise Unwritable(f"Parquet refuses this table: {e}") from None
    return pq.read_table(path).to_pylist()


def write_hf(case: Case, path: Path) -> list:
    from datasets import Dataset, load_from_disk

    records = _only_records(case, "a datasets folder")
    cols = _union_columns(records)
    if not cols:
        raise Unwritable("a dataset without columns holds no rows")
    try:
        ds = Dataset.from_dict({c: [r.get(c) for r in records] for c in cols})
    except Exception as e:  # datasets wraps pyarrow's refusals in several types
        raise Unwritable(f"datasets refuses this dataset: {e}") from None
    ds.save_to_disk(str(path))
    return load_from_disk(str(path)).to_list()


WRITERS = {"jsonl": (write_jsonl, ".jsonl"), "json": (write_json_records, ".json"),
           "json_columns": (write_json_columns, ".json"), "csv": (write_csv, ".csv"),
           "parquet": (write_parquet, ".parquet"), "hf": (write_hf, "")}


# --------------------------------------------------------------------------------------------
# Comparisons computed here
# --------------------------------------------------------------------------------------------

def _same(a: Any, b: Any) -> bool:
    """Equal AND of the same types all the way down (1 != 1.0 != True; NaN equals NaN; -0.0 != 0.0):
    what a content hash can tell apart."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return ((math.isnan(a) and math.isnan(b))
                or (a == b and math.copysign(1, a) == math.copysign(1, b)))
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _id_value(rec: dict) -> Any:
    """The row's own id, or None when it has none (absent, null, NaN or empty: then the id is a
    hash)."""
    v = rec.get("id")
    return None if _missing(v) or v == "" else v


def _survived(ref: dict | None, other: dict | None) -> bool:
    """Whether a format stored the parts of a row that decide its id (prompt, chosen, rejected, id)
    exactly as the JSONL file did. A key that is absent reads as null (Parquet and datasets fill
    absent keys with nulls), and ids compare by their meaning (see _id_value). Everything else must
    match in value and type, because CSV turns every value into text (None -> "", 1 -> "1",
    NaN -> "nan", a dict -> its JSON text) and Arrow widens or fills in types (ints next to floats
    become floats, message dicts gain the keys of other messages as nulls): such rows hold other
    content, so may have other ids, and are not compared."""
    if ref is None or other is None:
        return False  # rows that are not objects: their ids are positional, not content ids
    return (all(_same(ref.get(f), other.get(f)) for f in PAIR_FIELDS)
            and _same(_id_value(ref), _id_value(other)))


def _check_usable_pair(row, rec: dict, explicit: bool) -> None:
    """A usable pair is the file's own content: prompt + response gives back what the row holds."""
    if row.kind == "standard":
        assert all(isinstance(v, str) for v in (row.prompt, row.chosen, row.rejected))
        if explicit:
            assert ((row.prompt, row.chosen, row.rejected)
                    == (rec["prompt"], rec["chosen"], rec["rejected"]))
        else:
            assert (row.prompt and row.prompt + row.chosen == rec["chosen"]
                    and row.prompt + row.rejected == rec["rejected"])
    else:
        assert row.prompt and row.chosen and row.rejected
        assert row.chosen[-1]["role"] == "assistant" and row.rejected[-1]["role"] == "assistant"
        if explicit and isinstance(rec["prompt"], list):
            assert row.prompt == rec["prompt"]
            assert row.chosen == rec["chosen"] or row.prompt + row.chosen == rec["chosen"]
            assert row.rejected == rec["rejected"] or row.prompt + row.rejected == rec["rejected"]
        else:  # implicit prompt, or a string prompt next to whole conversations
            assert (row.prompt + row.chosen == rec["chosen"]
                    and row.prompt + row.rejected == rec["rejected"])
    assert row.chosen != row.rejected


def check_file(path: Path, view: list, blank_lines: int) -> Any:
    """Load one written file and check what holds for any file. Returns the PairSet (None if
    empty)."""
    try:
        pairs = load_pairs(path)
    except DataError as e:
        # The one whole-file problem these files can have, documented: a file with no rows.
        assert not view and "holds no rows" in str(e), e
        return None
    n = len(view)
    assert len(pairs) == n, f"rows in {n}, rows out {len(pairs)}"
    assert pairs.raw.blank_lines == blank_lines
    assert (len(pairs.to_frame()) == n and pairs.summary()
            and isinstance(pairs.bad_rows_report(), str))

    explicit = any(rec is not None and "prompt" in rec for rec in view)
    assert pairs.implicit_prompt is not explicit
    required = (["prompt"] if explicit else []) + ["chosen", "rejected"]
    seen_ids: set[str] = set()
    for row, rec in zip(pairs.rows, view):
        if not row.valid:
            assert row.code and row.reason, f"{row.where}: unusable without a reason"
        assert isinstance(row.id, str) and row.id
        if rec is None:  # not an object, not JSON, not UTF-8
            assert row.code == "malformed" and row.id.startswith("unreadable-")
        else:
            absent = [f for f in required if _missing(rec.get(f))]
            if absent:
                assert (row.code, row.field) == ("missing_field", absent[0])
            own = _id_value(rec)
            if own is not None:
                assert row.id == str(own)
            else:
                assert re.fullmatch(r"[0-9a-f]{16}", row.id)
        if row.id in seen_ids:  # a later row with an id already used is never usable
            assert not row.valid
        elif row.code == "duplicate_id":
            raise AssertionError(f"{row.where} is a duplicate of nothing before it")
        seen_ids.add(row.id)
        if row.valid:
            assert row.kind == pairs.kind
            _check_usable_pair(row, rec, explicit)
    # Strict mode stops at the first unusable row, and only when there is one.
    first_bad = next((r for r in pairs.rows if not r.valid), None)
    if path.suffix == ".jsonl":  # cheap to read twice
        if first_bad is None:
            assert len(load_pairs(path, strict=True)) == n
        else:
            with pytest.raises(DataError, match=re.escape(first_bad.where)):
                load_pairs(path, strict=True)
    return pairs


def check_round_trip(pairs, fmt: str, src: Path, out: Path, case: Case) -> None:
    """write_pairs of the usable rows, read back: the same rows, the same ids, the same pairs."""
    valid = pairs.valid_rows
    assert write_pairs(pairs, out) == len(valid)
    if fmt == "jsonl":  # JSONL rows are given back verbatim (line ends normalized to \n)
        expected = b"".join(line + b"\n" for line, r in zip(_jsonl_file_lines(case), pairs.rows)
                            if r.valid)
        assert out.read_bytes() == expected
    if not valid:
        with pytest.raises(DataError, match="holds no rows"):
            load_pairs(out)
        return
    back = load_pairs(out)
    assert back.ids == [r.id for r in valid]
    assert all(r.valid for r in back.rows), back.bad_rows_report()
    assert (back.kind, back.implicit_prompt) == (pairs.kind, pairs.implicit_prompt)
    for a, b in zip(valid, back.rows):
        assert all(_same(getattr(a, f), getattr(b, f)) for f in PAIR_FIELDS), f"{fmt} {a.where}"


def check_full_round_trip(pairs, fmt: str, out: Path, case: Case) -> None:
    """write_pairs(include_invalid=True), read back: every row again, each with the same outcome."""
    unreadable = any(r.record is None for r in pairs.raw.rows)
    # documented: only JSONL can give back a row it could not read
    if unreadable and fmt != "jsonl":
        with pytest.raises(DataError, match="unreadable rows"):
            write_pairs(pairs, out, include_invalid=True)
        return
    assert write_pairs(pairs, out, include_invalid=True) == len(pairs)
    if fmt == "jsonl":  # every line but the blank ones, verbatim
        assert out.read_bytes() == b"".join(line + b"\n" for line in _jsonl_file_lines(case))
    back = load_pairs(out)
    assert len(back) == len(pairs)
    for a, b in zip(pairs.rows, back.rows):
        assert (a.valid, a.code, a.field) == (b.valid, b.code, b.field), f"{fmt} {a.where}"
        if a.code != "malformed":  # an unreadable row's id names its line, which moved
            assert a.id == b.id, f"{fmt} {a.where}"


def run_case(case: Case) -> None:
    from datasets.utils import logging as ds_logging

    bars = ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()  # one "Saving the dataset" bar per example otherwise
    try:
        _run_case(case)
    finally:
        if bars:
            ds_logging.enable_progress_bar()


def _run_case(case: Case) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        loaded = {}
        for fmt, (writer, suffix) in WRITERS.items():
            src = tmp / f"in_{fmt}{suffix}"
            try:
                view = writer(case, src)
            except Unwritable:
                continue
            pairs = check_file(src, view, len(case.blank_after) if fmt in ("jsonl", "csv") else 0)
            loaded[fmt] = (pairs, view)
            if pairs is not None:
                check_round_trip(pairs, fmt, src, tmp / f"out_{fmt}{suffix}", case)
                check_full_round_trip(pairs, fmt, tmp / f"all_{fmt}{suffix}", case)

        # Same content, same id, in every format that stored the content unchanged. JSONL is the
        # reference: it holds every value with its type (NaN included) and every kind of row.
        assert "jsonl" in loaded, "JSONL can hold any generated dataset"
        ref, ref_view = loaded["jsonl"]
        for fmt, (pairs, view) in loaded.items():
            if pairs is None or fmt == "jsonl":
                continue
            kept = [i for i in range(len(view)) if _survived(ref_view[i], view[i])]
            for i in kept:
                assert pairs.rows[i].id == ref.rows[i].id, f"{fmt}, row {i}: id differs from JSONL"
            if len(kept) == len(view):
                # The whole file's content survived: then every row must come out the same, usable
                # or not (for the same reason), and a usable pair must be the same pair.
                assert (pairs.kind, pairs.implicit_prompt) == (ref.kind, ref.implicit_prompt), fmt
                for a, b in zip(ref.rows, pairs.rows):
                    assert ((a.valid, a.code, a.field)
                            == (b.valid, b.code, b.field)), f"{fmt} {b.where}"
                    if a.valid:
                        assert all(_same(getattr(a, f), getattr(b, f))
                                   for f in PAIR_FIELDS), f"{fmt} {b.where}"
        # What this example exercised, for --hypothesis-show-statistics.
        for fmt, (pairs, _) in loaded.items():
            event(f"format {fmt}: {'loaded' if pairs is not None else 'empty file'}")
        if ref is not None:
            event(f"usable rows: {'some' if ref.valid_rows else 'none'}")
            for code in sorted(set(ref.reason_counts())):
                event(f"reason {code}")


# --------------------------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------------------------

# Each @example is a dataset the fuzzer shrank a failure to (the fix is named); they run first,
# in every profile.
@given(cases())
# unhashable role: TypeError
@example(Case([{"prompt": [{"role": [], "content": ""}], "chosen": [], "rejected": []}]))
# lone surrogate: content_id crashed
@example(Case([{"prompt": "p", "chosen": "", "rejected": "\ud800"}], jsonl_ascii=True))
@example(Case([{"rejected": ""}]))  # a CSV row of one empty cell was dropped as blank
# and of ",,"
@example(Case([{"prompt": "", "chosen": "", "rejected": ""}, {"chosen": " a", "rejected": " b"}]))
# CSV cell over 131072 chars
@example(Case([{"prompt": "p", "chosen": " " + "x" * 140_000, "rejected": " y"}]))
# write_pairs of no rows to a datasets folder
@example(Case([{"prompt": [], "chosen": [], "rejected": []}]))
# JSON columns, none readable
@example(Case([{"chosen": "", "rejected": "\ud800"}], jsonl_ascii=True, json_ascii=True))
@example(Case([Broken(b'\xff\xfe{"prompt": ""}'),
               {"prompt": "p", "chosen": " a", "rejected": " b"}],
              bom=True, blank_after=(0,)))  # a non-UTF-8 JSONL line came back as "null"
def test_every_format_keeps_every_row_with_one_id(case):
    run_case(case)


# Plain regression tests for the failures above, each on the smallest file that shows it.

def _jsonl(path: Path, *lines: str | bytes) -> Path:
    path.write_bytes(b"".join((ln if isinstance(ln, bytes) else ln.encode("utf-8")) + b"\n"
                              for ln in lines))
    return path


def test_a_role_of_any_type_is_a_reason_not_a_crash(tmp_path):
    roles = [[], {"a": 1}, 1, None, True]
    path = _jsonl(tmp_path / "r.jsonl", *(json.dumps({"prompt": [{"role": r, "content": "q"}],
                                                     "chosen": [{"role": "assistant",
                                                                 "content": "a"}],
                                                     "rejected": [{"role": "assistant",
                                                                   "content": "b"}]})
                                         for r in roles))
    pairs = load_pairs(path)
    assert [r.code for r in pairs.rows] == ["bad_message"] * len(roles)
    assert all("has role" in r.reason and r.field == "prompt" for r in pairs.rows)


def test_a_lone_surrogate_is_an_unreadable_row_in_jsonl_and_json(tmp_path):
    # an escaped pair is an emoji: fine
    good = {"prompt": "p", "chosen": " a \ud83d\ude00", "rejected": " b"}
    bad = {"prompt": "p", "chosen": " a \ud83d", "rejected": " b"}  # half of one is not text
    # ensure_ascii: \ud83d escapes
    jsonl = _jsonl(tmp_path / "s.jsonl", json.dumps(good), json.dumps(bad))
    records = tmp_path / "s.json"
    records.write_text(json.dumps([good, bad]), encoding="ascii")
    columns = tmp_path / "c.json"
    columns.write_text(json.dumps({k: [good[k], bad[k]] for k in good}), encoding="ascii")
    for path in (jsonl, records, columns):
        pairs = load_pairs(path)
        assert pairs.rows[0].valid and pairs.rows[0].chosen == " a \U0001F600"
        bad_row = pairs.rows[1]
        assert bad_row.code == "malformed" and "lone surrogate \\ud83d" in bad_row.reason
        (pairs.summary() + pairs.bad_rows_report()).encode("utf-8")  # printable
        assert write_pairs(pairs, tmp_path / f"out_{path.name}") == 1
        assert load_pairs(tmp_path / f"out_{path.name}").ids == [pairs.rows[0].id]


def test_json_columns_keep_their_names_when_no_row_is_readable(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"chosen": ["\ud800"], "rejected": ["x"]}), encoding="ascii")
    pairs = load_pairs(path)
    assert pairs.raw.columns == ["chosen", "rejected"] and pairs.rows[0].code == "malformed"
    write_pairs(pairs, tmp_path / "out.json")
    assert json.loads((tmp_path / "out.json").read_text()) == {"chosen": [], "rejected": []}
    with pytest.raises(DataError, match="holds no rows"):
        load_pairs(tmp_path / "out.json")


def test_a_csv_row_of_empty_cells_is_a_row_and_a_blank_line_is_not(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text('prompt,chosen,rejected\r\n,,\r\n\r\n   \r\np, a, b\r\n', encoding="utf-8")
    pairs = load_pairs(path)
    assert [r.where for r in pairs.rows] == ["line 2", "line 5"]
    assert pairs.rows[0].code == "empty_response" and pairs.rows[1].valid
    assert pairs.raw.blank_lines == 2 and "blank lines skipped: 2" in pairs.summary()
    one = tmp_path / "one.csv"
    # how csv.writer writes a row of one empty cell
    one.write_text('rejected\r\n""\r\n', encoding="utf-8")
    assert load_pairs(one).rows[0].code == "missing_field"


def test_a_csv_cell_may_be_longer_than_the_csv_module_default(tmp_path):
    limit = csv.field_size_limit()
    path = tmp_path / "long.csv"
    long = " " + "x" * (limit + 10)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["prompt", "chosen", "rejected"], ["p", long, " y"]])
    pairs = load_pairs(path)
    assert pairs.rows[0].valid and pairs.rows[0].chosen == long
    assert csv.field_size_limit() == limit  # put back after the read


def test_no_rows_written_to_a_datasets_folder_read_back_as_empty(tmp_path):
    from datasets import Dataset

    Dataset.from_dict({"prompt": ["p"], "chosen": [" a"],
                       "rejected": [" a"]}).save_to_disk(str(tmp_path / "in"))
    pairs = load_pairs(tmp_path / "in")
    assert pairs.rows[0].code == "identical"
    assert write_pairs(pairs, tmp_path / "out") == 0
    with pytest.raises(DataError, match="holds no rows"):
        load_pairs(tmp_path / "out")


def test_a_jsonl_line_that_is_not_utf8_is_written_back_as_it_was(tmp_path):
    path = _jsonl(tmp_path / "b.jsonl", b'{"prompt": "caf\xe9"}',
                  json.dumps({"prompt": "p", "chosen": " a", "rejected": " b"}))
    pairs = load_pairs(path)
    assert pairs.rows[0].code == "malformed" and "0xe9" in pairs.rows[0].reason
    write_pairs(pairs, tmp_path / "out.jsonl", include_invalid=True)
    assert (tmp_path / "out.jsonl").read_bytes() == path.read_bytes()


def test_a_rating_too_large_for_a_float_is_a_bad_rating(tmp_path):
    path = _jsonl(tmp_path / "big.jsonl", '{"prompt": "p", "chosen": " a", "rejected": " b", '
                                          '"score_chosen": 1' + "0" * 400
                  + ', "score_rejected": 1}')
    row = load_pairs(path).rows[0]
    assert row.valid and row.rating_gap is None and row.rating_problem

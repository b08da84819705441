"""Read the rows of a preference file as they are, before any interpretation.

Each reader yields `RawRow`s: the record exactly as stored (so a writer can give it back unchanged),
where it came from (a line number for text formats, a row index otherwise), and a parse error when
the row could not be read at all. A row that cannot be parsed is still a row: it is reported, never
dropped."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from ..core.errors import UserError

FILE_FORMATS = ("jsonl", "json", "parquet", "csv", "hf")


class DataError(UserError):
    """Input that prefsift cannot use, with the place and the fix in the message."""


@dataclass
class RawRow:
    index: int  # 0-based position among the file's rows
    where: str  # "line 12" or "row 12": what a person looks for in the file
    record: dict[str, Any] | None  # None when the row could not be parsed
    raw_text: str | None = None  # the line as read, for text formats (written back verbatim)
    error: str | None = None  # why the row could not be parsed


@dataclass
class RawFile:
    path: Path
    file_format: str
    rows: list[RawRow]
    columns: list[str]  # column names in file order
    blank_lines: int = 0
    # Format-specific things the writer needs to give the file back in its own form.
    extras: dict[str, Any] = field(default_factory=dict)


def detect_file_format(path: Path) -> str:
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
            return "hf"
        raise DataError(
            f"{path} is a folder but not a `datasets.save_to_disk` folder (no dataset_info.json or "
            "dataset_dict.json). Point at a file, or at the folder that save_to_disk wrote."
        )
    suffix = path.suffix.lower()
    by_suffix = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet",
                 ".pq": "parquet", ".csv": "csv"}
    if suffix in by_suffix:
        return by_suffix[suffix]
    raise DataError(
        f"cannot tell the format of {path} from its extension {suffix!r}; use one of "
        ".jsonl .json .parquet .csv, a save_to_disk folder, or pass --format."
    )


def read_raw(path: str | Path, file_format: str | None = None, split: str | None = None) -> RawFile:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    file_format = file_format or detect_file_format(path)
    if file_format not in FILE_FORMATS:
        raise DataError(f"unknown format {file_format!r}; choose one of {', '.join(FILE_FORMATS)}")
    reader = {"jsonl": _read_jsonl, "json": _read_json, "parquet": _read_parquet,
              "csv": _read_csv, "hf": _read_hf}[file_format]
    try:
        raw = reader(path, split) if file_format == "hf" else reader(path)
    except PermissionError:
        raise DataError(f"{path}: cannot be read (permission denied); fix its "
                        f"permissions") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder; with --format {file_format} give a file") from None
    if not raw.rows:
        raise DataError(f"{path} holds no rows: it is "
                        f"empty{' (only blank lines)' if raw.blank_lines else ''}.")
    return raw


def _columns_of(records: list[dict | None]) -> list[str]:
    seen: dict[str, None] = {}
    for r in records:
        if isinstance(r, dict):
            for k in r:
                seen.setdefault(k, None)
    return list(seen)


def _utf8_hint(path: Path, err: UnicodeDecodeError, where: str) -> str:
    return (
        f"{path}: {where} is not UTF-8 (byte 0x{err.object[err.start]:02x} at offset {err.start}). "
        "Re-save the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 IN > OUT`."
    )


# A JSON \udXXX escape: the only way a file read as UTF-8 can come to hold a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _lone_surrogate(record: Any) -> str | None:
    """What is wrong with a decoded JSON value holding a lone UTF-16 surrogate, or None. JSON's
    `\\ud83d` escapes decode to one when an emoji was cut in half; it is not text: no UTF-8 file,
    tokenizer or writer takes it."""
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:
        return (f"holds a lone surrogate \\u{ord(e.object[e.start]):04x} (half of a character, "
                "e.g. an emoji cut in two), which is not text; fix or remove it")
    return None


def _read_jsonl(path: Path) -> RawFile:
    rows: list[RawRow] = []
    blank = 0
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            # Decode per line so one bad line is one bad row, not a lost file.
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                # The bytes are kept (undecodable ones as surrogate escapes) so a writer gives the
                # line back.
                rows.append(RawRow(len(rows), f"line {lineno}", None,
                                   raw.decode("utf-8", "surrogateescape").rstrip("\r\n"),
                                   _utf8_hint(path, e, f"line {lineno}")))
                continue
            stripped = text.strip()
            if lineno == 1 and stripped.startswith("\ufeff"):
                stripped = stripped.lstrip("\ufeff")
            if not stripped:
                blank += 1
                continue
            text = text.rstrip("\r\n")
            try:
                rec = json.loads(stripped)
            except json.JSONDecodeError as e:
                rows.append(RawRow(len(rows), f"line {lineno}", None, text,
                                   f"line {lineno} is not valid JSON ({e.msg} at column "
                                   f"{e.colno}); "
                                   "fix or remove the line"))
                continue
            if not isinstance(rec, dict):
                rows.append(RawRow(len(rows), f"line {lineno}", None, text,
                                   f"line {lineno} is a JSON {type(rec).__name__}, expected an "
                                   'object {"prompt": ..., "chosen": ..., "rejected": ...}'))
                continue
            problem = _lone_surrogate(rec) if _SURROGATE_ESCAPE.search(text) else None
            if problem:
                rows.append(RawRow(len(rows), f"line {lineno}", None, text,
                                   f"line {lineno} {problem}"))
                continue
            rows.append(RawRow(len(rows), f"line {lineno}", rec, text))
    return RawFile(path, "jsonl", rows, _columns_of([r.record for r in rows]), blank_lines=blank)


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(_utf8_hint(path, e, "the file")) from None


def _read_json(path: Path) -> RawFile:
    text = _read_text(path)
    if not text.strip():
        return RawFile(path, "json", [], [])
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        hint = " (one object per line? name it .jsonl)" if e.msg == "Extra data" else ""
        raise DataError(f"{path}: not valid JSON at line {e.lineno} column {e.colno}: "
                        f"{e.msg}{hint}") from None
    layout, keys = "records", None
    if isinstance(obj, dict):
        if all(isinstance(v, list) for v in obj.values()) and obj:
            lengths = {len(v) for v in obj.values()}
            if len(lengths) != 1:
                raise DataError(f"{path}: a JSON object of columns must have columns of one "
                                f"length, got {sorted(lengths)}")
            n = lengths.pop()
            keys = list(obj)
            obj = [{k: obj[k][i] for k in keys} for i in range(n)]
            layout = "columns"
        else:
            raise DataError(f"{path}: expected a JSON list of objects (or an object of "
                            f"equal-length columns)")
    if not isinstance(obj, list):
        raise DataError(f"{path}: expected a JSON list of objects, got a {type(obj).__name__}")
    rows = []
    escapes = bool(_SURROGATE_ESCAPE.search(text))
    for i, rec in enumerate(obj):
        problem = _lone_surrogate(rec) if escapes and isinstance(rec, dict) else None
        if problem:
            rows.append(RawRow(i, f"row {i}", None, json.dumps(rec, ensure_ascii=False),
                               f"row {i} {problem}"))
        elif isinstance(rec, dict):
            rows.append(RawRow(i, f"row {i}", rec))
        else:
            rows.append(RawRow(i, f"row {i}", None, json.dumps(rec, ensure_ascii=False),
                               f"row {i} is a JSON {type(rec).__name__}, expected an object"))
    # An object of columns names its columns even when no row of it is readable.
    columns = keys if layout == "columns" else _columns_of([r.record for r in rows])
    return RawFile(path, "json", rows, columns, extras={"layout": layout})


def _read_csv(path: Path) -> RawFile:
    text = _read_text(path)
    if not text.strip():
        return RawFile(path, "csv", [], [])
    reader = csv.reader(io.StringIO(text, newline=""))
    # A cell may be as long as the file (a long response): lift the csv module's 128 KiB cap on a
    # field for this read, and put it back after.
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, len(text)))
    try:
        return _read_csv_rows(path, reader)
    except csv.Error as e:
        raise DataError(f"{path}: line {reader.line_num} is not readable as CSV ({e})") from None
    finally:
        csv.field_size_limit(limit)


def _read_csv_rows(path: Path, reader) -> RawFile:
    try:
        header = next(reader)
    except StopIteration:
        return RawFile(path, "csv", [], [])
    if len(set(header)) != len(header):
        dup = sorted({h for h in header if header.count(h) > 1})
        raise DataError(f"{path}: the header names columns more than once: {dup}")
    rows = []
    blank = 0
    for cells in reader:
        lineno = reader.line_num  # last physical line of this record
        # A blank (or whitespace-only) line is not a row. A row of empty cells ("" or ",,") is one:
        # it is reported like any other, never dropped.
        if not cells or (len(cells) == 1 and len(header) > 1 and not cells[0].strip()):
            blank += 1
            continue
        where = f"line {lineno}"
        if len(cells) != len(header):
            rows.append(RawRow(len(rows), where, None, None,
                               f"{where} has {len(cells)} cells, the header has {len(header)}; "
                               "quote cells that contain commas or newlines"))
            continue
        # CSV cells are strings: a cell that holds a JSON message list is decoded by the
        # interpreter, not here, so the writer can give back the exact cell text.
        rows.append(RawRow(len(rows), where, dict(zip(header, cells))))
    return RawFile(path, "csv", rows, list(header), blank_lines=blank)


def _read_parquet(path: Path) -> RawFile:
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a bad file
        raise DataError(f"{path}: not a readable Parquet file ({e})") from None
    records = table.to_pylist()
    rows = [RawRow(i, f"row {i}", rec) for i, rec in enumerate(records)]
    return RawFile(path, "parquet", rows, table.column_names, extras={"schema": table.schema})


def _read_hf(path: Path, split: str | None) -> RawFile:
    from datasets import DatasetDict, load_from_disk

    ds = load_from_disk(str(path))
    if isinstance(ds, DatasetDict):
        names = list(ds.keys())
        if split is None:
            if "train" in ds:
                split = "train"
            elif len(names) == 1:
                split = names[0]
            else:
                raise DataError(f"{path} holds splits {names}; choose one with --split")
        if split not in ds:
            raise DataError(f"{path} has no split {split!r}; it holds {names}")
        ds = ds[split]
    records = ds.to_list()
    rows = [RawRow(i, f"row {i}", rec) for i, rec in enumerate(records)]
    return RawFile(path, "hf", rows, list(ds.column_names),
                   extras={"features": ds.features, "split": split})

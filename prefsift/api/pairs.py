"""Pairs in and out: read a file or rows (every row kept, with a reason where it cannot be used),
check a file (`prefsift data check`), write a subset in the input's own format."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from ..core.errors import ConfigError, UserError, require_path
from ..data import ColumnMap, PairSet, check_lengths, write_pairs
from ..data import load_pairs as load_file
from ..data.pairs import parse_pairs
from ..data.readers import RawFile, RawRow, _columns_of


def load_pairs(path_or_rows: str | Path | Iterable[dict], *, columns: ColumnMap | None = None,
               strict: bool = False,
               file_format: str | None = None, split: str | None = None) -> PairSet:
    """Read preference pairs: a file (JSONL, JSON, Parquet, CSV, a `save_to_disk` folder) or rows.

    Every row is kept, in order, with a stable id and, when it cannot be used, a reason (`strict`
    raises at the first bad row instead). Rows (dicts with prompt/chosen/rejected, standard or
    conversational) behave as a JSONL file would, and `write_subset` writes them as JSONL."""
    if isinstance(path_or_rows, (str, Path)):
        return load_file(path_or_rows, columns=columns, strict=strict, file_format=file_format,
                         split=split)
    if isinstance(path_or_rows, PairSet):
        return path_or_rows
    rows = list(path_or_rows)
    if not rows:
        raise UserError("load_pairs: no rows given; pass a file path or a non-empty list of pair "
                        "dicts")
    raw_rows = [RawRow(i, f"row {i}", r if isinstance(r, dict) else None, None,
                       None if isinstance(r, dict)
                       else f"row {i} is a {type(r).__name__}, expected a dict")
                for i, r in enumerate(rows)]
    raw = RawFile(Path("<rows>"), "jsonl", raw_rows, _columns_of([r.record for r in raw_rows]))
    columns = columns or ColumnMap()
    parsed, kind, implicit = parse_pairs(raw, columns, strict=strict)
    return PairSet(raw, columns, parsed, kind, implicit)


def check_pairs(path: str | Path, *, columns: ColumnMap | None = None, strict: bool = False,
                file_format: str | None = None, split: str | None = None,
                tokenizer: str | None = None, max_length: int = 1024, overlength: str = "truncate",
                report: str | Path | None = None) -> PairSet:
    """`prefsift data check`: read a pair file and, with `tokenizer` (a model folder or `smollm2`),
    mark the rows over `max_length` tokens by the `overlength` policy; with `report` (.csv or
    .parquet), write one row per input row with its reason. The PairSet's `summary()`,
    `bad_rows_report()` and `bad_ratings_report()` say what was found."""
    pairs = load_pairs(path, columns=columns, strict=strict, file_format=file_format, split=split)
    if tokenizer:
        from ..models.loading import load_tokenizer

        check_lengths(pairs, load_tokenizer(tokenizer), max_length=max_length, policy=overlength,
                      strict=strict)
    if report:
        frame = pairs.to_frame()
        out = Path(report)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".parquet":
            frame.to_parquet(out, index=False)
        else:
            frame.to_csv(out, index=False)
    return pairs


def subset(path: str | Path, ids: str | Path | Iterable[str], out: str | Path, *,
           columns: ColumnMap | None = None, strict: bool = False, file_format: str | None = None,
           split: str | None = None) -> tuple[int, int, str]:
    """`prefsift data subset`: write the rows of `path` whose id is in `ids` (a text file with one
    id per line, or the ids) to `out`, in the input's format. Returns (rows written, ids requested,
    the format)."""
    if isinstance(ids, (str, Path)):
        ids_path = require_path(ids, "ids file", "ids",
                                hint="give a text file with one pair id per line")
        try:
            ids = [line.strip() for line in ids_path.read_text(encoding="utf-8").splitlines()
                   if line.strip()]
        except UnicodeDecodeError:
            raise ConfigError(key="ids", problem=f": {str(ids)!r} is not a UTF-8 text file; give "
                                                 "one pair id per line") from None
        if not ids:
            raise ConfigError(key="ids",
                              problem=f": {str(ids_path)!r} lists no id; give one pair id per line")
    ids = [str(i) for i in ids]
    pairs = load_pairs(path, columns=columns, strict=strict, file_format=file_format, split=split)
    return write_pairs(pairs, out, ids=ids), len(ids), pairs.raw.file_format


def write_subset(pairs: PairSet, mask, path: str | Path) -> int:
    """Write the usable pairs where `mask` (one entry per row of `pairs`) is true to `path`, in the
    input's own format and column names. Returns the number of rows written."""
    mask = np.asarray(mask, dtype=bool)
    if len(mask) != len(pairs):
        raise UserError(f"write_subset: the mask has {len(mask)} entries but the pairs have "
                        f"{len(pairs)} rows; "
                        "select on the scores table of these pairs")
    return write_pairs(pairs, path, ids=[r.id for r, m in zip(pairs.rows, mask) if m])

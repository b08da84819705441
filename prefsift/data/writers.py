"""Write any subset of a `PairSet` back in the input's own format and column names."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .pairset import PairSet
from .readers import DataError


def write_pairs(pairs: PairSet, path: str | Path, ids=None, *,
                include_invalid: bool = False) -> int:
    """Write the rows whose id is in `ids` (all rows if None) to `path`, in the input's format.

    Rows are given back as they were read, so the output is the input's content, column names and
    order included. Returns the number of rows written."""
    path = Path(path)
    positions = range(len(pairs)) if ids is None else pairs.subset(ids)
    chosen = [i for i in positions if include_invalid or pairs.rows[i].valid]
    raw = pairs.raw
    fmt = raw.file_format
    path.parent.mkdir(parents=True, exist_ok=True)
    records = [raw.rows[i].record for i in chosen]
    if fmt != "jsonl" and any(r is None for r in records):
        raise DataError("unreadable rows cannot be written in a structured format; leave "
                        "include_invalid off")

    if fmt == "jsonl":
        # a non-UTF-8 line, as read
        with open(path, "w", encoding="utf-8", errors="surrogateescape") as fh:
            for i in chosen:
                rr = raw.rows[i]
                # Verbatim when we have the line: the output is byte-for-byte the input's row.
                fh.write((rr.raw_text if rr.raw_text is not None
                          else json.dumps(rr.record, ensure_ascii=False)) + "\n")
    elif fmt == "json":
        if raw.extras.get("layout") == "columns":
            obj = {c: [r.get(c) for r in records] for c in raw.columns}
        else:
            obj = records
        path.write_text(json.dumps(obj, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    elif fmt == "csv":
        with open(path, "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(raw.columns)
            for r in records:
                w.writerow([r.get(c, "") for c in raw.columns])
    elif fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(records, schema=raw.extras["schema"]), path)
    elif fmt == "hf":
        from datasets import Dataset

        # By columns: from_list cannot build a dataset of no rows. An empty one is saved as one
        # empty shard, because load_from_disk cannot read back a folder of none.
        ds = Dataset.from_dict({c: [r.get(c) for r in records] for c in raw.columns},
                               features=raw.extras["features"])
        ds.save_to_disk(str(path), num_shards=1 if not records else None)
    else:  # pragma: no cover - readers only produce the formats above
        raise DataError(f"cannot write format {fmt!r}")
    return len(chosen)

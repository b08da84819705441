"""The preference-data layer: read pairs in every format TRL accepts, validate each row with a
reason, give every pair a stable id, and write any subset back in the input's own format."""

from .lengths import LENGTH_POLICIES, check_lengths
from .pairs import ColumnMap, PairRow, content_id, extract_implicit_prompt_text
from .pairset import PairSet, load_pairs
from .readers import FILE_FORMATS, DataError
from .writers import write_pairs

__all__ = [
    "FILE_FORMATS", "LENGTH_POLICIES", "ColumnMap", "check_lengths", "DataError", "PairRow",
    "PairSet", "content_id", "extract_implicit_prompt_text", "load_pairs", "write_pairs",
]

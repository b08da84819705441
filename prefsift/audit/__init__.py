"""`prefsift audit`: what is wrong with a preference file, before any model is trained. Each check
is one module (lengths, style, duplicates, truncation, ratings, scores) returning `Finding`s;
`report` runs them all and writes the terminal lines, audit.json and the view's panel. No model is
needed: lengths are words, or a tokenizer's tokens when one is named."""

from .finding import Finding
from .report import AuditReport, run_audit
from .thresholds import Thresholds

__all__ = ["AuditReport", "Finding", "Thresholds", "run_audit"]

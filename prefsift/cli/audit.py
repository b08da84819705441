"""`prefsift audit`'s arguments and the help that explains each finding (in a module of its own: the
findings' help is long)."""

from __future__ import annotations

import argparse

AUDIT_FINDINGS = """\
findings (each reported when it reaches its threshold; every one is in --json with its rows' ids):
  data        rows that cannot be used, with their reason (as `prefsift data check`)
  length      the share of pairs (of those whose answers differ in length) whose chosen is the
              longer, its mean length ratio, by --by group; with --validation, the difference from
              the careful set's share with a bootstrap interval, and the implied share of
              length-decided labels b = (p_t - p_v) / (1 - p_v) (docs/method.md). Try: cdpo,
              top_if against lossdiff_irm, a per-group loss correction, `prefsift recommend`
  style       words, n-grams and markup far more frequent in chosen than rejected answers, or the
              reverse (log-odds with an informative Dirichlet prior, Monroe et al. 2008): "Sure!",
              "As an AI", list markup, an echoed prompt, a repeated word. Try: read those pairs
  duplicates  the same pair twice, chosen the same as rejected, near-identical answers
              (rapidfuzz), and training prompts that are --validation or --test-prompts prompts.
              Try: drop them
  truncation  pairs TRL cuts at --max-length (chosen, rejected or both) or drops (the prompt alone
              fills it); in words without --tokenizer (a lower bound on tokens). Try: max_length
  ratings     with score_chosen/score_rejected: chosen rated below rejected, ties, values outside
              the scale, ratings that are not numbers. Try: fix the binarisation
  scores      with --scores: pairs θ holds strongly the other way (σ(IRM) <= 0.1), and each score
              by length group (chosen longer / same / rejected longer). Try: a one-sided rule
thresholds: docs/guide.md, "prefsift audit". Exit status: 0 nothing above its threshold, 1 some
finding above it, 2 an input that cannot be read."""


def add_audit_command(sub, c, add_column_args) -> None:
    """The parser of `prefsift audit` (`add_column_args`: the parser's own column flags)."""
    audit = sub.add_parser(
        "audit",
        help="what is wrong with a preference file: length bias, style habits, duplicates and "
        "leaks, truncation, ratings (no model needed)",
        description="Audit TRAIN before training or scoring anything: one line per finding (what, "
        "how many, the share, an example id, what to try), --json with every finding and the ids "
        "of its rows, --html the pairs browser with a panel whose findings filter the table. "
        "Lengths are words, or --tokenizer's tokens.",
        epilog=AUDIT_FINDINGS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    audit.add_argument("train", help="the preference file (any format `prefsift data check` reads)")
    audit.add_argument(
        "--validation",
        help="a careful validation file: the length share to compare with, and "
        "prompts that must not be training prompts",
    )
    audit.add_argument(
        "--scores",
        help="the scores.parquet of TRAIN (`prefsift score`): θ's disagreements and "
        "the scores by length group",
    )
    audit.add_argument(
        "--test-prompts", help="a file of test prompts (a 'prompt' column): leaks into them"
    )
    audit.add_argument(
        "--tokenizer",
        help="model spec whose tokenizer counts lengths (a folder, `smollm2`); default: words",
    )
    audit.add_argument(
        "--by",
        action="append",
        default=[],
        help="a column that groups the pairs (repeat for several); default: `source` if present",
    )
    audit.add_argument(
        "--max-length", type=int, default=1024, help="TRL's max_length (default: 1024)"
    )
    audit.add_argument(
        "--max-prompt-length",
        type=int,
        default=None,
        help="the max_prompt_length of TRL < 1.0 (default: none, as TRL 1.16)",
    )
    audit.add_argument(
        "--rating-scale", help="LOW:HIGH of the ratings (default: inferred from the values)"
    )
    audit.add_argument(
        "--seed", type=int, default=0, help="seed of the bootstrap intervals (default: 0)"
    )
    audit.add_argument("--json", help="write audit.json here")
    audit.add_argument("--html", help="write the pairs browser with the audit's panel here")
    add_column_args(audit)
    audit.set_defaults(func=c.cmd_audit)

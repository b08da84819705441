"""The lab: a small synthetic alignment world shipped with prefsift (docs/method.md §12, "The lab").

A digit-list task family with a graded programmatic oracle (`task`), a word-level tokenizer built
in code (`tokenizer`), an SFT stage that teaches a tiny causal LM the task imperfectly (`sft`),
seeded sampling (`sample`), preference pairs with tagged imperfections (`pairs`), and `make_lab`,
which builds all of it into a folder in a few minutes on a laptop CPU with no downloads (`make`).
Importing it registers the oracle judge (`judge: oracle`) and the lab's answer sampler
(`lab/judge.py`).
"""

from .judge import OracleJudge  # registers the oracle judge and the lab sampler
from .make import LabConfig, make_lab
from .pairs import PAIR_TYPES, PairConfig, build_pairs, type_counts
from .sample import sample_responses
from .sft import SFTConfig, build_lab_model, load_sft, save_sft, train_sft
from .summary import format_summary
from .task import (
    TASKS,
    PromptGenerator,
    best_response,
    format_prompt,
    oracle_reward,
    parse_prompt,
    random_response,
)
from .tokenizer import build_lab_tokenizer, lab_vocab

__all__ = [
    "LabConfig", "make_lab", "format_summary",
    "PAIR_TYPES", "PairConfig", "build_pairs", "type_counts",
    "sample_responses",
    "SFTConfig", "build_lab_model", "train_sft", "save_sft", "load_sft",
    "TASKS", "PromptGenerator", "best_response", "format_prompt", "oracle_reward", "parse_prompt",
    "random_response",
    "build_lab_tokenizer", "lab_vocab", "OracleJudge",
]

"""The lab's task family and its programmatic oracle.

A prompt names an instruction and a short list of digits, e.g. ``"sort : 7 3 9 1 ="``; the ideal
response is the transformed list as space-separated words with a leading space, ``" 1 3 7 9"``.
Four instructions of increasing difficulty for a tiny transformer:

=========  ===========================  =====================
task       what the response must be    example (3 1 4 1)
=========  ===========================  =====================
copy       the list unchanged           3 1 4 1
increment  every digit + 1 (mod 10)     4 2 5 2
reverse    the list backwards           1 4 1 3
sort       the list in ascending order  1 1 3 4
=========  ===========================  =====================

The oracle is graded, not binary. For a target of ``n`` words and a response of ``m`` words::

    matches    = #{ i < min(n, m) : response[i] == target[i] }
    accuracy   = matches / max(n, m)                 # position-wise, over-long answers diluted
    length     = max(0, 1 - |m - n| / n)             # length correctness
    reward     = accuracy * (1 + length) / 2

so the reward is 1 exactly for the ideal response, 0 for a response with no correct position
(whatever its length: garbage cannot earn length credit on its own), and graded in between.
The reward depends on the response only through which positions match and its length, which the
pair generator uses to build exact ties.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

TASKS: tuple[str, ...] = ("copy", "increment", "reverse", "sort")
DIGITS: tuple[str, ...] = tuple(str(i) for i in range(10))
SEPARATOR = ":"
END = "="
MIN_ITEMS = 3
MAX_ITEMS = 8


@dataclass(frozen=True)
class LabPrompt:
    """One parsed prompt: instruction and its digit list."""

    task: str
    items: tuple[str, ...]

    @property
    def text(self) -> str:
        return format_prompt(self.task, self.items)


def format_prompt(task: str, items) -> str:
    """``"sort : 7 3 9 1 ="`` (no trailing space: the response carries the leading space)."""
    if task not in TASKS:
        raise ValueError(f"unknown lab task {task!r}; choose one of {TASKS}")
    return " ".join([task, SEPARATOR, *items, END])


def parse_prompt(prompt: str) -> LabPrompt:
    """Inverse of `format_prompt`; raises ``ValueError`` on anything else."""
    words = prompt.split()
    if len(words) < 4 or words[1] != SEPARATOR or words[-1] != END or words[0] not in TASKS:
        raise ValueError(f"not a lab prompt: {prompt!r}")
    items = tuple(words[2:-1])
    if any(w not in DIGITS for w in items):
        raise ValueError(f"lab prompt has a non-digit item: {prompt!r}")
    return LabPrompt(words[0], items)


def solve(task: str, items) -> list[str]:
    """The ideal output list for an instruction."""
    items = list(items)
    if task == "copy":
        return items
    if task == "increment":
        return [str((int(d) + 1) % 10) for d in items]
    if task == "reverse":
        return items[::-1]
    if task == "sort":
        return sorted(items)
    raise ValueError(f"unknown lab task {task!r}")


FLAWS: tuple[str, ...] = ("extra_item", "drop_item", "copy_input")


def flawed_words(task: str, items, flaw: str) -> list[str]:
    """The ideal output with one systematic habit, the kind a preference stage should train away:

    - ``extra_item``: the last item is written twice (too long);
    - ``drop_item``: the last item is left out (too short; a one-item answer is kept);
    - ``copy_input``: the input list is echoed instead of transformed (for ``copy``, whose echo is
      right, the answer gets an extra item instead).
    """
    target = solve(task, items)
    if flaw == "copy_input" and task == "copy":
        flaw = "extra_item"
    if flaw == "extra_item":
        return target + target[-1:]
    if flaw == "drop_item":
        return target[:-1] if len(target) > 1 else target + target
    if flaw == "copy_input":
        echo = list(items)
        return echo if echo != target else target + target[-1:]
    raise ValueError(f"unknown flaw {flaw!r}; choose from {FLAWS}")


def target_words(prompt: str) -> list[str]:
    p = parse_prompt(prompt)
    return solve(p.task, p.items)


def best_response(prompt: str) -> str:
    """The response with oracle reward exactly 1.0, e.g. ``" 1 3 7 9"``."""
    return words_to_response(target_words(prompt))


def words_to_response(words) -> str:
    """Join words the way every lab response is written: a leading space, single spaces."""
    return "".join(" " + w for w in words)


def score_words(target: list[str], response: list[str]) -> float:
    """The oracle on word lists (see the module docstring for the formula)."""
    n, m = len(target), len(response)
    if n == 0:
        raise ValueError("empty target")
    matches = sum(1 for a, b in zip(target, response) if a == b)
    accuracy = matches / max(n, m)
    length = max(0.0, 1.0 - abs(m - n) / n)
    return accuracy * (1.0 + length) / 2.0


def oracle_reward(prompt: str, response: str) -> float:
    """Graded true reward in [0, 1] of a response (a plain string of space-separated words)."""
    return score_words(target_words(prompt), response.split())


class PromptGenerator:
    """Seeded stream of lab prompts, uniform over tasks and list lengths, without repeats.

    ``exclude`` holds prompts that must never be produced (e.g. the held-out test prompts)."""

    def __init__(self, seed: int, *, min_items: int = MIN_ITEMS, max_items: int = MAX_ITEMS,
                 tasks: tuple[str, ...] = TASKS, exclude=(), unique: bool = True):
        if not (1 <= min_items <= max_items):
            raise ValueError("need 1 <= min_items <= max_items")
        self.rng = random.Random(seed)
        self.min_items, self.max_items, self.tasks = min_items, max_items, tuple(tasks)
        self.unique = unique
        self.seen: set[str] = set(exclude)

    def draw_one(self) -> LabPrompt:
        for _ in range(10_000):
            task = self.rng.choice(self.tasks)
            n = self.rng.randint(self.min_items, self.max_items)
            p = LabPrompt(task, tuple(self.rng.choice(DIGITS) for _ in range(n)))
            if p.text in self.seen:
                continue
            if self.unique:
                self.seen.add(p.text)
            return p
        raise RuntimeError("prompt space exhausted; raise max_items")

    def draw(self, n: int) -> list[LabPrompt]:
        return [self.draw_one() for _ in range(n)]


def content_words() -> list[str]:
    """Every non-special word of the lab's vocabulary, in a fixed order."""
    return [SEPARATOR, END, *DIGITS, *TASKS]


def random_response(rng: random.Random, max_words: int = MAX_ITEMS + 2) -> str:
    """The random-token baseline: 1..max_words words drawn uniformly from the content vocabulary."""
    words = content_words()
    return words_to_response(rng.choice(words) for _ in range(rng.randint(1, max_words)))

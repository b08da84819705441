"""The settings of every command as dataclasses (their fields, with help text, are the CLI's flags),
and the registries a command's help lists."""

from ..lab import LabConfig  # noqa: F401
from ..lab.sentiment import SentimentConfig  # noqa: F401
from ..pipeline import RunConfig  # noqa: F401
from ..pipeline.config import GROUPS as RUN_GROUPS  # noqa: F401
from ..runtime.devices import DEVICES, DTYPES  # noqa: F401
from ..scoring.config import ScoreConfig  # noqa: F401
from ..scoring.kinds import SCORES  # noqa: F401
from ..selection.kinds import ARM_KINDS  # noqa: F401
from ..selection.rules import RULES  # noqa: F401
from ..selection.treatments import TREATMENTS  # noqa: F401
from ..train.warmup import WarmupConfig  # noqa: F401

"""Where the models run, in which precision, and how several processes hold each one: the settings
`prefsift warmup`, `score`, `run` and `recommend` share, spelled here once (each of their configs
inherits them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .devices import DTYPES, device_problem
from .sharding import shard_field


@dataclass(kw_only=True)
class PlacementSettings:
    device: str = field(default="auto",
                        metadata={"help": "where the models run: auto (CUDA when present), cpu, "
                                          "cuda, cuda:N", "check": device_problem})
    dtype: str = field(default="auto", metadata={"help": "weights' precision: auto (fp32 on CPU), "
                                                         "fp32, bf16, fp16; training keeps fp32 "
                                                         "master weights under autocast, and sums, "
            "margins and IF products stay fp32", "check": DTYPES})
    shard: str = shard_field()

"""Where models run and in which precision: `--device auto|cpu|cuda|cuda:N`, `--dtype
auto|fp32|bf16|fp16`.

Weights may be bf16 or fp16; log-softmax normalisers, sums of log-probs, margins and IF inner
products are always accumulated in fp32 or better (`accumulation_dtype`). Training stages keep fp32
master weights and run the half precision under autocast (TRL's `bf16`/`fp16`), so a small SGD step
(θ → θ_val) is not lost to bf16's 8-bit mantissa."""

from __future__ import annotations

import os
import platform
import re

import torch

from ..core.errors import ConfigError

DEVICES = "auto, cpu, cuda or cuda:N"
DTYPES = ("auto", "fp32", "bf16", "fp16")
_TORCH = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# `dtype: auto` on CUDA, from the bf16-vs-fp32 table in benchmarks/README.md (SmolLM2, 91 pairs,
# measured with this project's CPU bf16 kernels): bf16's LossDiff-IRM and TIF selections overlapped
# fp32's by 1.000 and 0.983 at keep 0.64, over the 0.98 this default requires, so bf16. (fp32 on the
# CPU either way.)
CUDA_DEFAULT = "bf16"


def device_problem(spec) -> str | None:
    """Why ``spec`` is not a device spec (None: it is); checks the form only."""
    if (isinstance(spec, str)
        and (spec in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", spec))):
        return None
    return f"must be {DEVICES}; got {spec!r}"


def resolve_device(spec: str = "auto", key: str = "device") -> torch.device:
    """The torch device of a spec: `auto` is the first CUDA device when there is one (under a
    launcher, the one of the process's local rank), else the CPU."""
    problem = device_problem(spec)
    if problem:
        raise ConfigError(key=key, problem=problem)
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    launched = int(os.environ.get("WORLD_SIZE", "1") or 1) > 1
    if launched and re.fullmatch(r"cuda:\d+", spec):
        raise ConfigError(key=key, problem=f"is {spec!r}, but under a launcher every process takes "
                                           "the GPU of its local rank: use cuda or auto")
    if spec == "cuda" and torch.cuda.is_available():
        # Under a launcher each process takes the GPU of its local rank (torchrun's LOCAL_RANK).
        spec = (f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
                if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 else "cuda")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(key=key,
                              problem=f"is {spec!r}, but this machine has no CUDA device (torch "
                                      f"{torch.__version__}); use cpu or auto")
        index = int(spec.split(":")[1]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(key=key, problem=f"is {spec!r}, but there are "
                                               f"{torch.cuda.device_count()} CUDA device(s): "
                                               f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return torch.device(spec)


def resolve_dtype(spec: str, device: torch.device, key: str = "dtype") -> str:
    """"fp32", "bf16" or "fp16" for a spec on ``device`` (`auto`: fp32 on CPU, `CUDA_DEFAULT` on
    CUDA)."""
    if spec not in DTYPES:
        raise ConfigError(key=key, problem=f"must be one of {', '.join(DTYPES)}; got {spec!r}")
    if spec == "auto":
        return CUDA_DEFAULT if device.type == "cuda" else "fp32"
    if spec == "fp16" and device.type != "cuda":
        raise ConfigError(key=key, problem="is fp16, which needs a CUDA device (CPU kernels and "
                                           "autocast have no fp16 training); use bf16 or fp32 on "
                                           "the CPU")
    return spec


def placement(device: str = "auto", dtype: str = "auto") -> dict:
    """`load_model`'s ``device`` and ``dtype`` for two specs, resolved on this machine (a
    `ConfigError` for a device it lacks): ``load_model(spec, **placement(cfg.device,
    cfg.dtype))``."""
    where = resolve_device(device)
    return {"device": where, "dtype": resolve_dtype(dtype, where)}


def torch_dtype(name: str) -> torch.dtype:
    return _TORCH[name]


def accumulation_dtype(t: torch.Tensor | torch.dtype) -> torch.dtype:
    """float64 for float64 tensors (finite-difference tests), else float32: what sums accumulate
    in."""
    dtype = t if isinstance(t, torch.dtype) else t.dtype
    return torch.float64 if dtype == torch.float64 else torch.float32


def model_device(model) -> torch.device:
    return next(model.parameters()).device


def model_precision(model) -> str:
    """"fp32", "bf16" or "fp16": the dtype of a model's floating-point weights ("fp32" for fp64
    too)."""
    dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")


# CPU flags whose kernels round differently (a lab built on another of these is another lab).
_SIMD_FLAGS = ("avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "avx2", "fma", "asimd", "sve")


def machine() -> dict:
    """Where a result was computed: the CPU's model, its SIMD flags, the kernels torch dispatches
    to (they decide float rounding, so the lab's SFT model, its samples and every pair depend on
    them), the cores and threads, and the GPU if one is used."""
    model, flags = platform.processor() or platform.machine(), []
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if (key.strip() == "model name"
                    and model in ("", platform.machine(), platform.processor())):
                    model = value.strip()
                elif key.strip() in ("flags", "Features") and not flags:
                    flags = [x for x in _SIMD_FLAGS if x in value.split()]
    except OSError:  # not Linux
        pass
    try:
        kernels = torch.backends.cpu.get_cpu_capability()
    except AttributeError:  # an older torch
        kernels = "unknown"
    out = {"cpu": model, "simd": " ".join(flags), "torch_kernels": kernels, "cores": os.cpu_count(),
           "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    return out


def machine_line(m: dict | None = None) -> str:
    """``machine()`` in one line, as the tables print it."""
    m = machine() if m is None else m
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ""
    return (f"{m.get('cpu', '?')} ({m.get('simd') or 'no SIMD flags read'}; torch kernels "
            f"{m.get('torch_kernels', '?')}), {m.get('cores', '?')} cores, {m.get('threads', '?')} "
            f"thread{'' if m.get('threads') == 1 else 's'}{gpu}")

"""Models: what a model spec loads as (`prefsift model`), and θ from an SFT model by the paper's
warm-up (`prefsift warmup`)."""

from __future__ import annotations

import time
from pathlib import Path

from ..data import ColumnMap
from .launch import column_flags, config_flags, launch
from .settings import checked_settings


def describe_model(spec: str, device: str = "auto", dtype: str = "auto") -> str:
    """`prefsift model`: load `spec` (a folder, or `smollm2`, converted once) and say what it is."""
    from ..models.loading import load_model, load_tokenizer, resolve_model_path
    from ..runtime.devices import placement

    t0 = time.time()
    place = placement(device, dtype)
    path = resolve_model_path(spec)
    model = load_model(spec, **place)
    tok = load_tokenizer(spec)
    n = sum(p.numel() for p in model.parameters())
    return "\n".join([
        f"{spec}: {type(model).__name__}, {n / 1e6:.1f} M parameters, "
        f"{next(model.parameters()).dtype} on {place['device']}",
        f"  folder: {path}",
        f"  tokenizer: vocab {len(tok)}, bos={tok.bos_token!r} eos={tok.eos_token!r} "
        f"pad={tok.pad_token!r}, chat template: {'yes' if tok.chat_template else 'no'}",
        f"  loaded in {time.time() - t0:.1f} s"])


def warmup(reference: str | Path, pairs: str | Path, *, out: str | Path = "runs/warmup",
           validation: str | Path | None = None, columns: ColumnMap | None = None, log=print,
           processes: int = 1, threads: int | None = None, **settings) -> Path:
    """θ, the model the scores are taken at: the paper's warm-up, `epochs` (default 1) of DPO on all
    the pairs from the SFT model `reference`, through TRL's DPOTrainer. Returns θ's folder,
    OUT/warmup/model (a plain Hugging Face folder; a rerun with the same inputs reuses it).

    Args:
        reference: π_ref, the SFT model: a local Hugging Face folder, or `smollm2`.
        pairs: the training pair file (every TRL format prefsift reads).
        out: the run directory; θ is saved in OUT/warmup/model.
        validation: validation pairs: their loss every `eval_steps` steps (optional).
        columns: which columns hold prompt/chosen/rejected/id (`prefsift.data.ColumnMap`).
        log: where progress lines go.
        processes: local worker processes to train in (torchrun): DDP, or with shard="fsdp" each
            model split over them.
        threads: torch threads per worker (default: an equal share of the cores).
        **settings: any `prefsift.train.warmup.WarmupConfig` field: objective, beta (0.1), epochs
        (1),
            learning_rate (1e-6, TRL's default), batch_size (8), max_length, lora_r (0: full
            fine-tuning), seed, device, dtype, ...; `prefsift warmup --help` explains each.
    """
    from ..runtime.distributed import check_processes, world
    from ..train.warmup import WarmupConfig, warmup_from_files

    settings = checked_settings(WarmupConfig, settings, "warmup",
                                taken=("reference", "train", "out", "validation"))
    cfg = WarmupConfig(reference=str(reference), train=str(pairs), out=str(out),
                       validation=str(validation) if validation is not None else None, **settings)
    here = world()
    if check_processes(processes, here) > 1 and not here.sharded:
        from ..train.dpo import per_process_batch
        from ..train.warmup import check_warmup_inputs

        check_warmup_inputs(cfg, columns)  # here, once, before N processes start and load models
        per_process_batch(cfg.batch_size, processes)
        launch(processes, ["warmup", *config_flags(cfg), *column_flags(columns)], threads)
        return cfg.model_folder
    return warmup_from_files(cfg, columns=columns, log=log)

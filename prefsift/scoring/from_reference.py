"""Models trained from π_ref (never from θ) on a part of the data, whose margins score the
training pairs: Selective DPO's fold models (score `heldout`) and the teacher θ_c on the careful
validation pairs (score `teacher`). Each is a stage of its own, keyed and reused, trained with the
warm-up's settings (a run's warm-up and LoRA; `prefsift score`'s warmup_* settings). Each function
takes a `PolicyBackend` (`backends.py`): its π_ref, tokenizer, objective, pairs and cache."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from ..models.loading import ModelSourceError, resolve_model_path
from ..train.dpo import StageSettings
from ..train.stage import TrainingStage
from .careful import teacher_rows
from .logprobs import data_fingerprint


def _start_and_settings(b):
    """(where the stage starts: π_ref's folder or π_ref in memory, (StageSettings, LoRA or
    None))."""
    cfg = b.cfg
    settings = b.warmup or (StageSettings(epochs=cfg.warmup_epochs, learning_rate=cfg.warmup_lr,
                                          batch_size=cfg.warmup_batch_size,
                                          max_length=cfg.max_length, seed=cfg.seed), None)
    return folder_of(cfg.reference) or b.ref, settings


def heldout_losses(b) -> tuple[np.ndarray, np.ndarray]:
    """Selective DPO (Gao et al., ICML 2025): the scored pairs split at random (seeded) into
    `folds` folds; for each fold a reference model trained from π_ref, as the warm-up is (a
    run's warm-up settings and LoRA; `prefsift score`'s warmup_* settings), on the other folds;
    each pair's loss under the model that did not see it. Each fold model is a stage of its own
    (`out`/selective/foldK, keyed, reused), and its log-probs are taken on its held-out pairs only.
    Returns (loss, fold)."""
    cfg, n, k_folds = b.cfg, len(b.tr_tok), b.cfg.folds
    fold = np.random.default_rng(cfg.seed).permutation(n) % k_folds
    records = b.train.records()
    start, (settings, lora) = _start_and_settings(b)
    loss = np.full(n, np.nan)
    for k in range(k_folds):
        seen, held = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        model, info = TrainingStage(
            start, b.ref, b.tok, [records[i] for i in seen], b.objective, settings,
            b.out / "selective" / f"fold{k}", start_key=b.ref_key,
            data_key=data_fingerprint([b.tr_tok[i] for i in seen]), name=f"fold{k}", log=b.log,
            label=f"Selective DPO reference {k + 1}/{k_folds}", progress=b.progress, lora=lora,
            start_is_reference=lora is not None).run()
        lp = b._logps(b._sharded(model), [b.tr_tok[i] for i in held], info["key"],
                      f"fold {k + 1} log-probs")
        loss[held] = b.objective.loss(b._margin_of(lp, held)).numpy()
        del model
    return loss, fold.astype(float)


def teacher_margin(b) -> tuple[np.ndarray, int]:
    """θ_c's implicit margin on each scored pair, and how many validation pairs trained it: θ_c is
    DPO from π_ref (never from θ) on the teacher's share of the validation pairs alone
    (`careful.teacher_prompts`), trained as the warm-up is but for `teacher_epochs` epochs; a
    stage of its own (`out`/teacher, keyed, reused)."""
    cfg = b.cfg
    rows = teacher_rows(b.val, cfg.teacher_share)
    records = b.val.records()
    start, (settings, lora) = _start_and_settings(b)
    settings = dataclasses.replace(settings, epochs=cfg.teacher_epochs)
    t = time.perf_counter()
    model, info = TrainingStage(
        start, b.ref, b.tok, [records[i] for i in rows], b.objective, settings, b.out / "teacher",
        start_key=b.ref_key, data_key=data_fingerprint([b.va_tok[i] for i in rows]), name="teacher",
        log=b.log, label=f"teacher θ_c ({len(rows)} validation pairs)", progress=b.progress,
        lora=lora, start_is_reference=lora is not None).run()
    lp = b._logps(b._sharded(model), b.tr_tok, info["key"], "teacher log-probs")
    b.timings["teacher"] = time.perf_counter() - t
    del model
    return b._margin_of(lp).numpy(), len(rows)


def folder_of(spec: str) -> Path | None:
    """The model folder a policy spec names, None for a model only in memory."""
    try:
        return Path(resolve_model_path(spec))
    except ModelSourceError:
        return None

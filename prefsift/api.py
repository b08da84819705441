"""The public Python API: what the CLI does, for a notebook that holds models and pairs in memory.

    import prefsift
    pairs = prefsift.load_pairs("train.jsonl")            # or a list of {"prompt", "chosen", "rejected"}
    table = prefsift.score(policy, reference, pairs, validation="val.jsonl", tokenizer=tok)
    mask = prefsift.select(table, "lossdiff_irm", keep=0.64)
    prefsift.write_subset(pairs, mask, "selected.jsonl")   # in the input's own format
    results = prefsift.run("configs/lab_small.yaml", seeds=[0])

Models are objects (a transformers causal LM, with `tokenizer=`) or specs (a local folder, or
`smollm2`); pairs are a `PairSet`, a path, or rows. Every function checks its inputs first and
raises a `prefsift.errors.UserError` that says what to fix."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .data import ColumnMap, PairSet
from .errors import ConfigError, UserError


def load_pairs(path_or_rows: str | Path | Iterable[dict], *, columns: ColumnMap | None = None, strict: bool = False,
               file_format: str | None = None, split: str | None = None) -> PairSet:
    """Read preference pairs: a file (JSONL, JSON, Parquet, CSV, a `save_to_disk` folder) or rows.

    Every row is kept, in order, with a stable id and, when it cannot be used, a reason (`strict`
    raises at the first bad row instead). Rows (dicts with prompt/chosen/rejected, standard or
    conversational) behave as a JSONL file would, and `write_subset` writes them as JSONL."""
    from .data import load_pairs as load_file
    from .data.pairs import parse_pairs
    from .data.readers import RawFile, RawRow, _columns_of

    if isinstance(path_or_rows, (str, Path)):
        return load_file(path_or_rows, columns=columns, strict=strict, file_format=file_format, split=split)
    if isinstance(path_or_rows, PairSet):
        return path_or_rows
    rows = list(path_or_rows)
    if not rows:
        raise UserError("load_pairs: no rows given; pass a file path or a non-empty list of pair dicts")
    raw_rows = [RawRow(i, f"row {i}", r if isinstance(r, dict) else None, None,
                       None if isinstance(r, dict) else f"row {i} is a {type(r).__name__}, expected a dict")
                for i, r in enumerate(rows)]
    raw = RawFile(Path("<rows>"), "jsonl", raw_rows, _columns_of([r.record for r in raw_rows]))
    columns = columns or ColumnMap()
    parsed, kind, implicit = parse_pairs(raw, columns, strict=strict)
    return PairSet(raw, columns, parsed, kind, implicit)


def _model_and_tokenizer(model: Any, tokenizer, role: str):
    """(tokenizer or None, model object or None, spec or None) for a model argument."""
    if isinstance(model, (str, Path)):
        return tokenizer, None, str(model)
    if isinstance(model, tuple) and len(model) == 2:
        model, tokenizer = model
    import torch

    if not isinstance(model, torch.nn.Module):
        raise ConfigError(key=role, problem=f"must be a model object, a (model, tokenizer) pair, a folder or "
                                            f"`smollm2`; got a {type(model).__name__}")
    return tokenizer, model, None


def score(policy, reference, pairs, validation=None, *, scores: Iterable[str] = ("irm", "lossdiff", "if"),
          objective: str = "dpo", beta: float = 0.1, tokenizer=None, out: str | Path | None = None,
          columns: ColumnMap | None = None, progress: bool = True, log=print, **settings):
    """Score every pair: one row per input pair (as `prefsift score`'s scores.parquet), NaN and a
    reason where a pair could not be scored.

    Args:
        policy: θ, the model being aligned: a causal LM object, a `(model, tokenizer)` pair, a local
            Hugging Face folder, or `smollm2`.
        reference: π_ref, the reference (SFT) model, in the same forms.
        pairs: the training pairs to score: a `PairSet`, a path, or a list of pair dicts.
        validation: validation pairs (same forms), needed by `lossdiff` and `if`.
        scores: any of "irm", "lossdiff", "if".
        objective: the pairwise objective: "dpo", "ipo" or "hinge".
        beta: β of the objective.
        tokenizer: the tokenizer, when `policy` is a model object (both models must share it).
        out: the run directory for caches and scores.parquet (a rerun reuses them); default: a new
            temporary directory.
        columns: which columns hold prompt/chosen/rejected/id (`prefsift.data.ColumnMap`).
        progress: progress bars. log: where progress lines go (print by default).
        **settings: any other `prefsift.scoring.table.ScoreConfig` field (val_lr, if_method, if_params,
            max_length, keep, seed, device, dtype, ...); `prefsift score --help` explains each. A model
            given by name is loaded on `device` in `dtype`; a model object is used where it is.
    """
    from . import artifacts
    from .scoring.table import ScoreConfig, check_score_inputs, score_pairs

    tok_p, pol_obj, pol_spec = _model_and_tokenizer(policy, tokenizer, "policy")
    tok_r, ref_obj, ref_spec = _model_and_tokenizer(reference, tokenizer, "reference")
    in_memory = pol_obj is not None or ref_obj is not None
    out = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="prefsift-score-"))
    scores = scores if isinstance(scores, str) else ",".join(scores)
    models = None
    if in_memory:
        from .models import load_model, load_tokenizer

        tok = tok_p or tok_r or (load_tokenizer(pol_spec) if pol_spec else None)
        if tok is None:
            raise ConfigError(key="tokenizer", problem="is needed with a model object: pass tokenizer=..., or "
                                                       "policy=(model, tokenizer)")
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        from .devices import placement

        place = placement(settings.get("device", "auto"), settings.get("dtype", "auto"))
        models = (tok, ref_obj if ref_obj is not None else load_model(ref_spec, **place),
                  pol_obj if pol_obj is not None else load_model(pol_spec, **place))
    files = isinstance(pairs, (str, Path)) and (validation is None or isinstance(validation, (str, Path)))
    if files and not in_memory:  # everything by name: the CLI's own checks, before any folder is made
        cfg = ScoreConfig(policy=pol_spec, reference=ref_spec, train=str(pairs),
                          validation=str(validation) if validation is not None else None, out=str(out),
                          scores=scores, objective=objective, beta=beta, **settings)
        train, val = check_score_inputs(cfg, columns)
    else:
        train = load_pairs(pairs, columns=columns)
        val = load_pairs(validation, columns=columns) if validation is not None else None
        for name, ps in (("pairs", train), ("validation", val)):
            if ps is not None and not ps.valid_rows:
                raise UserError(f"{name}: no usable pair in {ps.raw.path}; `prefsift data check` lists why")
        cfg = ScoreConfig(policy=pol_spec or "<in memory>", reference=ref_spec or "<in memory>",
                          train=str(train.raw.path), validation=str(val.raw.path) if val is not None else None,
                          out=str(out), scores=scores, objective=objective, beta=beta, **settings)
    import contextlib

    from .distributed import barrier, world

    here = world()  # under a launcher, rank 0 holds the folder's lock for every rank
    with artifacts.RunLock(out, log) if here.is_main else contextlib.nullcontext():
        barrier(here)
        return score_pairs(cfg, train, val, progress, log, models=models)


def select(table, rule: str = "lossdiff_irm", keep: float = 0.64, *, seed: int = 0) -> np.ndarray:
    """A boolean mask over the rows of a scores table (one entry per input pair; a pair that was not
    scored is never selected) by a registered rule: lossdiff_irm (the paper's), tif, lossdiff, irm,
    top_if, abs_irm_small, score_gap, random, if_small/if_medium/if_large, lossdiff_irm_complement,
    clean, full, or one of your own (`register_rule`); `prefsift select --help` describes each.
    `keep` is the kept fraction of the scored pairs; `seed` seeds the random rule."""
    from .selection import apply_rule

    return np.asarray(apply_rule(table, rule, keep, seed=seed), dtype=bool)


def write_subset(pairs: PairSet, mask, path: str | Path) -> int:
    """Write the usable pairs where `mask` (one entry per row of `pairs`) is true to `path`, in the
    input's own format and column names. Returns the number of rows written."""
    from .data import write_pairs

    mask = np.asarray(mask, dtype=bool)
    if len(mask) != len(pairs):
        raise UserError(f"write_subset: the mask has {len(mask)} entries but the pairs have {len(pairs)} rows; "
                        "select on the scores table of these pairs")
    return write_pairs(pairs, path, ids=[r.id for r, m in zip(pairs.rows, mask) if m])


def run(config, progress: bool = True, log=print, **overrides):
    """The whole protocol (warm-up → scores → selections → arms → judging → report) from a
    `RunConfig`, a dict of its settings, or a YAML path; `overrides` set any field (`seeds=[0]`,
    `out="runs/x"`). Returns the evaluation table (one row per arm and seed)."""
    from .pipeline import RunConfig, run_pipeline

    if isinstance(config, (str, Path)):
        import json

        # JSON is YAML: each override is read back exactly as given.
        cfg = RunConfig.from_yaml(config, overrides=[f"{k}={json.dumps(v)}" for k, v in overrides.items()])
    else:
        base = config.to_dict() if isinstance(config, RunConfig) else dict(config or {})
        cfg = RunConfig.from_dict({**base, **overrides})
    return run_pipeline(cfg, progress=progress, log=log)


def register_rule(name: str, needs=(), help: str = "", replace: bool = False):
    """Register a selection rule of your own, as a decorator over ``fn(table, keep, seed) -> mask``
    (one boolean per row of the scores table). ``needs``: the table columns it reads (checked before
    it runs). Then `select(table, name)`, and in a run config `arms: [name]` with your module under
    `plugins: [your_module]`.

        @prefsift.register_rule("low_margin", needs=("irm",), help="the smallest IRM")
        def low_margin(table, keep, seed):
            return prefsift.selection.top_fraction(table["irm"].to_numpy(), keep, largest=False)
    """
    from .selection import register_rule as register

    return register(name, needs=needs, help=help, replace=replace)


def register_judge(name: str, make, *, takes: str | None = None, check=None, help: str = "", replace: bool = False):
    """Register a judge of your own: ``make(arg)`` returns a `prefsift.eval.judges.Judge` (a `score`
    method, higher is better; `prefer` for a pairwise judge). ``takes``: the name of the argument
    after ``name:`` in the spec (e.g. "FOLDER"), None for none; ``check(arg, prompts, where)`` may
    raise a `ConfigError` before any work. Then `judge: name` in a run config, with your module under
    `plugins`."""
    from .eval.judges import register_judge as register

    return register(name, make, takes=takes, check=check, help=help, replace=replace)

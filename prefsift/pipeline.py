"""`prefsift run CONFIG.yaml`: the whole protocol as resumable stages over a run directory.

    lab (or your files) → warm-up (θ = π_ref + 1 epoch DPO on all pairs) → scores (θ_val, IRM,
    LossDiff, IF, TIF) → selections → arms (continue from θ for `final.epochs` on each selection,
    per seed) → evaluation (answers on held-out prompts, judged against π_ref) → report

Every stage has a key: a hash of its own settings and of the keys of the stages it reads. The
manifest records each finished stage's key and time; a rerun skips a stage whose key is unchanged,
so changing a setting redoes exactly the stages it affects, and a killed run continues."""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_ARMS = ("full", "random", "score_gap", "irm", "lossdiff", "lossdiff_irm", "tif", "top_if", "clean")
# Extra arms for experiments: the IF thirds (each a third of the pairs, whatever `keep` is) and the
# pairs LossDiff-IRM drops.
ARMS = DEFAULT_ARMS + ("if_small", "if_medium", "if_large", "lossdiff_irm_complement")
# `clean` is an oracle arm, for the lab (or any file with `pair_type` and `label_correct` columns):
# the clean pairs whose label is right, at their own count — what the data would give without noise.


@dataclass
class RunConfig:
    out: str = field(default="runs/demo", metadata={"help": "run directory"})
    lab: dict | None = field(default_factory=dict, metadata={"help": "LabConfig overrides; null to use your files"})
    sentiment: dict | None = field(default=None, metadata={"help": "SentimentConfig settings: build the sentiment pair file from the reference model's own samples (set lab: null)"})
    train: str | None = field(default=None, metadata={"help": "training pairs (default: the lab's)"})
    validation: str | None = field(default=None, metadata={"help": "validation pairs (default: the lab's)"})
    test_prompts: str | None = field(default=None, metadata={"help": "held-out prompts, JSONL with `prompt` (default: the lab's)"})
    reference: str | None = field(default=None, metadata={"help": "π_ref, the SFT model (default: the lab's)"})
    objective: str = field(default="dpo", metadata={"help": "dpo, ipo or hinge"})
    # β and the learning rates were chosen on the lab's *validation* prompts (never the test prompts):
    # at β 0.1 or lr ≥ 3e-4 further DPO epochs lowered the oracle WinRate on this tiny model.
    beta: float = field(default=0.5, metadata={"help": "β of the objective"})
    warmup: dict = field(default_factory=lambda: {"epochs": 1, "learning_rate": 1e-4, "batch_size": 16},
                         metadata={"help": "StageSettings of the warm-up"})
    final: dict = field(default_factory=lambda: {"epochs": 2, "learning_rate": 1e-4, "batch_size": 16},
                        metadata={"help": "StageSettings of each arm (continues from θ)"})
    lora: dict | None = field(default=None, metadata={"help": "LoRA for every training stage, e.g. {r: 8, alpha: 16} (LoraSpec fields); null: full fine-tuning"})
    scores: dict = field(default_factory=dict, metadata={"help": "ScoreConfig overrides (val_lr, projection_dim, ...)"})
    keep: float = field(default=0.64, metadata={"help": "kept fraction of every selection arm"})
    arms: list = field(default_factory=lambda: list(DEFAULT_ARMS), metadata={"help": f"arms to train, among {ARMS} and the names in `imported`"})
    imported: dict = field(default_factory=dict, metadata={"help": "arms whose selection comes from another run: {NAME: RUN/selection.parquet:COLUMN}, matched by pair id (e.g. train model B on model A's TIF set)"})
    seeds: list = field(default_factory=lambda: [0, 1, 2], metadata={"help": "seeds of every arm"})
    judge: str = field(default="oracle", metadata={"help": "oracle, lexicon, reward:FOLDER, llm:MODEL"})
    eval_prompts: int = field(default=200, metadata={"help": "held-out prompts judged per arm"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature of the answers"})
    max_new_tokens: int = field(default=12, metadata={"help": "answer length limit"})
    eval_steps: int = field(default=20, metadata={"help": "validation loss/margin every N training steps"})

    def __post_init__(self):
        import importlib

        if self.sentiment is not None and self.lab is not None:
            raise ValueError("`sentiment` builds the data from a real model's samples; also set `lab: null`")
        if self.judge == "oracle" and self.sentiment is not None:
            raise ValueError("judge `oracle` knows only the lab's task; with `sentiment` use `lexicon`")
        self.imported = dict(self.imported or {})
        for name, spec in self.imported.items():
            if name in ARMS or name in ("id", "valid", "reason"):
                raise ValueError(f"imported arm {name!r} clashes with a built-in arm or a selection.parquet column; "
                                 f"give it another name (e.g. 'b_{name}')")
            if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"imported arm {name!r}: use letters, digits, '_' and '-' only (it names a folder)")
            path, _, column = spec.rpartition(":") if isinstance(spec, str) else ("", "", "")
            if not path or not column:
                raise ValueError(f"imported arm {name!r}: expected 'RUN/selection.parquet:COLUMN', got {spec!r}")
        bad = set(self.arms) - set(ARMS) - set(self.imported)
        if bad:
            raise ValueError(f"unknown arm(s) {sorted(bad)}; choose among {ARMS}, or define them under `imported`")
        for name, cls_path in (("lab", "prefsift.lab.make:LabConfig"), ("sentiment", "prefsift.lab.sentiment:SentimentConfig"),
                               ("lora", "prefsift.models:LoraSpec"), ("warmup", "prefsift.train:StageSettings"),
                               ("final", "prefsift.train:StageSettings"), ("scores", "prefsift.scores:ScoreConfig")):
            given = getattr(self, name)
            if not given:
                continue
            mod, cls_name = cls_path.split(":")
            known = {f.name for f in fields(getattr(importlib.import_module(mod), cls_name))}
            unknown = set(given) - known
            if unknown:
                raise ValueError(f"`{name}`: unknown setting(s) {sorted(unknown)}; known: {sorted(known)}")

    @classmethod
    def from_yaml(cls, path) -> "RunConfig":
        import yaml

        raw = yaml.safe_load(Path(path).read_text()) or {}
        names = {f.name for f in fields(cls)}
        unknown = set(raw) - names
        if unknown:
            raise ValueError(f"{path}: unknown setting(s) {sorted(unknown)}; known: {sorted(names)}")
        try:
            return cls(**raw)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Manifest:
    """manifest.json: versions, config, and each finished stage's key, seconds and outputs."""

    def __init__(self, out: Path, cfg: RunConfig):
        self.path = out / "manifest.json"
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {"stages": {}}
        self.data["config"] = asdict(cfg)
        self.data["versions"] = _versions()

    def done(self, stage: str, key: str) -> bool:
        return self.data["stages"].get(stage, {}).get("key") == key

    def record(self, stage: str, key: str, seconds: float, **extra) -> None:
        self.data["stages"][stage] = {"key": key, "seconds": round(seconds, 2), **extra}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        tmp.replace(self.path)


def _versions() -> dict:
    import torch
    import transformers
    import trl

    from . import __version__

    return {"prefsift": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "trl": trl.__version__, "python": platform.python_version(), "machine": platform.machine()}


def _answers(model, tok, prompts, cfg: RunConfig, seed: int, is_lab: bool):
    if is_lab:
        from .lab import sample_responses

        return [s[0] for s in sample_responses(model, tok, prompts, 1, temperature=cfg.temperature,
                                               max_new_tokens=cfg.max_new_tokens, seed=seed)]
    from .evaluate import generate_answers

    return generate_answers(model, tok, prompts, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
                            seed=seed)


def _imported_source(name: str, spec: str) -> tuple[Path, str]:
    """'RUN/selection.parquet:COLUMN' → (file, column), the file checked to exist."""
    path, _, column = spec.rpartition(":")
    if not Path(path).exists():
        raise FileNotFoundError(f"imported arm {name!r}: {path} does not exist; run the other config first")
    return Path(path), column


def imported_selection(table: pd.DataFrame, name: str, spec: str) -> np.ndarray:
    """The mask of another run's selection column over this run's pairs, matched by pair id.

    Every pair id of this run must be in the other run. Only the ids are compared: the lab's ids are
    positions (`lab-train-000123`), so the other run must have read the same pair file. A pair that
    is invalid here is never kept, whatever the other run chose."""
    path, column = _imported_source(name, spec)
    other = pd.read_parquet(path)
    if "id" not in other.columns:
        raise ValueError(f"imported arm {name!r}: {path} has no `id` column; use a run's selection.parquet")
    if column not in other.columns:
        choices = [c for c in other.columns if c not in ("id", "valid", "reason")]
        raise ValueError(f"imported arm {name!r}: {path} has no column {column!r}; it has {choices}")
    if not pd.api.types.is_bool_dtype(other[column]):
        raise ValueError(f"imported arm {name!r}: column {column!r} of {path} is {other[column].dtype}, not a "
                         "selection (true/false per pair); use a selection.parquet column")
    ids = table["id"].astype(str)
    other_ids = set(other["id"].astype(str))
    missing = (~ids.isin(other_ids)).sum()
    if missing:
        raise ValueError(f"imported arm {name!r}: {missing} of this run's {len(ids)} pair ids are not in {path}; "
                         "an imported selection must come from a run over the same pairs")
    kept = set(other.loc[other[column].to_numpy(dtype=bool), "id"].astype(str))
    return ids.isin(kept).to_numpy() & table["valid"].to_numpy(dtype=bool)


def run_pipeline(cfg: RunConfig, progress: bool = True, log=print) -> pd.DataFrame:
    from .data import load_pairs
    from .demo import quiet_libraries
    from .evaluate import evaluate_answers, win_rate
    from .judges import make_judge
    from .lab import LabConfig, make_lab
    from .logprobs import model_fingerprint
    from .models import load_model, load_tokenizer
    from .objectives import PairwiseObjective
    from .scores import ScoreConfig, compute_scores
    from .select import apply_rule
    from .train import StageSettings, train_stage

    quiet_libraries()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(__import__("yaml").safe_dump(asdict(cfg), sort_keys=False))
    man = Manifest(out, cfg)
    t_start = time.time()
    stage_times: list[float] = []

    def eta(done_frac):
        spent = time.time() - t_start
        return f"{spent:.0f} s so far" + (f", about {spent / done_frac - spent:.0f} s left" if done_frac > 0.05 else "")

    # 1. data
    is_lab = cfg.lab is not None
    t = time.time()
    if is_lab:
        lab_cfg = LabConfig(**{**cfg.lab, "progress": progress})
        # Only what changes the data: not progress bars, threads, or where the SFT model came from.
        k_data = _key("lab", {k: v for k, v in asdict(lab_cfg).items()
                              if k not in ("progress", "threads", "resume", "share_sft")})
        log(f"[data] lab -> {out / 'lab'}")
        make_lab(lab_cfg, out / "lab")  # resumes on its own (SFT stamp, deterministic files)
        train_p, val_p = out / "lab" / "train.jsonl", out / "lab" / "validation.jsonl"
        test_p, ref_spec = out / "lab" / "test_prompts.jsonl", str(out / "lab" / "sft_model")
    elif cfg.sentiment is not None:
        from .lab.sentiment import SentimentConfig, make_sentiment_lab

        s_cfg = SentimentConfig(**cfg.sentiment)
        k_data = _key("sentiment", asdict(s_cfg))
        s_dir = out / "sentiment-lab"
        train_p, val_p, test_p = s_dir / "train.jsonl", s_dir / "validation.jsonl", s_dir / "test_prompts.jsonl"
        ref_spec = cfg.reference or s_cfg.model
        if man.done("data", k_data) and test_p.exists():
            log(f"[data] sentiment pairs already in {s_dir}")
        else:
            log(f"[data] sentiment pairs from {s_cfg.model}'s own samples, rated by VADER -> {s_dir}")
            make_sentiment_lab(s_cfg, s_dir, progress=progress)
    else:
        if not (cfg.train and cfg.validation and cfg.test_prompts and cfg.reference):
            raise ValueError("without the lab, set train, validation, test_prompts and reference")
        train_p, val_p, test_p, ref_spec = Path(cfg.train), Path(cfg.validation), Path(cfg.test_prompts), cfg.reference
        k_data = _key("files", [str(p) for p in (train_p, val_p, test_p)], ref_spec,
                      [p.stat().st_mtime for p in (train_p, val_p, test_p)])
    man.record("data", k_data, time.time() - t)
    if cfg.judge == "oracle" and cfg.seeds and not is_lab:  # fail now, not after hours of training
        from .lab import parse_prompt

        for i, line in enumerate(Path(test_p).read_text().splitlines()[: cfg.eval_prompts]):
            if line.strip():
                try:
                    parse_prompt(json.loads(line)["prompt"])
                except (ValueError, KeyError, TypeError):
                    raise ValueError(f"{test_p}, line {i + 1}: judge `oracle` scores lab prompts only; use "
                                     "`lexicon`, `reward:FOLDER` or `llm:MODEL` for other prompts") from None

    for name, spec in cfg.imported.items():  # fail now, not after the warm-up and the scores
        if name in cfg.arms:
            _imported_source(name, spec)

    objective = PairwiseObjective(cfg.objective, cfg.beta)
    lora = None
    if cfg.lora is not None:
        from .models import LoraSpec

        spec = dict(cfg.lora)
        if spec.get("target_modules") is not None:
            spec["target_modules"] = tuple(spec["target_modules"])
        lora = LoraSpec(**spec)
    tok, ref = load_tokenizer(ref_spec), load_model(ref_spec)
    train = load_pairs(train_p)
    val = load_pairs(val_p)

    # 2. warm-up: θ
    t = time.time()
    k_warm = _key(k_data, asdict(objective), cfg.warmup, cfg.lora)
    log("[warm-up] DPO through TRL from π_ref on all training pairs")
    _, winfo = train_stage(ref, ref, tok, train.records(), objective, StageSettings(**cfg.warmup), out / "warmup",
                           start_key=model_fingerprint(ref), data_key=k_data, name="warmup",
                           eval_records=val.records(), eval_steps=cfg.eval_steps, lora=lora)
    man.record("warmup", k_warm, time.time() - t, steps=winfo["steps"])

    # 3. scores
    t = time.time()
    scfg = ScoreConfig(policy=str(out / "warmup" / "model"), reference=ref_spec, train=str(train_p),
                       validation=str(val_p), out=str(out / "score"), objective=cfg.objective, beta=cfg.beta,
                       keep=cfg.keep, **cfg.scores)
    k_score = _key(k_warm, winfo["key"], asdict(scfg))
    log(f"[scores] IRM, LossDiff, IF, TIF ({eta(0.15)})")
    if man.done("scores", k_score) and (out / "score" / "scores.parquet").exists():
        table = pd.read_parquet(out / "score" / "scores.parquet")
    else:
        table = compute_scores(scfg, progress=progress, log=log)
    man.record("scores", k_score, time.time() - t)

    # 4. selections
    masks = {"full": table["valid"].to_numpy(dtype=bool)}
    for arm in cfg.arms:
        if arm == "full":
            continue
        if arm == "score_gap" and "score_gap" not in table:
            log("  score_gap arm skipped: the data has no score_chosen/score_rejected ratings")
            continue
        if arm == "clean" and not {"pair_type", "label_correct"} <= set(table.columns):
            log("  clean arm skipped: the data has no pair_type/label_correct columns (the lab has them)")
            continue
        if arm in cfg.imported:
            masks[arm] = imported_selection(table, arm, cfg.imported[arm])
            continue
        masks[arm] = apply_rule(table, arm, cfg.keep, seed=0)
    sel = table[["id", "valid", "reason"]].copy()
    for a, m in masks.items():
        sel[a] = m
    sel.to_parquet(out / "selection.parquet", index=False)
    log(format_selections(table, masks))

    # 5. arms and 6. evaluation
    theta = load_model(out / "warmup" / "model")
    theta_key = model_fingerprint(theta)
    judge = make_judge(cfg.judge)
    test = [json.loads(line) for line in Path(test_p).read_text().splitlines() if line.strip()][: cfg.eval_prompts]
    prompts = [r["prompt"] for r in test]
    rows, curves, ref_answers = [], {}, {}
    # A lab model (word-level lab tokenizer) is answered the lab's way even from files, as the lab's
    # own runs are: the same sampler, so the same answers for the same model and seed.
    from .lab import lab_vocab

    lab_format = is_lab or tok.get_vocab() == lab_vocab()
    # `full` is always a selection (every scored pair) but is trained only when listed in `arms`.
    jobs = [(a, s) for s in cfg.seeds for a in masks if a in cfg.arms]
    for n, (arm, seed) in enumerate(jobs):
        t = time.time()
        ids_key = _key(table.loc[masks[arm], "id"].tolist())
        settings = StageSettings(**{**cfg.final, "seed": int(seed)})
        log(f"[arm {n + 1}/{len(jobs)}] {arm}, seed {seed}: {int(masks[arm].sum())} pairs ({eta(0.2 + 0.8 * n / len(jobs))})")
        model, info = train_stage(theta, ref, tok, train.records(masks[arm]), objective, settings,
                                  out / "arms" / f"{arm}-seed{seed}", start_key=theta_key, data_key=ids_key,
                                  name=f"arm-{arm}", eval_records=val.records(), eval_steps=cfg.eval_steps,
                                  lora=lora)
        curves[f"{arm}/seed{seed}"] = info["log"]
        k_eval = _key(info["key"], cfg.judge, cfg.eval_prompts, cfg.temperature, cfg.max_new_tokens, seed,
                      "lab-sampler" if lab_format else "generate")
        eval_path = out / "arms" / f"{arm}-seed{seed}" / "eval.json"
        if man.done(f"eval/{arm}/{seed}", k_eval) and eval_path.exists():
            ev = json.loads(eval_path.read_text())
        else:
            if seed not in ref_answers:  # π_ref's answers: sampled once per seed, shared by every arm
                ref_answers[seed] = _answers(ref, tok, prompts, cfg, seed + 10_000, lab_format)
            answers = _answers(model, tok, prompts, cfg, seed + 10_000, lab_format)
            e = evaluate_answers(judge, prompts, answers, ref_answers[seed], seed=seed)
            ev = {"arm": arm, "seed": seed, "n_pairs": int(masks[arm].sum()), **e.to_dict(), "answers": answers}
            eval_path.write_text(json.dumps(ev, indent=1))
        man.record(f"eval/{arm}/{seed}", k_eval, time.time() - t)
        rows.append(ev)

    # head-to-head against the full-data arm of the same seed (same sampling seed, same prompts)
    by = {(r["arm"], r["seed"]): r for r in rows}
    table_rows = []
    for r in rows:
        full = by.get(("full", r["seed"]))
        h2h = None
        if full is not None:
            h2h = win_rate(judge.prefers(prompts, r["answers"], full["answers"]), seed=r["seed"]).win_rate
        wr = r["win_rate"]
        table_rows.append({"arm": r["arm"], "seed": r["seed"], "n_pairs": r["n_pairs"], "win_rate": wr["win_rate"],
                           "low": wr["low"], "high": wr["high"], "score": r["score_aligned"],
                           "score_reference": r["score_reference"], "head_to_head": h2h})
    evaluation = pd.DataFrame(table_rows, columns=["arm", "seed", "n_pairs", "win_rate", "low", "high", "score",
                                                   "score_reference", "head_to_head"])
    evaluation.to_csv(out / "eval.csv", index=False)
    summary = summarize_arms(evaluation)
    (out / "eval.json").write_text(json.dumps({"arms": summary.to_dict("records"),
                                               "runs": evaluation.to_dict("records"), "judge": judge.name},
                                              indent=1, default=float))

    # 7. report
    try:
        from .report import write_report

        html = write_report(out, table, selections=masks, evaluation=evaluation if len(evaluation) else None,
                            curves=curves,
                            title=f"prefsift run {out.name}")
        log(f"report: {html}")
    except ImportError:
        log("report: prefsift.report is not available in this version")
    if len(evaluation):
        log(f"\nWinRate against π_ref ({judge.name}, {len(prompts)} held-out prompts, mean over seeds "
            f"{cfg.seeds}):\n{format_arms(summary)}")
    else:
        log("\nno arm trained (`arms` lists none of the selections)")
    log(f"total {time.time() - t_start:.0f} s")
    return evaluation


def format_selections(table: pd.DataFrame, masks: dict) -> str:
    """Each selection's size, its overlap coefficient with the TIF set, and (when the data carries
    true pair types, as the lab does) the share of each type it kept."""
    from .select import overlap_coefficient

    lines = [f"[selections] {int(table['valid'].sum())} scored pairs of {len(table)}"]
    tif = masks.get("tif")
    w = max([14] + [len(a) + 1 for a in masks])
    head = f"  {'arm':<{w}}{'pairs':>6}" + (f"{'overlap with TIF':>18}" if tif is not None else "")
    types = sorted(table["pair_type"].dropna().unique()) if "pair_type" in table else []
    head += "".join(f"{t[:12]:>14}" for t in types)
    lines.append(head + ("   (share of each true pair type kept)" if types else ""))
    for arm, m in masks.items():
        row = f"  {arm:<{w}}{int(m.sum()):>6}"
        if tif is not None:
            row += f"{overlap_coefficient(m, tif):>18.3f}"
        for t in types:
            of_type = (table["pair_type"] == t).to_numpy()
            row += f"{m[of_type].mean():>14.2f}"
        lines.append(row)
    return "\n".join(lines)


def summarize_arms(evaluation: pd.DataFrame) -> pd.DataFrame:
    g = evaluation.groupby("arm", sort=False)
    return pd.DataFrame({
        "n_pairs": g["n_pairs"].first(), "win_rate": g["win_rate"].mean(), "seed_sd": g["win_rate"].std(ddof=1),
        "low": g["low"].mean(), "high": g["high"].mean(), "score": g["score"].mean(),
        "vs_full": g["head_to_head"].mean(), "seeds": g["seed"].count(),
    }).reset_index()


def format_arms(summary: pd.DataFrame) -> str:
    w = max([14] + [len(a) + 1 for a in summary["arm"]])
    lines = [f"  {'arm':<{w}}{'pairs':>6}{'WinRate':>9}{'95% CI (mean)':>17}{'sd seeds':>10}{'score':>8}{'vs full':>9}"]
    for _, r in summary.iterrows():
        sd = "" if np.isnan(r["seed_sd"]) else f"{100 * r['seed_sd']:.1f}"
        vs = "" if r["vs_full"] is None or np.isnan(r["vs_full"]) else f"{100 * r['vs_full']:.1f}%"
        lines.append(f"  {r['arm']:<{w}}{int(r['n_pairs']):>6}{100 * r['win_rate']:>8.1f}%"
                     f"{f'[{100 * r.low:.1f}, {100 * r.high:.1f}]':>17}{sd:>10}{r['score']:>8.3f}{vs:>9}")
    return "\n".join(lines)

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
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from .. import artifacts, faults
from ..errors import ConfigError, did_you_mean
from ..objectives import trainable_with_dpo
from ..selection import RULES

# The arms of a run are the registered selection rules (`prefsift.selection.RULES`, which a plugin
# can extend); these are the default ones. `clean` is an oracle arm, for the lab (or any file with
# `pair_type` and `label_correct` columns): the clean pairs whose label is right, at their own count.
DEFAULT_ARMS = ("full", "random", "score_gap", "irm", "lossdiff", "lossdiff_irm", "tif", "top_if", "clean")


@dataclass
class RunConfig:
    out: str = field(default="runs/demo", metadata={"help": "run directory"})
    lab: dict | None = field(default_factory=dict, metadata={"help": "LabConfig overrides; null to use your files"})
    sentiment: dict | None = field(default=None, metadata={"help": "SentimentConfig settings: build the sentiment pair file from the reference model's own samples (set lab: null)"})
    train: str | None = field(default=None, metadata={"help": "training pairs (default: the lab's)"})
    validation: str | None = field(default=None, metadata={"help": "validation pairs (default: the lab's)"})
    test_prompts: str | None = field(default=None, metadata={"help": "held-out prompts, JSONL with `prompt` (default: the lab's)"})
    reference: str | None = field(default=None, metadata={"help": "π_ref, the SFT model (default: the lab's)"})
    objective: str = field(default="dpo", metadata={"help": "dpo, ipo or hinge", "check": trainable_with_dpo()})
    # β and the learning rates were chosen on the lab's *validation* prompts (never the test prompts):
    # at β 0.1 or lr ≥ 3e-4 further DPO epochs lowered the oracle WinRate on this tiny model.
    beta: float = field(default=0.5, metadata={"help": "β of the objective", "check": "> 0"})
    warmup: dict = field(default_factory=lambda: {"epochs": 1, "learning_rate": 1e-4, "batch_size": 16},
                         metadata={"help": "StageSettings of the warm-up"})
    final: dict = field(default_factory=lambda: {"epochs": 2, "learning_rate": 1e-4, "batch_size": 16},
                        metadata={"help": "StageSettings of each arm (continues from θ)"})
    lora: dict | None = field(default=None, metadata={"help": "LoRA for every training stage, e.g. {r: 8, alpha: 16} (LoraSpec fields); null: full fine-tuning"})
    scores: dict = field(default_factory=dict, metadata={"help": "ScoreConfig overrides (val_lr, projection_dim, ...)"})
    keep: float = field(default=0.64, metadata={"help": "kept fraction of every selection arm, in (0, 1]", "check": "(0, 1]"})
    arms: list = field(default_factory=lambda: list(DEFAULT_ARMS), metadata={"help": "arms to train: selection rules (`prefsift select --help` lists them; a plugin may add more) and the names in `imported`"})
    imported: dict = field(default_factory=dict, metadata={"help": "arms whose selection comes from another run: {NAME: RUN/selection.parquet:COLUMN}, matched by pair id (e.g. train model B on model A's TIF set)"})
    seeds: list = field(default_factory=lambda: [0, 1, 2], metadata={"help": "seeds of every arm"})
    judge: str = field(default="oracle", metadata={"help": "oracle, lexicon, reward:FOLDER, llm:MODEL",
                                                   "check": lambda spec: _judge_problem(spec)})
    eval_prompts: int = field(default=200, metadata={"help": "held-out prompts judged per arm", "check": ">= 1"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature of the answers", "check": "> 0"})
    max_new_tokens: int = field(default=12, metadata={"help": "answer length limit", "check": ">= 1"})
    eval_steps: int = field(default=20, metadata={"help": "validation loss/margin every N training steps (0: never)",
                                                  "check": ">= 0"})

    def __post_init__(self):
        from ..checks import check_fields, check_known_keys, check_value

        self.imported = dict(self.imported or {})
        check_fields(self)  # types, and the ranges in each field's "check"
        for i, seed in enumerate(self.seeds):
            check_value("seeds", seed, lambda v: None if isinstance(v, int) and not isinstance(v, bool)
                        else f"must be a list of whole numbers, got {v!r} at position {i + 1}")
        if self.sentiment is not None and self.lab is not None:
            raise ConfigError(key="sentiment", problem="builds the data from a real model's samples; also set `lab: null`")
        if self.judge == "oracle" and self.sentiment is not None:
            raise ConfigError(key="judge", problem="`oracle` knows only the lab's task; with `sentiment` use `lexicon`")
        files = ("train", "validation", "test_prompts", "reference")
        if self.lab is not None:
            for k in files:
                if getattr(self, k) is not None:
                    raise ConfigError(key=k, problem="is set, but the lab (on by default) builds its own pairs and "
                                                     "model and would ignore it: add `lab: null` to use your files")
        elif self.sentiment is not None:
            for k in files[:3]:
                if getattr(self, k) is not None:
                    raise ConfigError(key=k, problem="is set, but `sentiment` builds the pairs and would ignore it: "
                                                     "remove it, or set `sentiment: null` to use your files")
        else:
            missing = [k for k in files if not getattr(self, k)]
            if missing:
                raise ConfigError(key=missing[0], problem="is needed without the lab (`lab: null`): set train, "
                                                          "validation, test_prompts and reference "
                                                          f"(missing: {', '.join(missing)})")
        for name, spec in self.imported.items():
            key = f"imported.{name}"
            if name in RULES or name in ("id", "valid", "reason"):
                raise ConfigError(key=key, problem=f"clashes with a built-in arm or a selection.parquet column; "
                                                   f"give it another name (e.g. 'b_{name}')")
            if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
                raise ConfigError(key=key, problem="is not a usable name: use letters, digits, '_' and '-' only "
                                                   "(it names a folder)")
            path, _, column = spec.rpartition(":") if isinstance(spec, str) else ("", "", "")
            if not path or not column:
                raise ConfigError(key=key, problem=f": expected 'RUN/selection.parquet:COLUMN', got {spec!r}")
        bad = [a for a in self.arms if a not in RULES and a not in self.imported]
        if bad:
            raise ConfigError(key="arms", problem=f"has unknown arm(s) {bad}{did_you_mean(bad[0], RULES.names())}; "
                                                  f"choose among {', '.join(RULES)}, or define them under `imported`")
        # Each section is checked by building its own config now, before any work.
        from ..lab import LabConfig
        from ..lab.sentiment import SentimentConfig
        from ..models import LoraSpec
        from ..scoring.table import ScoreConfig
        from ..train.dpo import StageSettings

        by_run = "is set by the run (it scores its own warm-up model, pairs and run directory)"
        sections = {
            "lab": (LabConfig, {}, {}),
            "sentiment": (SentimentConfig, {}, {}),
            "lora": (LoraSpec, {}, {}),
            "warmup": (StageSettings, {}, {}),
            "final": (StageSettings, {"seed": "is set per arm by the top-level `seeds`"}, {}),
            "scores": (ScoreConfig, {**{k: by_run for k in ("policy", "reference", "train", "validation", "out")},
                                     **{k: f"is the run's: set the top-level `{k}`" for k in ("objective", "beta", "keep")}},
                       dict(policy="-", reference="-", train="-", validation="-", objective=self.objective,
                            beta=self.beta, keep=self.keep)),
        }
        for name, (cls, refused, fixed) in sections.items():
            given = getattr(self, name)
            if not given:
                continue
            check_known_keys(given, cls, section=name, refused=refused)
            try:
                built = cls(**{**given, **fixed})
            except ConfigError as e:
                raise e.within(name) from None
            # Store the checked values (e.g. `1e-4`, a string in YAML, as a number), keeping lists as lists.
            plain = (int, float, str, bool, type(None))
            setattr(self, name, {k: getattr(built, k) if isinstance(getattr(built, k), plain) else v
                                 for k, v in given.items()})
        wanted = ScoreConfig(**sections["scores"][2], **(self.scores or {})).wanted
        for arm in self.arms:
            lacking = [c for c in (RULES.get(arm).needs if arm in RULES else ()) if c in ("irm", "lossdiff", "if") and c not in wanted]
            if lacking:
                raise ConfigError(key="arms", problem=f"lists {arm!r}, which needs the {', '.join(lacking)} score(s), "
                                                      f"but scores.scores is {','.join(wanted)!r}: add them there, "
                                                      "or drop the arm")
        if (self.scores or {}).get("if_params") == "lora":
            raise ConfigError(key="scores.if_params", problem="'lora' cannot work in a run: each stage is saved with "
                                                              "its adapters merged, so θ has none; use 'all' or regular "
                                                              "expressions over parameter names")

    @classmethod
    def from_dict(cls, raw: dict) -> "RunConfig":
        """A RunConfig from a mapping of settings, unknown keys refused with the known ones listed."""
        from ..checks import check_known_keys

        if not isinstance(raw, dict):
            raise ConfigError(f"expected a mapping of settings (`key: value` lines), got a {type(raw).__name__}")
        check_known_keys(raw, cls)
        return cls(**raw)

    @classmethod
    def from_yaml(cls, path, overrides=(), out: str | None = None) -> "RunConfig":
        """Read a YAML config, then apply ``overrides`` (``"key=value"`` or ``"section.key=value"``,
        values read as YAML) and ``out`` (the CLI's --out). A mistake is a `ConfigError` that names
        the file and line of the key (or the override)."""
        import yaml

        from ..errors import require_path

        p = require_path(path, "config file", hint="give the path of a YAML file of RunConfig settings")
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not a UTF-8 text file; give a YAML file of RunConfig settings") from None
        try:
            node = yaml.compose(text)
            raw = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
            where = f"{path}, line {mark.line + 1}" if mark is not None else str(path)
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise ConfigError(f"{where}: not valid YAML ({problem}); check the indentation and the `key: value` "
                              "syntax there") from None
        raw = {} if raw is None else raw
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected settings as `key: value` lines, got a YAML {type(raw).__name__}")
        where = {k: f"{path}, line {n}" for k, n in _key_lines(node).items()}
        for item in overrides or ():
            key = apply_override(raw, item)
            where[key] = f"override {item!r}"
        if out:
            raw["out"] = str(out)
            where["out"] = "--out"
        try:
            cfg = cls.from_dict(raw)
        except ConfigError as e:
            raise e.at(_where_of(e.key, where, str(path))) from None
        cfg._where = where  # so later checks (files, judge) can name the line too
        cfg._source = str(path)
        return cfg

    def locate(self, error: ConfigError) -> ConfigError:
        """``error`` placed at the file and line (or override) its key came from, when known."""
        where = getattr(self, "_where", None)
        if where is None or error.where:
            return error
        return error.at(_where_of(error.key, where, self._source))


def _judge_problem(spec):
    from .. import lab  # noqa: F401  (registers the lab's oracle judge)
    from ..eval.judges import judge_spec_problem

    return judge_spec_problem(spec)


def _key_lines(node, prefix: str = "") -> dict[str, int]:
    """{"warmup.learning_rate": 7, ...}: the 1-based line of every mapping key of a composed YAML node."""
    import yaml

    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = f"{prefix}{k.value}"
            lines[key] = k.start_mark.line + 1
            lines.update(_key_lines(v, key + "."))
    return lines


def _where_of(key: str | None, where: dict[str, str], default: str) -> str:
    """The place of ``key`` (or of the nearest section above it) in ``where``, else ``default``."""
    import re

    if key:
        parts = re.sub(r"\[\d+\]$", "", key).split(".")
        for n in range(len(parts), 0, -1):
            found = where.get(".".join(parts[:n]))
            if found:
                return found
    return default


SECTIONS = ("lab", "sentiment", "warmup", "final", "lora", "scores", "imported")


def apply_override(raw: dict, item: str) -> str:
    """Apply one ``key=value`` (or ``section.key=value``) override to a mapping of settings, the
    value read as YAML (``beta=0.1``, ``seeds=[0,1]``, ``lab=null``); returns the key path."""
    import yaml

    from ..checks import check_known_keys

    key, eq, value = item.partition("=")
    key = key.strip()
    if not eq or not key:
        raise ConfigError(f"override {item!r} must be KEY=VALUE or SECTION.KEY=VALUE, e.g. beta=0.1 or "
                          "warmup.learning_rate=1e-4")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value  # not YAML: the text as a string
    top, dot, sub = key.partition(".")
    try:
        check_known_keys({top: None}, RunConfig)
    except ConfigError as e:
        raise e.at(f"override {item!r}") from None
    if not dot:
        raw[top] = parsed
        return key
    if top not in SECTIONS or not sub or "." in sub:
        raise ConfigError(key=top, problem=f"has no sub-settings to override; write {top}=VALUE "
                                           f"(sections: {', '.join(SECTIONS)})", where=f"override {item!r}")
    if top in raw:
        section = raw[top]
    else:  # not in the file: the override changes one key of the section's default
        f = next(f for f in fields(RunConfig) if f.name == top)
        section = f.default_factory() if f.default_factory is not MISSING else f.default
    if section is None:
        section = {}
    elif not isinstance(section, dict):
        raise ConfigError(key=top, problem=f"is not a mapping in the config, so {key} cannot be set",
                          where=f"override {item!r}")
    raw[top] = {**section, sub: parsed}
    return key


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Manifest:
    """manifest.json: versions, config, and each finished stage's key, seconds and outputs."""

    def __init__(self, out: Path, cfg: RunConfig, log=print):
        self.path = out / "manifest.json"
        self.data = {"stages": {}}
        if self.path.exists():
            try:
                self.data = json.loads(self.path.read_text())
                if not isinstance(self.data, dict) or not isinstance(self.data.get("stages"), dict):
                    raise ValueError("no stages")
            except (OSError, ValueError) as e:
                # Every stage re-checks its own artifacts, so a lost manifest costs only re-reading them.
                log(f"note: {self.path} is unreadable ({e or 'no stages'}); starting a new one")
                self.data = {"stages": {}}
        self.data["config"] = asdict(cfg)
        self.data["versions"] = _versions()

    def done(self, stage: str, key: str) -> bool:
        return self.data["stages"].get(stage, {}).get("key") == key

    def record(self, stage: str, key: str, seconds: float, **extra) -> None:
        self.data["stages"][stage] = {"key": key, "seconds": round(seconds, 2), **extra}
        artifacts.write_json(self.path, self.data, seal=False)


def _versions() -> dict:
    import torch
    import transformers
    import trl

    from .. import __version__

    return {"prefsift": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "trl": trl.__version__, "python": platform.python_version(), "machine": platform.machine()}


def _answers(model, tok, prompts, cfg: RunConfig, seed: int, is_lab: bool):
    if is_lab:
        from ..lab import sample_responses

        return [s[0] for s in sample_responses(model, tok, prompts, 1, temperature=cfg.temperature,
                                               max_new_tokens=cfg.max_new_tokens, seed=seed)]
    from ..eval.winrate import generate_answers

    return generate_answers(model, tok, prompts, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
                            seed=seed)


def _imported_source(name: str, spec: str) -> tuple[Path, str]:
    """'RUN/selection.parquet:COLUMN' → (file, column), the file checked to exist."""
    from ..errors import MissingFileError

    path, _, column = spec.rpartition(":")
    if not Path(path).exists():
        raise MissingFileError(key=f"imported.{name}", problem=f": {path} does not exist; run the other config first")
    return Path(path), column


def _imported_table(name: str, path: Path, column: str) -> pd.DataFrame:
    """Another run's selection table, checked to hold ``id`` and a true/false ``column``."""
    key = f"imported.{name}"
    try:
        other = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several kinds for a file that is not Parquet
        raise ConfigError(key=key, problem=f": {path} is not a readable Parquet file ({type(e).__name__}); use a "
                                           "run's selection.parquet") from None
    if "id" not in other.columns:
        raise ConfigError(key=key, problem=f": {path} has no `id` column; use a run's selection.parquet")
    if column not in other.columns:
        choices = [c for c in other.columns if c not in ("id", "valid", "reason")]
        raise ConfigError(key=key, problem=f": {path} has no column {column!r}; it has {choices}")
    if not pd.api.types.is_bool_dtype(other[column]):
        raise ConfigError(key=key, problem=f": column {column!r} of {path} is {other[column].dtype}, not a "
                                           "selection (true/false per pair); use a selection.parquet column")
    return other


def imported_selection(table: pd.DataFrame, name: str, spec: str) -> np.ndarray:
    """The mask of another run's selection column over this run's pairs, matched by pair id.

    Every pair id of this run must be in the other run. Only the ids are compared: the lab's ids are
    positions (`lab-train-000123`), so the other run must have read the same pair file. A pair that
    is invalid here is never kept, whatever the other run chose."""
    path, column = _imported_source(name, spec)
    other = _imported_table(name, path, column)
    ids = table["id"].astype(str)
    other_ids = set(other["id"].astype(str))
    missing = (~ids.isin(other_ids)).sum()
    if missing:
        raise ConfigError(key=f"imported.{name}", problem=f": {missing} of this run's {len(ids)} pair ids are not in "
                                                          f"{path}; an imported selection must come from a run over "
                                                          "the same pairs")
    kept = set(other.loc[other[column].to_numpy(dtype=bool), "id"].astype(str))
    return ids.isin(kept).to_numpy() & table["valid"].to_numpy(dtype=bool)


def read_test_prompts(path, limit: int | None = None, key: str = "test_prompts") -> list:
    """The prompts of a JSONL file with a `prompt` per line (blank lines skipped), the first
    ``limit``; a line that is not such an object is a `ConfigError` naming the file and line."""
    from ..errors import require_path

    p = require_path(path, "test prompts file", key)
    prompts = []
    with open(p, "rb") as fh:
        for n, raw in enumerate(fh, start=1):
            try:  # strictly, as the evaluation reads it later: a bad byte is found now, not after training
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ConfigError(key=key, problem=f": {path}, line {n} is not UTF-8; re-save the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ConfigError(key=key, problem=f": {path}, line {n} is not valid JSON ({e.msg}); give one "
                                                   '{"prompt": ...} object per line') from None
            if not isinstance(record, dict) or "prompt" not in record:
                raise ConfigError(key=key, problem=f": {path}, line {n} has no `prompt`; give one "
                                                   '{"prompt": ...} object per line') from None
            prompts.append(record["prompt"])
            if limit is not None and len(prompts) >= limit:
                break
    if not prompts:
        raise ConfigError(key=key, problem=f": {path} holds no prompt; give one " '{"prompt": ...} object per line')
    return prompts


def check_run_inputs(cfg: RunConfig) -> dict:
    """Everything `run_pipeline` checks before it makes the run directory or loads a model: the
    input files exist and parse, the reference model resolves, the judge is installed and can judge
    the test prompts, and every imported selection exists. Returns what it read
    (``{"train": PairSet, "validation": PairSet}`` for your files). Raises a `UserError`."""
    from ..data import load_pairs
    from ..errors import require_path
    from ..eval.judges import check_judge
    from ..models import ModelSourceError, resolve_model_path

    read: dict = {}
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(key="out", problem=f": {cfg.out!r} is a file; give a folder for the run")
    ref_spec = None
    prompts = None
    if cfg.lab is None and cfg.sentiment is None:
        require_path(cfg.train, "training pairs", "train", kind="any")
        require_path(cfg.validation, "validation pairs", "validation", kind="any")
        ref_spec = cfg.reference
        prompts = read_test_prompts(cfg.test_prompts, cfg.eval_prompts)
        read["train"] = load_pairs(cfg.train)
        read["validation"] = load_pairs(cfg.validation)
        for k in ("train", "validation"):
            if not read[k].valid_rows:
                path = getattr(cfg, k)
                raise ConfigError(key=k, problem=f": {path} has no usable pair; `prefsift data check {path}` lists why")
    elif cfg.sentiment is not None:
        from ..lab.sentiment import SentimentConfig, check_sentiment_inputs

        try:
            check_sentiment_inputs(SentimentConfig(**cfg.sentiment))
        except ConfigError as e:
            raise e.within("sentiment") from None
        ref_spec = cfg.reference
    if ref_spec is not None:
        try:
            resolve_model_path(ref_spec)
        except ModelSourceError as e:
            raise ConfigError(key="reference", problem=f": {e}") from None
    # The judge is made even when no arm is trained; it judges prompts only when one is.
    check_judge(cfg.judge, prompts if (cfg.seeds and cfg.arms) else None, where=str(cfg.test_prompts))
    for name, spec in cfg.imported.items():
        if name in cfg.arms:
            _imported_table(name, *_imported_source(name, spec))
    return read


def run_pipeline(cfg: RunConfig, progress: bool = True, log=print) -> pd.DataFrame:
    """The whole protocol over the run directory `cfg.out` (see the module docstring); one process
    at a time may write a run directory."""
    try:  # every input checked before the run directory is made or any model loaded
        inputs = check_run_inputs(cfg)
    except ConfigError as e:
        raise cfg.locate(e) from None
    with artifacts.RunLock(cfg.out, log):
        return _run_under_lock(cfg, progress, log, inputs)


def _run_under_lock(cfg: RunConfig, progress: bool, log, inputs: dict | None = None) -> pd.DataFrame:
    from ..data import load_pairs
    from ..quiet import quiet_libraries
    from ..eval.winrate import evaluate_answers, win_rate
    from ..eval.judges import make_judge
    from ..lab import LabConfig, make_lab
    from ..scoring.logprobs import model_fingerprint
    from ..models import load_model, load_tokenizer
    from ..objectives import PairwiseObjective
    from ..scoring.table import ScoreConfig, compute_scores
    from ..selection import apply_rule
    from ..train.dpo import StageSettings, train_stage

    quiet_libraries()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    artifacts.write_text(out / "config.yaml", __import__("yaml").safe_dump(asdict(cfg), sort_keys=False), seal=False)
    man = Manifest(out, cfg, log)
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
        from ..lab.sentiment import SentimentConfig, make_sentiment_lab

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
    # (the judge, the test prompts and the imported selections were checked by check_run_inputs)

    objective = PairwiseObjective(cfg.objective, cfg.beta)
    lora = None
    if cfg.lora is not None:
        from ..models import LoraSpec

        spec = dict(cfg.lora)
        if spec.get("target_modules") is not None:
            spec["target_modules"] = tuple(spec["target_modules"])
        lora = LoraSpec(**spec)
    tok, ref = load_tokenizer(ref_spec), load_model(ref_spec)
    inputs = inputs or {}  # your files were read by check_run_inputs
    train = inputs["train"] if "train" in inputs else load_pairs(train_p)
    val = inputs["validation"] if "validation" in inputs else load_pairs(val_p)

    # 2. warm-up: θ
    t = time.time()
    k_warm = _key(k_data, asdict(objective), cfg.warmup, cfg.lora)
    log("[warm-up] DPO through TRL from π_ref on all training pairs")
    _, winfo = train_stage(ref, ref, tok, train.records(), objective, StageSettings(**cfg.warmup), out / "warmup",
                           start_key=model_fingerprint(ref), data_key=k_data, name="warmup",
                           eval_records=val.records(), eval_steps=cfg.eval_steps, lora=lora, log=log)
    man.record("warmup", k_warm, time.time() - t, steps=winfo["steps"])

    # 3. scores
    t = time.time()
    scfg = ScoreConfig(policy=str(out / "warmup" / "model"), reference=ref_spec, train=str(train_p),
                       validation=str(val_p), out=str(out / "score"), objective=cfg.objective, beta=cfg.beta,
                       keep=cfg.keep, **cfg.scores)
    # Paths are not part of the key (k_data and the warm-up's key stand for what they hold), so a run
    # directory that is moved or copied keeps its scores.
    k_score = _key(k_warm, winfo["key"], {k: v for k, v in asdict(scfg).items()
                                          if k not in ("policy", "reference", "train", "validation", "out")})
    log(f"[scores] IRM, LossDiff, IF, TIF ({eta(0.15)})")
    if man.done("scores", k_score) and artifacts.trusted(out / "score" / "scores.parquet", "the scores table", log):
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
    artifacts.write_parquet(out / "selection.parquet", sel)
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
    from ..lab import lab_vocab

    lab_format = is_lab or tok.get_vocab() == lab_vocab()
    # `full` is always a selection (every scored pair) but is trained only when listed in `arms`.
    empty = [a for a in masks if a in cfg.arms and not masks[a].any()]
    for a in empty:
        log(f"  {a} arm skipped: its selection holds no pair (is its score column empty?)")
    jobs = [(a, s) for s in cfg.seeds for a in masks if a in cfg.arms and a not in empty]
    for n, (arm, seed) in enumerate(jobs):
        t = time.time()
        ids_key = _key(table.loc[masks[arm], "id"].tolist())
        settings = StageSettings(**{**cfg.final, "seed": int(seed)})
        log(f"[arm {n + 1}/{len(jobs)}] {arm}, seed {seed}: {int(masks[arm].sum())} pairs ({eta(0.2 + 0.8 * n / len(jobs))})")
        model, info = train_stage(theta, ref, tok, train.records(masks[arm]), objective, settings,
                                  out / "arms" / f"{arm}-seed{seed}", start_key=theta_key, data_key=ids_key,
                                  name=f"arm-{arm}", eval_records=val.records(), eval_steps=cfg.eval_steps,
                                  lora=lora, log=log)
        curves[f"{arm}/seed{seed}"] = info["log"]
        # The prompts themselves are in the key: another test file with the same θ is another evaluation.
        k_eval = _key(info["key"], cfg.judge, cfg.eval_prompts, cfg.temperature, cfg.max_new_tokens, seed,
                      "lab-sampler" if lab_format else "generate", _key(prompts))
        eval_path = out / "arms" / f"{arm}-seed{seed}" / "eval.json"
        if man.done(f"eval/{arm}/{seed}", k_eval) and artifacts.trusted(eval_path, f"the evaluation of {arm}, seed {seed}",
                                                                         log):
            ev = json.loads(eval_path.read_text())
        else:
            if seed not in ref_answers:  # π_ref's answers: sampled once per seed, shared by every arm
                ref_answers[seed] = _answers(ref, tok, prompts, cfg, seed + 10_000, lab_format)
            answers = _answers(model, tok, prompts, cfg, seed + 10_000, lab_format)
            e = evaluate_answers(judge, prompts, answers, ref_answers[seed], seed=seed)
            ev = {"arm": arm, "seed": seed, "n_pairs": int(masks[arm].sum()), **e.to_dict(), "answers": answers}
            faults.point("evaluate")
            artifacts.write_json(eval_path, ev)
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
    artifacts.atomic_write(out / "eval.csv", lambda tmp: evaluation.to_csv(tmp, index=False))
    summary = summarize_arms(evaluation)
    artifacts.write_text(out / "eval.json", json.dumps({"arms": summary.to_dict("records"),
                                                        "runs": evaluation.to_dict("records"), "judge": judge.name},
                                                       indent=1, default=float))

    # 7. report
    try:
        from ..eval.report import write_report

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
    from ..selection import overlap_coefficient

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

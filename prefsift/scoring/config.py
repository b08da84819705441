"""`ScoreConfig`: every setting of `prefsift score` (and of a run's `scores:` section)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..core.checks import check_fields
from ..core.errors import ConfigError, did_you_mean
from ..models.objectives import trainable_with_dpo
from ..runtime.placement import PlacementSettings
from ..train.dpo import optimizer_problem
from .kinds import SCORES


def _if_params_problem(spec: str) -> str | None:
    """Why an IF parameter set is not `all`, `lora` or valid regular expressions (None: it is)."""
    if spec in ("all", "lora"):
        return None

    patterns = [p.strip() for p in spec.split(",") if p.strip()]
    if not patterns:
        return "must be all, lora, or comma-separated regular expressions over parameter names"
    for p in patterns:
        try:
            re.compile(p)
        except re.error as e:
            return f"has an invalid regular expression {p!r} ({e}); e.g. 'layers\\.(28|29)\\.'"
    return None


@dataclass
class ScoreSettings:
    """How the scores are computed: what a run's `scores:` section holds, and every `prefsift score`
    setting but the models, the files, the objective and the placement (`ScoreConfig` adds
    those)."""

    scores: str = field(default="irm,lossdiff,if",
                        metadata={"help": "comma-separated: irm, lossdiff, if, heldout "
                                          "(Selective DPO's cross-fitted loss), teacher (θ_c's "
                                          "margin), group_noise (ε by length group)"})
    max_length: int = field(default=1024,
                            metadata={"help": "max tokens of prompt+response (TRL's max_length)",
                                      "check": ">= 1"})
    overlength: str = field(default="truncate",
                            metadata={"help": "over-length rows: truncate or drop",
                                      "check": ("truncate", "drop")})
    val_epochs: float = field(default=1.0, metadata={"help": "epochs of θ → θ_val on the "
                                                             "validation pairs", "check": "> 0"})
    val_lr: float = field(default=1e-2,
                          metadata={"help": "learning rate of θ → θ_val", "check": "> 0"})
    val_batch_size: int = field(default=8,
                                metadata={"help": "batch size of θ → θ_val", "check": ">= 1"})
    val_optimizer: str = field(default="sgd", metadata={"help": "optimizer of θ → θ_val; with sgd "
            "and a small step LossDiff ∝ IF to first order (adamw_torch: a preconditioned IF)",
                                                        "check": optimizer_problem})
    if_params: str = field(default="all",
                           metadata={"help": "IF parameter set: all, lora, or regexes over names",
                                     "check": _if_params_problem})
    projection_dim: int = field(default=0, metadata={"help": "k of the random projection of "
                                                             "per-pair gradients (0: exact)",
                                                     "check": ">= 0"})
    precondition: str = field(default="none", metadata={"help": "IF preconditioner: none or diag",
                                                        "check": ("none", "diag")})
    if_method: str = field(default="auto", metadata={
        "help": "how exact IF is computed: jvp (forward mode, one batched pass that also gives the "
                "policy's log-probs; exact only, no projection; the diag preconditioner applies to "
                "its tangent), loop (a backward pass per pair), vmap "
                "(per-pair gradients batched), auto (vmap up to 5 M selected parameters in a model "
                "of up to 20 M, else loop)",
        "check": ("auto", "vmap", "loop", "jvp")})
    if_groups: str = field(default="auto", metadata={
        "help": "IF per layer group on the jvp route (one tangent per group): yes, no, or auto "
                "(when every group's tangent fits in one pass, about 2 GB); the other routes "
                "always give the groups",
        "check": ("auto", "yes", "no")})
    validation_sets: str = field(default="", metadata={
        "help": "further validation files as NAME=FILE,NAME=FILE (e.g. one per category): one more "
                "IF column if_val_NAME each, as more tangents of the same forward-mode pass (needs "
                "if_method jvp)"})
    tif_low: float = field(default=-1.0, metadata={"help": "TIF lower percentile (with tif_high; "
                                                           "overrides keep)"})
    tif_high: float = field(default=-1.0, metadata={"help": "TIF upper percentile"})
    batch_tokens: int = field(default=1024,
                              metadata={"help": "padded tokens per forward batch", "check": ">= 1"})
    head_chunk: int = field(default=1024,
                            metadata={"help": "completion positions per output-head matmul of the "
                                              "log-prob engine and the jvp IF route: bounds the "
                                              "(positions x vocabulary) logits block "
                                                            "in memory", "check": ">= 1"})
    folds: int = field(default=2, metadata={
        "help": "Selective DPO's held-out loss (score `heldout`): the pairs split into this many "
                "folds, one reference model trained from π_ref on all but each (as the warm-up is "
                "trained)", "check": ">= 2"})
    teacher_epochs: float = field(default=5.0, metadata={
        "help": "score `teacher`: epochs of θ_c, DPO from π_ref on the careful validation pairs "
                "alone (as the warm-up is trained otherwise)", "check": "> 0"})
    teacher_share: float = field(default=0.5, metadata={
        "help": "score `teacher`: the share of the validation prompts (the last, in file order) "
                "whose pairs train θ_c; a run's probes are valued on the others",
        "check": "(0, 1)"})
    group_by: str = field(default="", metadata={
        "help": "score `group_noise`: comma-separated input fields that split the pairs into "
                "strata before the length groups (empty: the length groups alone)"})
    seed: int = field(default=0, metadata={"help": "seed of θ_val training, projection, the folds "
                                                   "and the random baseline"})
    strict: bool = field(default=False, metadata={"help": "stop at the first bad row"})


    def __post_init__(self):
        check_fields(self)


@dataclass(kw_only=True)
class ScoreConfig(ScoreSettings, PlacementSettings):
    """Every setting of `prefsift score`: the `ScoreSettings`, and the models, files, objective and
    placement (a run sets these itself)."""

    reference: str = field(metadata={"help": "π_ref: the reference (SFT) model (a folder or "
                                             "`smollm2`)"})
    train: str = field(metadata={"help": "training pairs to score"})
    policy: str | None = field(default=None, metadata={
        "help": "θ: the model being aligned, the reference after the warm-up (a folder: `prefsift "
                "warmup` makes it); leave it out and give --warmup to make it here"})
    warmup: bool = field(default=False, metadata={
        "help": "make θ first: the warm-up (DPO on all the training pairs, through TRL) from the "
                "reference into OUT/warmup/model, or reuse it there; `prefsift warmup` has every "
                "setting of it"})
    warmup_epochs: float = field(default=1.0,
                                 metadata={"help": "with --warmup: its epochs (the paper: 1)",
                                           "check": "> 0"})
    warmup_lr: float = field(default=1e-6,
                             metadata={"help": "with --warmup: its learning rate (TRL's default)",
                                       "check": "> 0"})
    warmup_batch_size: int = field(default=8, metadata={"help": "with --warmup: its pairs per step",
                                                        "check": ">= 1"})
    validation: str | None = field(default=None, metadata={"help": "validation pairs (needed by "
                                                                   "lossdiff and if)"})
    out: str = field(default="runs/score", metadata={"help": "run directory"})
    objective: str = field(default="dpo", metadata={
        "help": "pairwise objective: dpo, ipo, hinge (policy and reference: causal LMs), or bt "
                "(policy: a reward model, a one-label sequence classifier; its margin r_w - r_l is "
                "the IRM; reference not used)",
        "check": trainable_with_dpo() + ("bt",)})
    beta: float = field(default=0.1, metadata={"help": "β of the objective", "check": "> 0"})
    keep: float = field(default=0.64,
                        metadata={"help": "kept fraction for the TIF column", "check": "(0, 1]"})

    def __post_init__(self):
        check_fields(self)
        if self.policy is None and not self.warmup:
            raise ConfigError(key="policy", problem="is needed: give θ, the warmed-up model "
                                                    "(`prefsift warmup` makes it), or --warmup to "
                                                    "make it first (scoring the reference itself "
                                                    "makes IRM 0 for every pair)")
        if self.policy is not None and self.warmup:
            raise ConfigError(key="warmup",
                              problem="makes θ, but --policy gives it too: give one of them")
        if self.warmup and self.objective == "bt":
            raise ConfigError(key="warmup", problem="makes a causal LM's θ by DPO; objective bt "
                                                    "scores a reward model: give it as --policy")
        if self.shard == "fsdp" and self.projection_dim:
            raise ConfigError(key="projection_dim",
                              problem="projects whole per-pair gradients, which shard fsdp never "
                                      "holds: use exact IF (projection_dim 0) or shard ddp")
        if self.shard == "fsdp" and self.validation_sets:
            raise ConfigError(key="validation_sets",
                              problem="are tangents of the forward-mode pass, which shard fsdp "
                                      "has not: drop them or use shard ddp")
        if self.if_method == "jvp" and self.projection_dim:
            raise ConfigError(key="if_method",
                              problem="jvp computes exact IF: it takes no projection_dim; drop it, "
                                      "or use if_method auto")
        sets = self.validation_set_paths
        if sets and self.if_method != "jvp":
            raise ConfigError(key="validation_sets",
                              problem="are extra tangents of the forward-mode pass: also set "
                                      "if_method jvp")
        wanted = self.wanted
        unknown = [s for s in wanted if s not in SCORES]
        if unknown or not wanted:
            raise ConfigError(key="scores", problem=f"must list some of "
                                                    f"{', '.join(SCORES.names())} "
                              f"(comma-separated); got "
                    f"{self.scores!r}{did_you_mean(unknown[0], SCORES.names()) if unknown else ''}")
        if (need := [s for s in wanted if SCORES.get(s).needs_validation]) and not self.validation:
            raise ConfigError(key="validation",
                              problem=f"is needed by the {' and '.join(need)} score(s): give the "
                                      "validation pairs (--validation FILE), or ask only for irm "
                                      "(--scores irm)")
        if (self.tif_low >= 0) != (self.tif_high >= 0):
            raise ConfigError(key="tif_low",
                              problem="and tif_high go together: give both percentiles, or neither")
        if self.tif_low >= 0 and not 0 <= self.tif_low < self.tif_high <= 100:
            raise ConfigError(key="tif_low",
                              problem=f"and tif_high must satisfy 0 <= tif_low < tif_high <= 100, "
                                      f"got ({self.tif_low}, {self.tif_high})")

    @property
    def validation_set_paths(self) -> dict[str, str]:
        """`validation_sets` parsed: {NAME: FILE}."""
        out = {}
        for item in (x.strip() for x in self.validation_sets.split(",") if x.strip()):
            name, sep, path = item.partition("=")
            if not sep or not path or not name.replace("_", "").isalnum():
                raise ConfigError(key="validation_sets",
                                  problem=f"has {item!r}; give NAME=FILE entries (NAME of "
                                          "letters, digits and _), comma-separated")
            if name in out:
                raise ConfigError(key="validation_sets", problem=f"names {name!r} twice")
            out[name] = path
        return out

    @property
    def wanted(self) -> list[str]:
        """The scores asked for, in order."""
        return [s.strip() for s in self.scores.split(",") if s.strip()]

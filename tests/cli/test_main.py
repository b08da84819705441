"""A user's mistake gets one `error:` line and exit 2, before any work; a bug gets a traceback.

Table-driven over every command: each case is a command line built on tiny inputs made here, the
text its one error line must contain (the flag, key or file it names), and, for commands that
write somewhere, the folder that must stay absent or empty (nothing built, sampled or trained)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from prefsift.cli import main


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, data_dir):
    """Tiny inputs: a pair file, non-lab test prompts, lab test prompts, a scores table with IRM
    only, a tiny model folder, and YAML configs."""
    import numpy as np
    import pandas as pd

    from tests.tiny import tiny_model

    root = tmp_path_factory.mktemp("inputs")
    pairs = root / "pairs.jsonl"
    pairs.write_text((data_dir / "good" / "standard_explicit.jsonl").read_text())
    (root / "prompts.jsonl").write_text("".join(json.dumps({"prompt": f"Say {i}."}) + "\n"
                                                for i in range(3)))
    (root / "lab_prompts.jsonl").write_text(json.dumps({"prompt": "sort : 0 4 8 7 6 4 ="}) + "\n")
    (root / "no_prompt.jsonl").write_text(json.dumps({"question": "x"}) + "\n")
    (root / "latin1_prompts.jsonl").write_bytes(b'{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n')
    n = 20
    rng = np.random.default_rng(0)
    pd.DataFrame({"id": [f"p{i}" for i in range(n)], "valid": True, "reason": "",
                  "irm": rng.normal(size=n), "abs_irm": 1.0,
                  "random": rng.random(n)}).to_parquet(root / "irm_only.parquet", index=False)
    model = root / "model"
    tiny_model(32, seed=0).save_pretrained(model)
    (root / "ids.txt").write_text("a\nb\n")
    (root / "file_not_folder").write_text("x")
    files = (f"lab: null\ntrain: {pairs}\nvalidation: {pairs}\n"
             f"test_prompts: {root / 'prompts.jsonl'}\n"
             f"reference: {model}\njudge: constant\n")
    configs = {
        "betaa": "seeds: [0]\nbetaa: 0.1\n",
        "keep": "keep: 2.0\n",
        "beta": "beta: -1\n",
        "warmup_lr": "warmup:\n  epochs: 1\n  learning_rate: -1\n",
        "warmup_key": "warmup: {epochs: 1, learnig_rate: 1.0e-4}\n",
        "lab_frac": "lab: {frac_clean: 3}\n",
        "objective": "objective: simpo\n",
        "arm": "arms: [full, tiff]\n",
        "judge": "judge: orcale\n",
        "eval_prompts": "eval_prompts: 0\n",
        "scores_beta": "scores: {beta: 0.1}\n",
        "arm_needs_score": "scores: {scores: irm}\narms: [full, lossdiff_irm]\n",
        "lab_and_files": f"train: {pairs}\n",
        "no_files": "lab: null\n",
        "not_yaml": "lab: {n_train: 10\nbeta: 0.1\n",
        "list": "- beta\n- keep\n",
        "lr_string": "final: {learning_rate: fast}\n",
        "files_ok": files,
        "missing_train": files.replace(str(pairs), str(root / "missing.jsonl"), 1),
        "missing_reference": files.replace(str(model), "/nonexistent-model"),
        "oracle_on_other_prompts": files.replace("judge: constant", "judge: oracle"),
        "reward_judge_missing": files.replace("judge: constant", f"judge: reward:{root / 'no-rm'}"),
        "llm_judge_missing": files.replace("judge: constant", "judge: llm:/nonexistent-judge"),
        "test_prompts_without_prompt": files.replace(str(root / "prompts.jsonl"),
                                                     str(root / "no_prompt.jsonl")),
        "test_prompts_not_utf8": files.replace(str(root / "prompts.jsonl"),
                                               str(root / "latin1_prompts.jsonl")),
        "imported_missing": files
            + f"imported: {{b_tif: {root / 'other' / 'selection.parquet'}:tif}}\n"
              "arms: [full, b_tif]\n",
    }
    for name, text in configs.items():
        (root / f"{name}.yaml").write_text(text)
    return root


# (id, argv with {root} and {out} placeholders, text the error line names, folder that stays empty)
CASES = [
    # data check / data subset
    ("data-check-missing-file", ["data", "check", "{root}/missing.jsonl"], "missing.jsonl", None),
    ("data-check-bad-tokenizer", ["data", "check", "{root}/pairs.jsonl", "--tokenizer",
                                  "/nonexistent"],
     "'/nonexistent' not found", None),
    ("data-subset-missing-ids", ["data", "subset", "{root}/pairs.jsonl", "--ids", "/missing.txt",
                                 "--out", "{out}/o.jsonl"],
     "--ids: ids file '/missing.txt' does not exist", "{out}"),
    ("data-subset-ids-is-folder", ["data", "subset", "{root}/pairs.jsonl", "--ids", "{root}",
                                   "--out", "{out}/o.jsonl"],
     "--ids", "{out}"),
    ("data-subset-unknown-ids", ["data", "subset", "{root}/pairs.jsonl", "--ids", "{root}/ids.txt",
                                 "--out",
                                 "{out}/o.jsonl"], "2 of the requested ids are not in", "{out}"),
    ("data-subset-missing-file", ["data", "subset", "{root}/missing.jsonl", "--ids",
                                  "{root}/ids.txt", "--out",
                                  "{out}/o.jsonl"], "missing.jsonl", "{out}"),
    # model
    ("model-missing", ["model", "/nonexistent"], "model '/nonexistent' not found", None),
    # lab make / lab sentiment: refused before the SFT model is trained or sampled
    ("lab-make-fraction", ["lab", "make", "--out", "{out}", "--frac-clean", "2"],
     "--frac-clean must be in [0, 1]", "{out}"),
    ("lab-make-fractions-sum", ["lab", "make", "--out", "{out}", "--frac-clean", "0.9"], "sum to 1",
     "{out}"),
    ("lab-make-n-train", ["lab", "make", "--out", "{out}", "--n-train", "0"],
     "--n-train must be >= 1", "{out}"),
    ("lab-make-preset", ["lab", "make", "--out", "{out}", "--preset", "huge"],
     "--preset must be one of", "{out}"),
    ("lab-make-lr", ["lab", "make", "--out", "{out}", "--lr", "0"], "--lr must be > 0", "{out}"),
    ("lab-make-threads", ["lab", "make", "--out", "{out}", "--threads", "0"],
     "--threads must be >= 1", "{out}"),
    ("lab-make-out-is-file", ["lab", "make", "--out", "{root}/file_not_folder"], "--out", None),
    ("lab-sentiment-samples", ["lab", "sentiment", "--out", "{out}", "--samples-per-prompt", "1"],
     "--samples-per-prompt must be >= 2", "{out}"),
    ("lab-sentiment-too-many", ["lab", "sentiment", "--out", "{out}", "--n-train", "100000"],
     "at most", "{out}"),
    ("lab-sentiment-model", ["lab", "sentiment", "--out", "{out}", "--model", "/nonexistent"],
     "--model: model '/nonexistent' not found", "{out}"),
    ("lab-sentiment-flip-rate", ["lab", "sentiment", "--out", "{out}", "--flip-rate", "1.5"],
     "--flip-rate", "{out}"),
    # score: refused before a folder is made or a model loaded
    ("score-no-validation", ["score", "--policy", "{root}/model", "--reference", "{root}/model",
                             "--train", "{root}/pairs.jsonl", "--out", "{out}"],
     "--validation is needed", "{out}"),
    ("score-policy-missing", ["score", "--policy", "/nonexistent", "--reference", "{root}/model",
                              "--train", "{root}/pairs.jsonl", "--scores", "irm", "--out", "{out}"],
     "--policy: model '/nonexistent'", "{out}"),
    ("score-reference-missing", ["score", "--policy", "{root}/model", "--reference", "/nonexistent",
                                 "--train", "{root}/pairs.jsonl", "--scores", "irm", "--out",
                                 "{out}"], "--reference", "{out}"),
    ("score-train-missing", ["score", "--policy", "{root}/model", "--reference", "{root}/model",
                             "--train",
                             "{root}/missing.jsonl", "--scores", "irm", "--out", "{out}"],
     "--train: training pairs", "{out}"),
    ("score-validation-missing", ["score", "--policy", "{root}/model", "--reference",
                                  "{root}/model", "--train", "{root}/pairs.jsonl", "--validation",
                                  "{root}/missing.jsonl", "--out", "{out}"],
     "--validation: validation pairs", "{out}"),
    ("score-unknown-score", ["score", "--policy", "{root}/model", "--reference", "{root}/model",
                             "--train", "{root}/pairs.jsonl", "--scores", "irm,tif", "--out",
                             "{out}"], "--scores must list", "{out}"),
    ("score-beta", ["score", "--policy", "{root}/model", "--reference", "{root}/model", "--train",
                    "{root}/pairs.jsonl", "--scores", "irm", "--beta", "-1", "--out", "{out}"],
     "--beta must be > 0", "{out}"),
    ("score-keep", ["score", "--policy", "{root}/model", "--reference", "{root}/model", "--train",
                    "{root}/pairs.jsonl", "--scores", "irm", "--keep", "0", "--out", "{out}"],
     "--keep must be in (0, 1]", "{out}"),
    ("score-val-lr", ["score", "--policy", "{root}/model", "--reference", "{root}/model", "--train",
                      "{root}/pairs.jsonl", "--validation", "{root}/pairs.jsonl", "--val-lr", "0",
                      "--out", "{out}"],
     "--val-lr must be > 0", "{out}"),
    ("score-val-epochs", ["score", "--policy", "{root}/model", "--reference", "{root}/model",
                          "--train", "{root}/pairs.jsonl", "--validation", "{root}/pairs.jsonl",
                          "--val-epochs", "0", "--out",
                          "{out}"], "--val-epochs must be > 0", "{out}"),
    ("score-objective", ["score", "--policy", "{root}/model", "--reference", "{root}/model",
                         "--train", "{root}/pairs.jsonl", "--scores", "irm", "--objective", "simpo",
                         "--out", "{out}"],
     "--objective must be one of dpo, ipo, hinge", "{out}"),
    ("score-optimizer", ["score", "--policy", "{root}/model", "--reference", "{root}/model",
                         "--train", "{root}/pairs.jsonl", "--validation", "{root}/pairs.jsonl",
                         "--val-optimizer", "adamw", "--out", "{out}"], "--val-optimizer", "{out}"),
    ("score-if-params", ["score", "--policy", "{root}/model", "--reference", "{root}/model",
                         "--train", "{root}/pairs.jsonl", "--validation", "{root}/pairs.jsonl",
                         "--if-params", "layers.(", "--out", "{out}"], "--if-params", "{out}"),
    ("score-tif-window", ["score", "--policy", "{root}/model", "--reference", "{root}/model",
                          "--train", "{root}/pairs.jsonl", "--validation", "{root}/pairs.jsonl",
                          "--tif-low", "80", "--tif-high",
                          "20", "--out", "{out}"], "--tif-low", "{out}"),
    # select
    ("select-missing-scores", ["select", "--scores", "{root}/irm_only.parquet", "--rule",
                               "lossdiff_irm", "--out", "{out}"],
     "--scores irm,lossdiff", "{out}"),
    ("select-keep", ["select", "--scores", "{root}/irm_only.parquet", "--rule", "irm", "--keep",
                     "1.5", "--out", "{out}"],
     "--keep must be in (0, 1], got 1.5", "{out}"),
    ("select-keep-zero", ["select", "--scores", "{root}/irm_only.parquet", "--rule", "irm",
                          "--keep", "0", "--out", "{out}"], "--keep", "{out}"),
    ("select-unknown-rule", ["select", "--scores", "{root}/irm_only.parquet", "--rule", "irn",
                             "--out", "{out}"],
     "--rule must name a rule", "{out}"),
    ("select-calibrated", ["select", "--scores", "{root}/irm_only.parquet", "--rule",
                           "calibrated_tif", "--out", "{out}"],
     "--rule 'calibrated_tif' is not a rule over a scores table", "{out}"),
    ("select-overlap-rule", ["select", "--scores", "{root}/irm_only.parquet", "--rule", "irm",
                             "--overlap", "tif", "--out", "{out}"],
     "--overlap 'tif' needs the score(s) ['if']", "{out}"),
    ("select-window-form", ["select", "--scores", "{root}/irm_only.parquet", "--window", "irm:20",
                            "--out", "{out}"],
     "--window must be SCORE:LOW:HIGH", "{out}"),
    ("select-window-range", ["select", "--scores", "{root}/irm_only.parquet", "--window",
                             "irm:80:20", "--out", "{out}"],
     "--window needs percentiles", "{out}"),
    ("select-window-score", ["select", "--scores", "{root}/irm_only.parquet", "--window",
                             "if:20:80", "--out", "{out}"],
     "--window: no score 'if'", "{out}"),
    ("select-scores-missing", ["select", "--scores", "{root}/missing.parquet", "--out", "{out}"],
     "--scores: scores table", "{out}"),
    ("select-scores-not-parquet", ["select", "--scores", "{root}/pairs.jsonl", "--out", "{out}"],
     "not a readable Parquet file", "{out}"),
    ("select-train-missing", ["select", "--scores", "{root}/irm_only.parquet", "--rule", "irm",
                              "--train",
                              "{root}/missing.jsonl", "--out", "{out}"], "--train", "{out}"),
    # run: refused before the run directory is made (no lab built, no model loaded)
    ("run-unknown-key", ["run", "{root}/betaa.yaml", "--out", "{out}"],
     "betaa.yaml, line 2: betaa is not a setting "
     "(did you mean 'beta'?)", "{out}"),
    ("run-keep", ["run", "{root}/keep.yaml", "--out", "{out}"],
     "keep.yaml, line 1: keep must be in (0, 1]", "{out}"),
    ("run-beta", ["run", "{root}/beta.yaml", "--out", "{out}"],
     "beta.yaml, line 1: beta must be > 0", "{out}"),
    ("run-warmup-lr", ["run", "{root}/warmup_lr.yaml", "--out", "{out}"],
     "warmup_lr.yaml, line 3: warmup.learning_rate must be > 0", "{out}"),
    ("run-warmup-key", ["run", "{root}/warmup_key.yaml", "--out", "{out}"],
     "warmup.learnig_rate is not a setting of `warmup` (did you mean 'learning_rate'?)", "{out}"),
    ("run-lab-fraction", ["run", "{root}/lab_frac.yaml", "--out", "{out}"],
     "lab.frac_clean must be in [0, 1]", "{out}"),
    ("run-objective", ["run", "{root}/objective.yaml", "--out", "{out}"],
     "objective must be one of", "{out}"),
    ("run-arm", ["run", "{root}/arm.yaml", "--out", "{out}"], "arms has unknown arm(s) ['tiff']",
     "{out}"),
    ("run-judge", ["run", "{root}/judge.yaml", "--out", "{out}"], "judge must be lexicon, "
     "reward:FOLDER, llm:MODEL, openai:MODEL, oracle or biased:SHARE", "{out}"),
    ("run-eval-prompts", ["run", "{root}/eval_prompts.yaml", "--out", "{out}"],
     "eval_prompts must be >= 1", "{out}"),
    ("run-scores-beta", ["run", "{root}/scores_beta.yaml", "--out", "{out}"],
     "scores.beta is the run's", "{out}"),
    ("run-arm-needs-score", ["run", "{root}/arm_needs_score.yaml", "--out", "{out}"],
     "'lossdiff_irm', which needs the lossdiff score(s)", "{out}"),
    ("run-lab-and-files", ["run", "{root}/lab_and_files.yaml", "--out", "{out}"],
     "train is set, but the lab", "{out}"),
    ("run-no-files", ["run", "{root}/no_files.yaml", "--out", "{out}"],
     "train is needed without the lab", "{out}"),
    ("run-not-yaml", ["run", "{root}/not_yaml.yaml", "--out", "{out}"], "not_yaml.yaml, line",
     "{out}"),
    ("run-not-mapping", ["run", "{root}/list.yaml", "--out", "{out}"],
     "list.yaml: expected settings", "{out}"),
    ("run-type", ["run", "{root}/lr_string.yaml", "--out", "{out}"],
     "final.learning_rate must be a number", "{out}"),
    ("run-missing-config", ["run", "{root}/missing.yaml", "--out", "{out}"], "config file",
     "{out}"),
    ("run-override-unknown", ["run", "{root}/keep.yaml", "kep=0.5", "--out", "{out}"],
     "override 'kep=0.5': kep is not a setting (did you mean 'keep'?)", "{out}"),
    ("run-override-range", ["run", "{root}/files_ok.yaml", "final.epochs=0", "--out", "{out}"],
     "override 'final.epochs=0': final.epochs must be > 0", "{out}"),
    ("run-override-form", ["run", "{root}/files_ok.yaml", "beta", "--out", "{out}"],
     "must be KEY=VALUE", "{out}"),
    # an override after the flags is read as one (not argparse's "unrecognized arguments")
    ("run-override-after-out", ["run", "{root}/files_ok.yaml", "--out", "{out}", "final.epochs=0"],
     "override 'final.epochs=0': final.epochs must be > 0", "{out}"),
    ("run-override-section", ["run", "{root}/files_ok.yaml", "beta.x=1", "--out", "{out}"],
     "beta has no sub-settings", "{out}"),
    ("run-missing-train", ["run", "{root}/missing_train.yaml", "--out", "{out}"],
     "missing_train.yaml, line 2: train: training pairs", "{out}"),
    ("run-missing-reference", ["run", "{root}/missing_reference.yaml", "--out", "{out}"],
     "line 5: reference: model '/nonexistent-model' not found", "{out}"),
    ("run-oracle-judge", ["run", "{root}/oracle_on_other_prompts.yaml", "--out", "{out}"],
     "line 6: judge `oracle` scores the lab's prompts only, and prompt 1", "{out}"),
    ("run-reward-judge", ["run", "{root}/reward_judge_missing.yaml", "--out", "{out}"],
     "judge: reward model folder", "{out}"),
    ("run-llm-judge", ["run", "{root}/llm_judge_missing.yaml", "--out", "{out}"],
     "judge: model '/nonexistent-judge' not found", "{out}"),
    ("run-test-prompts", ["run", "{root}/test_prompts_without_prompt.yaml", "--out", "{out}"],
     "test_prompts: ", "{out}"),
    ("run-test-prompts-not-utf8", ["run", "{root}/test_prompts_not_utf8.yaml", "--out", "{out}"],
     "latin1_prompts.jsonl, line 2 is not UTF-8", "{out}"),
    ("run-imported-missing", ["run", "{root}/imported_missing.yaml", "--out", "{out}"],
     "imported.b_tif: ", "{out}"),
    ("run-out-is-file", ["run", "{root}/files_ok.yaml", "--out", "{root}/file_not_folder"],
     "is a file", None),
    # demo: RunConfig's checks
    ("demo-keep", ["demo", "--out", "{out}", "--keep", "2"], "--keep must be in (0, 1], got 2.0",
     "{out}"),
    # top level
    ("threads", ["--threads", "0", "model", "/nonexistent"], "error: --threads must be >= 1", None),
]


def _fill(parts, root, out):
    return [p.format(root=root, out=out) for p in parts]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_a_mistake_is_one_error_line_and_exit_2(case, inputs, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PREFSIFT_DEBUG", raising=False)
    name, argv, names, empty = case
    out = tmp_path / "out"
    code = main(_fill(argv, inputs, out))
    captured = capsys.readouterr()
    assert code == 2, (captured.out, captured.err)
    assert "Traceback" not in captured.out + captured.err
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert names.format(root=inputs, out=out) in lines[0], lines[0]
    if empty is not None:  # nothing was made: no lab, no model, no data, no folder
        folder = Path(empty.format(root=inputs, out=out))
        assert not folder.exists() or not any(folder.iterdir()), sorted(folder.rglob("*"))


def test_debug_shows_the_traceback(inputs, capsys, monkeypatch):
    from prefsift.core.errors import ConfigError, UserError

    argv = ["select", "--scores", str(inputs / "irm_only.parquet"), "--rule", "irm", "--keep",
            "1.5", "--out", str(inputs / "sel")]
    with pytest.raises(ConfigError, match="keep must be in"):
        main(["--debug"] + argv)
    with pytest.raises(ConfigError):
        main(argv + ["--debug"])  # also after the command
    monkeypatch.setenv("PREFSIFT_DEBUG", "1")
    with pytest.raises(UserError):
        main(["model", "/nonexistent"])
    monkeypatch.setenv("PREFSIFT_DEBUG", "0")
    assert main(["model", "/nonexistent"]) == 2
    # and through the console entry point, the traceback is printed
    proc = subprocess.run([sys.executable, "-m", "prefsift", "--debug", "select", "--scores",
                           "/missing.parquet",
                           "--out", str(inputs / "sel")], capture_output=True, text=True,
                          env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "MissingFileError" in proc.stderr


def test_an_internal_error_is_a_bug_with_its_traceback(monkeypatch, capsys):
    import prefsift.cli as cli

    def broken(args):
        raise RuntimeError("something inside broke")

    monkeypatch.delenv("PREFSIFT_DEBUG", raising=False)
    monkeypatch.setattr(cli.commands, "cmd_model", broken)
    assert cli.main(["model", "anything"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: something inside broke" in err
    assert err.strip().splitlines()[-1].startswith("error: this is a bug in prefsift")
    assert "report it" in err


def test_interrupt_is_one_line(monkeypatch, capsys):
    import prefsift.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.delenv("PREFSIFT_DEBUG", raising=False)
    monkeypatch.setattr(cli.commands, "cmd_model", interrupted)
    assert cli.main(["model", "anything"]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("error: interrupted")


def test_overrides_and_yaml_numbers_are_read_and_checked(inputs):
    from prefsift.pipeline import RunConfig

    path = inputs / "files_ok.yaml"
    cfg = RunConfig.from_yaml(path, ["beta=0.2", "seeds=[3]", "warmup.learning_rate=2e-4",
                                     "lora.r=4"], out="x")
    from prefsift.models.loading import LoraSettings
    from prefsift.train import StageSettings

    assert (cfg.beta, cfg.seeds, cfg.out, cfg.lora) == (0.2, [3], "x", LoraSettings(r=4))
    # YAML reads `2e-4` as a string; the checked section holds the number
    # a section the file does not set keeps the run's defaults for its other keys: with your own
    # files (lab: null) the neutral ones, TRL's 8 pairs per step (the lab's 16 is the lab's preset)
    assert cfg.warmup == StageSettings(epochs=1, learning_rate=2e-4, batch_size=8)
    assert isinstance(cfg.warmup.learning_rate, float)


def test_a_section_in_a_file_is_merged_onto_its_default(tmp_path):
    """`warmup: {learning_rate: ...}` changes that key only: the run's default batch size (16, not
    StageSettings' own 8) and epochs stay, as with the override warmup.learning_rate=..."""
    from prefsift.pipeline import RunConfig
    from prefsift.train import StageSettings

    path = tmp_path / "c.yaml"
    path.write_text("warmup: {learning_rate: 3.0e-4}\nfinal: {epochs: 3}\nlab: {n_train: 50}\n")
    cfg = RunConfig.from_yaml(path)
    assert cfg.warmup == StageSettings(epochs=1, learning_rate=3e-4, batch_size=16)
    assert cfg.final == StageSettings(epochs=3, learning_rate=1e-4, batch_size=16)
    assert cfg.lab.n_train == 50 and cfg.lab.n_validation == 300
    # and it is read back from what the run writes as config.yaml
    import yaml

    again = RunConfig.from_dict(yaml.safe_load(yaml.safe_dump(cfg.to_dict())))
    assert again == cfg


def test_the_same_checks_hold_for_the_python_api():
    from prefsift.core.errors import ConfigError, UserError
    from prefsift.lab import LabConfig
    from prefsift.models.loading import LoraSettings
    from prefsift.pipeline import RunConfig
    from prefsift.scoring.table import ScoreConfig
    from prefsift.selection.rules import apply_rule
    from prefsift.train.dpo import StageSettings

    for make, key in [(lambda: StageSettings(epochs=0), "epochs"),
                      (lambda: StageSettings(learning_rate=-1), "learning_rate"),
                      (lambda: LoraSettings(r=0), "r"), (lambda: LabConfig(sample_temperature=0),
                                                         "sample_temperature"),
                      (lambda: ScoreConfig(policy="p", reference="r", train="t", scores="irm",
                                           keep=2), "keep"),
                      (lambda: RunConfig(final={"learning_rate": 0}), "final.learning_rate"),
                      (lambda: RunConfig(lora={"dropout": 1.0}), "lora.dropout"),
                      (lambda: RunConfig(scores={"if_params": "lora"}), "scores.if_params")]:
        with pytest.raises(ConfigError) as e:
            make()
        assert e.value.key == key and isinstance(e.value, (ValueError, UserError))
    import pandas as pd

    with pytest.raises(ConfigError, match="needs the score"):
        apply_rule(pd.DataFrame({"valid": [True], "irm": [0.0]}), "lossdiff_irm", 0.5)
    with pytest.raises(ConfigError, match=r"keep must be in \(0, 1\]"):
        apply_rule(pd.DataFrame({"valid": [True], "irm": [0.0]}), "irm", 1.5)


def test_a_stray_argument_is_still_refused(inputs, capsys):
    """Only KEY=VALUE words may follow `run`'s flags; anything else is argparse's usage error."""
    with pytest.raises(SystemExit) as e:
        main(["run", str(inputs / "files_ok.yaml"), "--out", "x", "--no-such-flag"])
    assert e.value.code == 2 and "unrecognized arguments: --no-such-flag" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["model", "/nonexistent", "beta=0.1"])  # a command without overrides takes none

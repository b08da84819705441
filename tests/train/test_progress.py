"""A training stage's terminal output: one progress bar, the trainer's log dictionaries in the stage
folder's train_log.jsonl, and on the terminal only with --verbose (PREFSIFT_VERBOSE=1)."""

import json

import pytest
import torch

from prefsift.core.quiet import VERBOSE_ENV
from prefsift.models.loading import build_tiny_model
from prefsift.models.objectives import PairwiseObjective
from prefsift.train.dpo import StageSettings
from prefsift.train.progress import LOG_NAME, read_log
from prefsift.train.stage import TrainingStage

RECORDS = [{"prompt": f"Q{i % 10}?", "chosen": " good answer", "rejected": f" bad {i % 10}"}
           for i in range(32)]


def _stage(tok, folder, **kw):
    """16 optimizer steps (32 pairs, 2 a step): TRL logs the loss at step 10 (logging_steps=10),
    the validation loss every 4 steps, and the summary at the end."""
    ref = build_tiny_model("tiny", len(tok), seed=0, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    return TrainingStage(ref, ref, tok, RECORDS, PairwiseObjective("dpo", 0.1),
                       StageSettings(epochs=1, learning_rate=1e-2, batch_size=2), folder,
                       start_key="s",
                       data_key="d", name="s", eval_records=RECORDS[:8], eval_steps=4, **kw).run()


def test_stage_log_file_is_the_trainers_log_and_the_terminal_shows_one_bar(word_tokenizer, tmp_path,
                                                                            capfd, monkeypatch):
    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    _, info = _stage(word_tokenizer, tmp_path / "stage", label="warm-up")
    out, err = capfd.readouterr()
    lines = [json.loads(line) for line in (tmp_path / "stage" / LOG_NAME).read_text().splitlines()]
    # stage.json's log is transformers' own record: the step-0 evaluation, then state.log_history.
    assert (lines == info["log"]
            == json.loads((tmp_path / "stage" / "stage.json").read_text())["log"])
    assert lines == read_log(tmp_path / "stage")
    assert [e["step"] for e in lines if "loss" in e] == [10]
    assert [e["step"] for e in lines if "eval_loss" in e] == [0, 4, 8, 12, 16]
    assert "train_runtime" in lines[-1]
    # No dictionary on the terminal; one bar named after the stage, finished, with rate and loss.
    for printed in ("{'loss'", "{'eval_loss'", "{'train_runtime'", "'epoch'"):
        assert printed not in out + err
    assert "warm-up: 100%" in err and "16/16" in err and "step/s" in err and "loss=" in err


def test_verbose_prints_the_dictionaries_and_progress_false_shows_no_bar(word_tokenizer, tmp_path,
                                                                         capfd, monkeypatch):
    monkeypatch.setenv(VERBOSE_ENV, "1")
    _, info = _stage(word_tokenizer, tmp_path / "verbose", label="arm x seed 0")
    out, err = capfd.readouterr()
    assert "{'loss':" in out and "{'eval_loss':" in out and "{'train_runtime':" in out
    assert "arm x seed 0: 100%" in err

    monkeypatch.setenv(VERBOSE_ENV, "0")
    quiet_model, quiet_info = _stage(word_tokenizer, tmp_path / "quiet", label="θ_val",
                                     progress=False)
    out, err = capfd.readouterr()
    assert ("θ_val" not in err and "{'loss'" not in out + err and "step/s" not in err
            and "batch/s" not in err)
    # The log file is written all the same, and what is trained does not depend on what is shown.
    assert read_log(tmp_path / "quiet") == quiet_info["log"]

    # Against the trainer as TRL leaves it (its ProgressCallback, which prints every dictionary):
    # the same log, the same weights.
    import prefsift.train.progress as progress

    monkeypatch.setattr(progress, "attach", lambda *a, **k: None)
    plain_model, plain_info = _stage(word_tokenizer, tmp_path / "plain")
    out, _ = capfd.readouterr()
    assert "{'loss':" in out and not (tmp_path / "plain" / LOG_NAME).exists()

    def same(log):  # without the timings
        return [{k: v for k, v in e.items() if "runtime" not in k and "per_second" not in k}
                for e in log]

    assert same(quiet_info["log"]) == same(info["log"]) == same(plain_info["log"])
    for (name, p), q in zip(quiet_model.named_parameters(), plain_model.parameters()):
        assert torch.equal(p, q), name


def test_a_stage_trained_again_starts_a_fresh_log_file(word_tokenizer, tmp_path, monkeypatch):
    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    (tmp_path / "stage").mkdir()
    (tmp_path / "stage" / LOG_NAME).write_text('{"loss": 99.0, "step": 1}\n')
    _, info = _stage(word_tokenizer, tmp_path / "stage", progress=False)
    assert read_log(tmp_path / "stage") == info["log"]


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_flag_sets_the_switch_workers_inherit(where, monkeypatch, data_dir, capsys):
    from prefsift.cli import main
    from prefsift.core.quiet import verbose

    monkeypatch.setenv(VERBOSE_ENV, "0")  # restored after the test
    cmd = ["data", "check", str(data_dir / "good" / "standard_explicit.jsonl")]
    assert main(["--verbose", *cmd] if where == "before" else [*cmd, "--verbose"]) == 0
    assert verbose()

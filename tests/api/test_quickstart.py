"""The README's quick start, in Python, runs as written on the lab's model: from an SFT folder and a
pair file, warm-up -> scores -> selection -> a subset file that TRL's DPOTrainer trains on
unchanged. And the natural mistake, scoring the SFT model itself as θ, stops with one line before
any table."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import prefsift
from prefsift.core.errors import UserError
from prefsift.lab import LabConfig, make_lab

README = Path(__file__).resolve().parents[2] / "README.md"
LAB = dict(seed=5, preset="tiny", n_train=160, n_validation=40, n_test_prompts=10, sft_steps=40,
           sft_warmup_steps=5, threads=1, progress=False, share_sft=False)
pytestmark = pytest.mark.slow


def _quick_start() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Quick start"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("quick")
    make_lab(LabConfig(**LAB), root / "lab")
    return root / "lab"


def test_the_readme_quick_start_runs_on_the_lab_model(lab, tmp_path, monkeypatch):
    code = _quick_start()
    assert len([line for line in code.splitlines() if line.strip()]) <= 10
    # The README's files and model, as a user would have them: the lab's SFT folder for `smollm2`.
    for name, path in (("train.jsonl", lab / "train.jsonl"),
                       ("val.jsonl", lab / "validation.jsonl")):
        (tmp_path / name).write_bytes(path.read_bytes())
    code = code.replace('"smollm2"', repr(str(lab / "sft_model")))
    # TRL's default learning rate (1e-6) barely moves a 1.8 M-parameter model in 20 steps; the lab
    # uses 1e-3.
    code = code.replace('out="runs/mine")', 'out="runs/mine", learning_rate=1e-3)', 1)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md (quick start)", "exec"), scope)

    theta, table, mask, run = scope["theta"], scope["table"], scope["mask"], scope["run"]
    assert Path(theta).resolve() == (tmp_path / "runs/mine/warmup/model").resolve()
    pairs = prefsift.load_pairs("train.jsonl")
    assert list(table["id"]) == pairs.ids  # one row per input pair, in order
    # θ is not π_ref: every pair has a margin, and they differ.
    assert table.loc[table["valid"], "irm"].std() > 0
    # The paper's kept fraction, to the pair.
    assert abs(mask.sum() - 0.64 * table["valid"].sum()) <= 2
    # The subset: exactly the selected rows, as they were written in the input.
    written = Path("selected.jsonl").read_text().splitlines()
    lines = Path("train.jsonl").read_text().splitlines()
    assert written == [line for line, m in zip(lines, mask) if m]
    # Reopened without repeating any argument.
    pd.testing.assert_frame_equal(run.scores, pd.read_parquet("runs/mine/scores.parquet"))
    assert set(run.models) == {"warmup", "theta_val"}

    # TRL's DPOTrainer trains on the subset file unchanged (its own reading of the file).
    from datasets import load_dataset
    from trl import DPOConfig, DPOTrainer

    from prefsift.models.loading import load_model, load_tokenizer

    data = load_dataset("json", data_files="selected.jsonl", split="train")
    assert len(data) == int(mask.sum())
    model, ref = load_model(theta), load_model(lab / "sft_model")
    args = DPOConfig(output_dir="trl", max_steps=2, per_device_train_batch_size=4, bf16=False,
                     fp16=False, report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    DPOTrainer(model=model, ref_model=ref, args=args, train_dataset=data,
               processing_class=load_tokenizer(theta)).train()
    assert all(not np.array_equal(before[n].numpy(), p.detach().numpy())
               for n, p in model.named_parameters() if p.requires_grad)


def test_scoring_the_sft_model_as_theta_stops_before_any_table(lab, tmp_path):
    sft = str(lab / "sft_model")
    with pytest.raises(UserError, match="IRM would be 0 for every pair"):
        prefsift.score(sft, sft, lab / "train.jsonl", validation=lab / "validation.jsonl",
                       out=tmp_path / "s")
    assert not (tmp_path / "s" / "scores.parquet").exists()


def test_a_mistyped_setting_names_the_closest_one(lab, tmp_path):
    with pytest.raises(UserError, match="unknown setting 'val_l'.*did you mean 'val_lr'"):
        prefsift.score(str(lab / "sft_model"), str(lab / "sft_model"), lab / "train.jsonl",
                       val_l=0.1)
    with pytest.raises(UserError,
                       match="unknown setting 'lerning_rate'.*did you mean 'learning_rate'"):
        prefsift.warmup(str(lab / "sft_model"), lab / "train.jsonl", out=tmp_path,
                        lerning_rate=1e-3)


def test_a_temporary_run_directory_is_removed(lab, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    sft = str(lab / "sft_model")
    table = prefsift.score(sft, sft, lab / "train.jsonl", scores=["lossdiff"],
                           validation=lab / "validation.jsonl",
                           progress=False, log=lambda *a: None, val_lr=1e-2)
    assert table["lossdiff"].notna().sum() == 160
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_score_warmup_goes_from_the_sft_folder_to_the_table_in_one_command(lab, tmp_path):
    import json

    from prefsift.cli import main

    out = tmp_path / "one"
    code = main(["--threads", "1", "score", "--reference", str(lab / "sft_model"), "--warmup",
                 "--warmup-lr", "1e-3", "--train", str(lab / "train.jsonl"), "--scores", "irm",
                 "--out", str(out), "--quiet"])
    assert code == 0
    used = json.loads((out / "score_config.json").read_text())
    assert (Path(used["policy"]) == out / "warmup" / "model"
            and (out / "warmup" / "stage.json").exists())
    table = pd.read_parquet(out / "scores.parquet")
    # θ from the warm-up is what `prefsift warmup` makes with the same settings: the same IRM.
    theta = prefsift.warmup(lab / "sft_model", lab / "train.jsonl", out=tmp_path / "two",
                            learning_rate=1e-3, log=lambda *a: None)
    again = prefsift.score(theta, lab / "sft_model", lab / "train.jsonl", scores=["irm"],
                           progress=False, log=lambda *a: None)
    np.testing.assert_array_equal(table["irm"].to_numpy(), again["irm"].to_numpy())

"""The scores table on lab data: LossDiff tracks IF, every input row is present, and a killed run
resumes to the same numbers."""


import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr

from prefsift.data import load_pairs
from prefsift.lab import LabConfig, make_lab
from prefsift.models.loading import load_model, load_tokenizer
from prefsift.models.objectives import PairwiseObjective
from prefsift.scoring import gradients
from prefsift.scoring.logprobs import model_fingerprint
from prefsift.scoring.table import ScoreConfig, compute_scores
from prefsift.train.dpo import StageSettings
from prefsift.train.stage import TrainingStage

LAB = dict(seed=5, preset="tiny", n_train=160, n_validation=40, n_test_prompts=10, sft_steps=40,
           sft_warmup_steps=5, threads=1, progress=False, share_sft=False)


@pytest.fixture(scope="module")
def lab_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("scores")
    make_lab(LabConfig(**LAB), root / "lab")
    tok, ref = load_tokenizer(root / "lab" / "sft_model"), load_model(root / "lab" / "sft_model")
    pairs = load_pairs(root / "lab" / "train.jsonl")
    recs = [{"prompt": r.prompt, "chosen": r.chosen, "rejected": r.rejected}
            for r in pairs.valid_rows]
    TrainingStage(ref, ref, tok, recs, PairwiseObjective("dpo", 0.1),
                StageSettings(epochs=1, learning_rate=1e-3, batch_size=16), root / "theta",
                start_key=model_fingerprint(ref), data_key="lab", name="warmup").run()
    # The training file gets three bad rows: they must stay in every table, with their reason.
    lines = (root / "lab" / "train.jsonl").read_text().splitlines()
    lines.insert(5, '{"prompt": "sort : 1 2 =", "chosen": " 1 2"}')
    lines.insert(50, '{"prompt": "sort : 1 2 =", "chosen": " 1 2", "rejected": " 1 2"}')
    lines.append("not json")
    (root / "train_dirty.jsonl").write_text("\n".join(lines) + "\n")
    return root


def _cfg(root, out, **kw):
    return ScoreConfig(policy=str(root / "theta" / "model"),
                       reference=str(root / "lab" / "sft_model"),
                       train=str(root / "train_dirty.jsonl"),
                       validation=str(root / "lab" / "validation.jsonl"), out=str(root / out), **kw)


def test_lossdiff_tracks_if_and_every_row_is_present(lab_run):
    table = compute_scores(_cfg(lab_run, "run_a"), progress=False, log=lambda *_: None)
    assert len(table) == 163 and table["valid"].sum() == 160
    bad = table.loc[~table["valid"]]
    assert sorted(bad["reason_code"]) == ["identical", "malformed", "missing_field"]
    assert bad[["irm", "lossdiff", "if"]].isna().all().all()
    ok = table.loc[table["valid"]]
    r = pearsonr(ok["lossdiff"], ok["if"])[0]
    print(f"Pearson(LossDiff, IF) on lab data = {r:.5f}")
    assert r > 0.5
    groups = [c for c in table if c.startswith("if_")]
    np.testing.assert_allclose(ok[groups].sum(axis=1), ok["if"], rtol=1e-9, atol=1e-12)
    assert abs(ok["tif"].mean() - 0.64) <= 0.01
    stored = pd.read_parquet(lab_run / "run_a" / "scores.parquet")
    assert list(stored["id"]) == list(table["id"])


def test_killed_run_resumes_to_identical_results(lab_run, monkeypatch):
    full = compute_scores(_cfg(lab_run, "run_full"), progress=False, log=lambda *_: None)
    real = gradients.per_pair_grads
    calls = {"n": 0}

    def dies_midway(*a, **k):
        calls["n"] += 1
        if calls["n"] > 6:  # IF stage, after the first chunk of pairs was saved
            raise KeyboardInterrupt("killed")
        return real(*a, **k)

    monkeypatch.setattr(gradients, "per_pair_grads", dies_midway)
    cfg = _cfg(lab_run, "run_killed")
    with pytest.raises(KeyboardInterrupt):
        compute_scores(cfg, progress=False, log=lambda *_: None)
    assert not (lab_run / "run_killed" / "scores.parquet").exists()
    chunks = list((lab_run / "run_killed" / "cache").glob("if-*/chunk-*.npz"))
    assert chunks  # some IF work was kept
    monkeypatch.setattr(gradients, "per_pair_grads", real)
    calls["n"] = 0
    resumed = compute_scores(cfg, progress=False, log=lambda *_: None)
    cols = ["irm", "lossdiff", "if", "loss_theta", "loss_theta_val"]
    pd.testing.assert_frame_equal(resumed[cols], full[cols], check_exact=True)


def test_if_by_forward_mode_equals_per_pair_gradients_in_fp32(lab_run):
    """The scores table with if_method jvp: IF (total and per group) equal to the per-pair gradient
    route to float32 precision, and the policy log-probs from the same pass equal the engine's."""
    quiet = lambda *_: None
    ref = compute_scores(_cfg(lab_run, "run_a"), progress=False, log=quiet)
    # Without lossdiff the policy's log-probs (and IRM) come from the forward-mode pass itself.
    jvp = compute_scores(_cfg(lab_run, "run_jvp", if_method="jvp", scores="irm,if"), progress=False,
                         log=quiet)
    assert list(jvp["id"]) == list(ref["id"]) and jvp["valid"].equals(ref["valid"])
    ok = ref["valid"].to_numpy()
    cols = ["if"] + [c for c in ref if c.startswith("if_")]
    assert cols == ["if"] + [c for c in jvp if c.startswith("if_")]
    for c in cols:
        a, b = ref.loc[ok, c].to_numpy(), jvp.loc[ok, c].to_numpy()
        rel = np.abs(a - b) / np.maximum(np.abs(a), 1e-3 * np.abs(a).max())
        print(f"{c}: max relative difference {rel.max():.2e}, median {np.median(rel):.2e}")
        assert rel.max() < 1e-4 and np.median(rel) < 1e-5
    for c in ("logp_chosen", "logp_rejected", "irm"):
        diff = np.abs(jvp.loc[ok, c].to_numpy() - ref.loc[ok, c].to_numpy())
        print(f"{c}: max |difference| {diff.max():.2e} (values up to "
              f"{ref.loc[ok, c].abs().max():.1f})")
        # float32 forward passes of other batch shapes (SDPA's math backend under forward mode): the
        # sums agree to a few 1e-6 nats, the engine's own precision (logprobs.py).
        assert diff.max() < 1e-5
    same = (jvp["tif"] == ref["tif"]).to_numpy()[ok]
    print(f"TIF selections agree on {same.mean():.2%} of the pairs")
    assert same.mean() >= 0.98  # float32 rounding may swap a pair at the window's edges


def test_validation_sets_give_one_if_column_each(lab_run, tmp_path):
    """`validation_sets`: each further set's column equals the IF the default route gives with that
    set as the validation pairs (float32 precision)."""
    quiet = lambda *_: None
    lines = (lab_run / "lab" / "validation.jsonl").read_text().splitlines()
    (tmp_path / "a.jsonl").write_text("\n".join(lines[:20]) + "\n")
    (tmp_path / "b.jsonl").write_text("\n".join(lines[20:]) + "\n")
    sets = f"first={tmp_path / 'a.jsonl'},second={tmp_path / 'b.jsonl'}"
    many = compute_scores(_cfg(lab_run, "run_sets", if_method="jvp", scores="irm,if",
                               validation_sets=sets),
                          progress=False, log=quiet)
    for name, path in (("first", "a.jsonl"), ("second", "b.jsonl")):
        alone = compute_scores(ScoreConfig(policy=str(lab_run / "theta" / "model"),
                                           reference=str(lab_run / "lab" / "sft_model"),
                                           train=str(lab_run / "train_dirty.jsonl"),
                                           validation=str(tmp_path / path),
                                           out=str(lab_run / f"run_alone_{name}"), scores="irm,if"),
                               progress=False, log=quiet)
        ok = alone["valid"].to_numpy()
        a, b = alone.loc[ok, "if"].to_numpy(), many.loc[ok, f"if_val_{name}"].to_numpy()
        assert (np.median(np.abs(a - b) / np.abs(a).max()) < 1e-6
                and np.max(np.abs(a - b)) < 1e-4 * np.abs(a).max())


def test_bf16_weights_keep_lossdiff_and_if_in_step_with_fp32(lab_run):
    """The same θ and pairs with bf16 weights: LossDiff (θ_val's step taken and measured with fp32
    weights) and IF keep fp32's order. Rounding θ_val back to bf16 would leave LossDiff as noise."""
    from scipy.stats import spearmanr

    quiet = lambda *_: None
    # A small θ_val step (val_lr 1e-3), as on real models: well below bf16's resolution of θ's
    # weights.
    a = compute_scores(_cfg(lab_run, "run_fp32_small_step", val_lr=1e-3), progress=False, log=quiet)
    b = compute_scores(_cfg(lab_run, "run_bf16", dtype="bf16", val_lr=1e-3), progress=False,
                       log=quiet)
    ok = a["valid"].to_numpy()
    assert b["valid"].tolist() == a["valid"].tolist() and b.loc[ok, "lossdiff"].dtype == np.float64
    for col in ("irm", "lossdiff", "if"):
        rho = spearmanr(a.loc[ok, col], b.loc[ok, col])[0]
        assert rho > 0.9, (col, rho)

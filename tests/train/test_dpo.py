"""Training stages through TRL: every trainable parameter moves, and a finished stage is reused."""

import numpy as np
import torch

from prefsift.models.loading import LoraSettings, add_lora
from prefsift.models.objectives import PairwiseObjective
from prefsift.train.dpo import StageSettings
from prefsift.train.stage import TrainingStage
from tests.tiny import tiny_model, word_model

RECORDS = [{"prompt": f"Q{i % 10}?", "chosen": " good answer", "rejected": f" bad {i % 10}"}
           for i in range(32)]


def test_every_trainable_parameter_changes_and_stage_is_reused(word_tokenizer, tmp_path):
    tok = word_tokenizer
    ref = word_model(tok, seed=0)
    for name, policy in (("full", word_model(tok, seed=0)),
                         ("lora", add_lora(tiny_model(len(tok), seed=0),
                                           LoraSettings(r=4, alpha=8)))):
        before = {n: p.detach().clone() for n, p in policy.named_parameters() if p.requires_grad}
        for obj, sft in ((("dpo", 0.0), ("ipo", 0.0), ("hinge", 0.0), ("dpo", 1.0))
                         if name == "full" else (("dpo", 0.0),)):
            model, info = TrainingStage(policy, ref, tok, RECORDS, PairwiseObjective(obj, 0.1),
                                      StageSettings(epochs=1, learning_rate=1e-2, batch_size=8,
                                                    sft_weight=sft),
                                      tmp_path / f"{name}-{obj}-{sft}", start_key="s", data_key="d",
                                      name=obj).run()
            after = dict(model.named_parameters())
            if name == "lora":
                # The stage returns the merged model: every weight LoRA adapted must differ from the
                # base weight (B starts at zero, so a change means the adapter's B moved), and no
                # other.
                base = {n.replace("base_model.model.", "").replace(".base_layer", ""): p
                        for n, p in policy.named_parameters() if "lora_" not in n}
                adapted = {n for n in base if any(t in n for t in ("q_proj", "k_proj", "v_proj",
                                                                   "o_proj"))}
                changed = {n for n, p in base.items() if not torch.equal(p, after[n].detach())}
                assert (adapted
                        and changed
                        == adapted), f"lora/{obj}: changed {sorted(changed ^ adapted)[:5]}"
            else:
                unchanged = [n for n, p in before.items() if torch.equal(p, after[n].detach())]
                assert not unchanged, (f"{name}/{obj}: parameters that did not change: "
                                       f"{unchanged[:5]}")
            assert info["steps"] == 4 and np.isfinite(info["train_loss"])
    # The same stage again loads the saved (merged) model instead of training.
    again, info2 = TrainingStage(policy, ref, tok, RECORDS, PairwiseObjective("dpo", 0.1),
                               StageSettings(epochs=1, learning_rate=1e-2, batch_size=8),
                               tmp_path / "lora-dpo-0.0",
                               start_key="s", data_key="d", name="dpo").run()
    assert info2["key"] == info["key"] and info2["seconds"] == info["seconds"]
    x = torch.tensor([[1, 5, 6, 7]])
    with torch.no_grad():
        assert torch.allclose(again(x).logits, model(x).logits, atol=1e-5)


def test_a_stage_can_continue_from_the_model_a_stage_returned(word_tokenizer, tmp_path):
    """The arms continue from θ: a stage started from the in-memory model of an earlier stage must
    train and run its own weights (TRL patches `forward` on the instance; a deep copy of the patched
    model used to run the earlier weights). Checked against the saved folders, loaded fresh."""
    from transformers import AutoModelForCausalLM

    tok = word_tokenizer
    ref = word_model(tok, seed=0)
    settings = StageSettings(epochs=1, learning_rate=1e-2, batch_size=8)
    first, _ = TrainingStage(ref, ref, tok, RECORDS, PairwiseObjective("dpo", 0.1), settings,
                           tmp_path / "a", start_key="s", data_key="d", name="a").run()
    second, _ = TrainingStage(first, ref, tok, RECORDS[:16], PairwiseObjective("dpo", 0.1),
                            settings, tmp_path / "b", start_key="a", data_key="d2", name="b").run()
    x = torch.tensor([[1, 5, 6, 7]])
    with torch.no_grad():
        saved_a = AutoModelForCausalLM.from_pretrained(tmp_path / "a" / "model")(x).logits
        saved_b = AutoModelForCausalLM.from_pretrained(tmp_path / "b" / "model")(x).logits
        assert not torch.allclose(saved_a, saved_b, atol=1e-4)
        assert torch.allclose(first(x).logits, saved_a, atol=1e-5)
        assert torch.allclose(second(x).logits, saved_b, atol=1e-5)


def test_validation_curve_starts_at_the_starting_weights(word_tokenizer, tmp_path):
    """The first point of the validation curve is the starting model's loss: at step 0 it equals the
    DPO loss of θ against itself as reference, log 2, for every pair (margin 0)."""
    tok = word_tokenizer
    ref = word_model(tok, seed=0)
    _, info = TrainingStage(ref, ref, tok, RECORDS, PairwiseObjective("dpo", 0.1),
                          StageSettings(epochs=1, learning_rate=1e-2, batch_size=8), tmp_path / "s",
                          start_key="s", data_key="d", name="s", eval_records=RECORDS[:8],
                          eval_steps=2).run()
    first = info["log"][0]
    assert first["step"] == 0 and abs(first["eval_loss"] - np.log(2)) < 1e-6
    assert [e["step"] for e in info["log"] if "eval_loss" in e][:3] == [0, 2, 4]


def test_a_stage_from_a_folder_copies_no_model_and_shares_the_reference(word_tokenizer, tmp_path,
                                                                        monkeypatch):
    """A big model's path: the stage loads its own copy of the start from the folder, uses the
    reference object as it is (no copy, unchanged, its forward not left patched), and with LoRA
    from π_ref passes no reference model at all (TRL's adapter-disabled reference)."""
    import types

    import trl

    from prefsift.train import stage

    tok = word_tokenizer
    ref = word_model(tok, seed=0)
    ref.save_pretrained(tmp_path / "start")
    tok.save_pretrained(tmp_path / "start")
    before = {n: p.detach().clone() for n, p in ref.named_parameters()}

    def no_copy(*a, **k):
        raise AssertionError("a whole model was deep-copied")

    # prefsift's own copies
    monkeypatch.setattr(stage, "copy", types.SimpleNamespace(deepcopy=no_copy))
    seen = []
    real = trl.DPOTrainer

    class Spy(real):
        def __init__(self, *a, ref_model=None, **k):
            seen.append(ref_model)
            super().__init__(*a, ref_model=ref_model, **k)

    monkeypatch.setattr(trl, "DPOTrainer", Spy)
    settings = StageSettings(epochs=1, learning_rate=1e-2, batch_size=8)
    full, _ = TrainingStage(tmp_path / "start", ref, tok, RECORDS, PairwiseObjective("dpo", 0.1),
                            settings,
                              tmp_path / "full", start_key="s", data_key="d", name="full").run()
    lora, _ = TrainingStage(tmp_path / "start", ref, tok, RECORDS, PairwiseObjective("dpo", 0.1),
                              settings, tmp_path / "lora", start_key="s", data_key="d", name="lora",
                              lora=LoraSettings(r=4, alpha=8), start_is_reference=True).run()
    assert seen[0] is ref and seen[1] is None
    assert all(torch.equal(p, before[n]) for n, p in ref.named_parameters())
    assert not any("forward" in m.__dict__ for m in ref.modules() if not hasattr(m, "_hf_hook"))
    # The trained models moved from the start, and the LoRA one only where adapters were.
    moved = lambda m: {n for n, p in m.named_parameters()  # noqa: E731
                       if not torch.equal(p, before[n])}
    assert moved(full) == set(before)
    assert moved(lora) and all(t in n for n in moved(lora) for t in ("self_attn",))


def test_lora_over_a_bf16_reference_keeps_the_base_in_bf16_and_merges_into_fp32(word_tokenizer,
                                                                                tmp_path,
                                                                                monkeypatch):
    """Under LoRA from a bf16 π_ref, the frozen base trains in bf16. The adapters and their Adam
    state are fp32, as PEFT users expect. The saved stage is the fp32 start with the adapters
    merged: every weight LoRA does not touch is bit for bit the start's. Its step matches the fp32
    base's step up to bf16 compute."""
    import trl

    tok = word_tokenizer
    start = word_model(tok, seed=0)
    start.save_pretrained(tmp_path / "start")
    tok.save_pretrained(tmp_path / "start")
    begin = {n: p.detach().clone() for n, p in start.named_parameters()}
    seen = {}
    real = trl.DPOTrainer

    class Spy(real):
        def train(self, *a, **k):
            out = super().train(*a, **k)
            params = dict(self.model.named_parameters())
            seen["base"] = {p.dtype for n, p in params.items() if "lora_" not in n}
            seen["adapters"] = {p.dtype for n, p in params.items() if "lora_" in n}
            seen["state"] = {t.dtype for s in self.optimizer.state.values() for t in s.values()
                             if t.dim() > 0}
            return out

    monkeypatch.setattr(trl, "DPOTrainer", Spy)
    settings = StageSettings(epochs=1, learning_rate=1e-2, batch_size=8)
    got = {}
    for name, ref in (("fp32", word_model(tok, seed=0)),
                      ("bf16", word_model(tok, seed=0).to(torch.bfloat16))):
        model, _ = TrainingStage(tmp_path / "start", ref, tok, RECORDS,
                                 PairwiseObjective("dpo", 0.1), settings,
                               tmp_path / name, start_key="s", data_key="d", name=name,
                               lora=LoraSettings(r=4, alpha=8), start_is_reference=True,
                               hand_back_fp32=True).run()
        got[name] = dict(model.named_parameters())
        if name == "bf16":
            assert (seen
                    == {"base": {torch.bfloat16}, "adapters": {torch.float32},
                        "state": {torch.float32}})
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "bf16" / "model" / "model.safetensors")
    assert {t.dtype for t in saved.values()} == {torch.float32}
    adapted = {n for n in begin if any(m in n for m in ("q_proj", "k_proj", "v_proj", "o_proj"))}
    assert all(torch.equal(saved[n], begin[n]) for n in begin if n not in adapted and n in saved)
    for n in adapted:
        # The bf16-base step is the fp32-base step up to bf16: the base rounded to 8 bits of
        # mantissa and computed under autocast, with 4 Adam steps on top. Measured: 1 to 7 % of the
        # step's norm. Adapters drawn from another seed would differ by about 100 %.
        step32, step16 = got["fp32"][n] - begin[n], got["bf16"][n] - begin[n]
        assert 0 < 10 * (step16 - step32).norm() < step32.norm(), n

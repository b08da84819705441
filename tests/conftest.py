import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two pytest workers on the 2-core machine: one thread each (and in the
    # processes they start), or four threads fight over two cores. No test depends on the count.
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def word_tokenizer():
    """A word-level tokenizer built here (independent of prefsift's code): one token per
    whitespace-separated word, BOS prepended, EOS as a special token."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<bos>", "<eos>", "<unk>"]
    import json
    import re

    words = ["Q?", "yes", "no", "w", "x", "p", "long", "good", "bad", "answer", "user", "assistant",
             ":"]
    # so the test files tokenize to real ids, not <unk>
    for path in sorted((DATA / "good").glob("*.jsonl")):
        words += re.findall(r"[^\s\"{}\[\],]+",
                            " ".join(json.dumps(json.loads(l))
                                     for l in path.read_text().splitlines()))
    words = list(dict.fromkeys(w for w in words if w not in ("<pad>", "<bos>", "<eos>", "<unk>")))
    vocab = {t: i for i, t in enumerate(specials + words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit()])
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A",
                                                       special_tokens=[("<bos>", 1)])
    tok.add_special_tokens(specials)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>",
                                   eos_token="<eos>", unk_token="<unk>")

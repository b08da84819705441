"""The lab's word-level tokenizer, built deterministically in code (nothing is downloaded).

One token per word of the lab vocabulary (`task.content_words`), split on whitespace, with the
special tokens ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, ``<unk>`` = 3. Like a real LLM tokenizer
it prepends BOS to every encoded text (a `TemplateProcessing` post-processor), and special tokens
are matched in the raw text before splitting, so ``prompt + response + "<eos>"`` encodes as the
prompt's ids followed by the response's word ids and EOS — the property TRL's DPOTrainer relies on
when it takes the completion after the longest common prefix of ``tok(prompt)`` and
``tok(prompt + response)``.
"""

from __future__ import annotations

from .task import content_words

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, UNK)
MODEL_MAX_LENGTH = 256


def lab_vocab() -> dict[str, int]:
    """Word -> id, specials first; fixed order so ids never change between runs or machines."""
    words = [*SPECIAL_TOKENS, *content_words()]
    if len(set(words)) != len(words):
        raise AssertionError("duplicate word in the lab vocabulary")
    return {w: i for i, w in enumerate(words)}


def build_lab_tokenizer():
    """A `transformers.PreTrainedTokenizerFast` over the lab vocabulary (save/load round-trips)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = lab_vocab()
    core = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A",
        pair=f"{BOS} $A $B:1",
        special_tokens=[(BOS, vocab[BOS])],
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        model_max_length=MODEL_MAX_LENGTH,
        padding_side="right",
    )
    ids = (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id)
    if ids != (0, 1, 2, 3):
        raise AssertionError(f"lab special token ids are {ids}, expected (0, 1, 2, 3)")
    return tok

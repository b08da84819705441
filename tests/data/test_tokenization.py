"""prefsift tokenizes pairs into exactly the ids TRL's DPOTrainer trains on."""

import copy
import json

import pytest
from datasets import Dataset

from prefsift.data import load_pairs
from prefsift.data.tokenization import tokenize_pairs
from tests.tiny import CHAT_TEMPLATE, word_model


def _trl_token_ids(tokenizer, records):
    from trl import DPOConfig, DPOTrainer

    model = word_model(tokenizer)
    args = DPOConfig(output_dir="/tmp/prefsift-trl-tok", use_cpu=True, bf16=False, report_to=[],
                     max_length=None, dataset_num_proc=None)
    trainer = DPOTrainer(model=model, ref_model=copy.deepcopy(model), args=args,
                         train_dataset=Dataset.from_list(records), processing_class=tokenizer)
    ds = trainer.train_dataset
    return [(r["prompt_ids"], r["chosen_ids"], r["rejected_ids"]) for r in ds]


@pytest.mark.parametrize("layout",
                         ["standard_explicit", "standard_implicit", "conversational_explicit",
                          "conversational_implicit"])
def test_token_ids_equal_trl(data_dir, word_tokenizer, layout, tmp_path):
    tok = copy.deepcopy(word_tokenizer)
    tok.chat_template = CHAT_TEMPLATE
    path = data_dir / "good" / f"{layout}.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    records = [{k: v for k, v in r.items() if k in ("prompt", "chosen", "rejected")}
               for r in records]
    pairs = load_pairs(path)
    ours = tokenize_pairs(tok, [r.prompt for r in pairs.rows], [r.chosen for r in pairs.rows],
                          [r.rejected for r in pairs.rows], pairs.kind)
    theirs = _trl_token_ids(tok, records)
    assert [(list(t.prompt_ids), list(t.chosen_ids), list(t.rejected_ids)) for t in ours] == theirs
    assert all(len(t.chosen_ids) > 0 for t in ours)
    assert all(tok.unk_token_id not in t.prompt_ids + t.chosen_ids + t.rejected_ids for t in ours)

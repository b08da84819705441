"""One DPO training stage, run by tests/test_distributed.py in one process or under torchrun:
python stage_worker.py MODEL_DIR OUT_DIR BATCH_SIZE OPTIMIZER."""

import sys
from pathlib import Path

import torch

from prefsift.models import load_model, load_tokenizer
from prefsift.objectives import PairwiseObjective
from prefsift.train.dpo import StageSettings, train_stage

RECORDS = [{"prompt": f"Q{i % 10}?", "chosen": " good answer", "rejected": f" bad {i % 10}"} for i in range(32)]

if __name__ == "__main__":
    torch.set_num_threads(1)
    model_dir, out, batch, optim = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    tok, policy, ref = load_tokenizer(model_dir), load_model(model_dir), load_model(model_dir)
    train_stage(policy, ref, tok, RECORDS, PairwiseObjective("dpo", 0.1),
                StageSettings(epochs=2, learning_rate=1e-2, batch_size=batch, optimizer=optim), out,
                start_key="s", data_key="d", name="stage", log=lambda *a: None)

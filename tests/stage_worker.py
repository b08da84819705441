"""One DPO training stage, run by tests/runtime/test_distributed.py and tests/runtime/test_fsdp.py
in one process or under torchrun: python stage_worker.py MODEL_DIR OUT_DIR BATCH_SIZE OPTIMIZER
[SHARD [LORA_R]]. SHARD: ddp (the default) or fsdp; LORA_R > 0 trains LoRA adapters of that rank."""

import sys
from pathlib import Path

import torch

from prefsift.models.loading import LoraSettings, load_model, load_tokenizer
from prefsift.models.objectives import PairwiseObjective
from prefsift.runtime.sharding import set_shard
from prefsift.train.dpo import StageSettings
from prefsift.train.stage import TrainingStage

RECORDS = [{"prompt": f"Q{i % 10}?", "chosen": " good answer", "rejected": f" bad {i % 10}"}
           for i in range(32)]
EVAL = RECORDS[:8]  # a validation curve, as a run's stages have

if __name__ == "__main__":
    torch.set_num_threads(1)
    model_dir, out, batch, optim = (Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]),
                                    sys.argv[4])
    set_shard(sys.argv[5] if len(sys.argv) > 5 else "ddp")
    r = int(sys.argv[6]) if len(sys.argv) > 6 else 0
    tok, policy, ref = load_tokenizer(model_dir), load_model(model_dir), load_model(model_dir)
    TrainingStage(policy, ref, tok, RECORDS, PairwiseObjective("dpo", 0.1),
                StageSettings(epochs=2, learning_rate=1e-2, batch_size=batch, optimizer=optim), out,
                start_key="s", data_key="d", name="stage", log=lambda *a: None, eval_records=EVAL,
                eval_steps=2, lora=LoraSettings(r=r, alpha=2 * r) if r else None,
                start_is_reference=bool(r)).run()

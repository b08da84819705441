"""The policy: loading a model and tokenizer safely (a folder, a preset, the SmolLM2 GGUF), LoRA,
and the pairwise objectives (DPO, IPO, hinge) whose margin every score and training reads."""

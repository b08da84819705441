"""The planner's memory formulas (planning/memory.py) against arithmetic done by hand, the model's
own parameter counts, and its refusal of a plan that cannot fit."""

import pytest

from prefsift.core.errors import UserError
from prefsift.planning import memory
from prefsift.planning.memory import Shape, scoring_bytes, training_bytes
from prefsift.planning.plan import GIB, Plan, StagePlan


def test_shape_reads_the_weights_and_the_largest_unit_of_a_model(word_tokenizer):
    from tests.tiny import word_model

    model = word_model(word_tokenizer)
    layer = sum(p.numel() for p in model.model.layers[0].parameters())
    # the head is tied
    root = model.model.embed_tokens.weight.numel() + model.model.norm.weight.numel()
    shape = Shape.of(model)
    assert shape.weights == 2 * layer + root == sum(p.numel() for p in model.parameters())
    assert shape.largest_unit == max(layer, root)


def test_training_memory_by_hand():
    # 8e9 weights, layers of 2e8, root of 1e9; Adam; bf16 reference; 8 processes.
    s = Shape(8_000_000_000, 1_000_000_000)
    ddp = training_bytes(s, optimizer="adamw_torch", weight_bytes=2)
    # fp32 master, fp32 grads, Adam, bf16 reference: 144 GB
    assert ddp == 8e9 * (4 + 4 + 8) + 8e9 * 2
    fsdp = training_bytes(s, optimizer="adamw_torch", weight_bytes=2, processes=8, fsdp=True)
    # a shard of it all, two bf16 units, one fp32 unit gradient
    assert fsdp == 144e9 / 8 + 2 * 1e9 * 2 + 1e9 * 4
    # DDP never shards
    assert training_bytes(s, optimizer="adamw_torch", weight_bytes=2, processes=8) == ddp
    assert training_bytes(s, optimizer="sgd", weight_bytes=4) == 8e9 * (4 + 4) + 8e9 * 4
    # LoRA with 4e7 adapters from π_ref (no second model): the base in bf16, the adapters fp32 with
    # grads and Adam
    lora = Shape(8_000_000_000, 1_000_000_000, trainable=40_000_000)
    assert training_bytes(lora, optimizer="adamw_torch", weight_bytes=2, lora=True,
                          reference=False) == \
        8e9 * 2 + 4e7 * (4 + 4 + 8)


def test_scoring_memory_by_hand():
    s = Shape(8_000_000_000, 1_000_000_000)
    assert scoring_bytes(s, models=3, weight_bytes=2) == 3 * 16e9
    assert (scoring_bytes(s, models=2, weight_bytes=2, influence=8_000_000_000)
            == 2 * 16e9 + 2 * 32e9)
    assert scoring_bytes(s, models=2, weight_bytes=2, processes=8, fsdp=True,
                         influence=8_000_000_000) == \
        (2 * 16e9 + 2 * 32e9) / 8 + 2 * 1e9 * 2 + 1e9 * 4


def _plan(peak_gib: float, processes: int = 1) -> Plan:
    plan = Plan("a run", processes, "cpu")
    plan.stages = [StagePlan("scores", 10.0, 0.0, 1.0, ""),
                   StagePlan("warmup", 10.0, 0.0, peak_gib, "")]
    return plan


def test_a_plan_that_cannot_fit_is_refused_naming_what_to_change(monkeypatch):
    monkeypatch.setattr(memory, "capacity_bytes", lambda device, n: (80 * GIB, "one GPU's H100"))
    memory.check_fits(_plan(79.0), "ddp", lora=False)  # fits: nothing said
    with pytest.raises(UserError) as e:
        memory.check_fits(_plan(144.0), "ddp", lora=False)
    msg = str(e.value)
    assert ("stage warmup needs about 144.0 GiB per process, more than one GPU's H100 (80.0 GiB)"
            in msg)
    # the plan is shown
    assert "shard fsdp with more processes" in msg and "LoRA" in msg and "peak GiB" in msg
    with pytest.raises(UserError, match=r"Try: more processes \(--processes N\); or dtype bf16"):
        memory.check_fits(_plan(144.0, 8), "fsdp", lora=True)

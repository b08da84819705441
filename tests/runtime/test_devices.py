"""Device and precision: clear errors for devices this machine lacks; with bf16 weights the sums,
margins and IF products still accumulate in fp32, scores stay close to fp32's, and a training stage
keeps fp32 master weights (a small SGD step is not lost to bf16's rounding)."""

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from prefsift.core.errors import ConfigError
from prefsift.runtime.devices import accumulation_dtype, resolve_device, resolve_dtype
from tests.tiny import llama

no_cuda = pytest.mark.skipif(torch.cuda.is_available(),
                             reason="checks the errors of a machine without CUDA")


@no_cuda
def test_a_cuda_device_on_a_machine_without_one_is_a_clear_error():
    for spec in ("cuda", "cuda:1"):
        with pytest.raises(ConfigError, match="no CUDA device") as e:
            resolve_device(spec)
        assert e.value.key == "device"
    assert (resolve_device("auto") == torch.device("cpu")
            and resolve_dtype("auto", torch.device("cpu")) == "fp32")
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        resolve_dtype("fp16", torch.device("cpu"))
    with pytest.raises(ConfigError, match="must be auto, cpu, cuda or cuda:N"):
        resolve_device("gpu0")


def _tiny_lm(dtype):
    return llama(97, seed=0).to(dtype).eval()


def test_bf16_log_probs_are_summed_in_fp32():
    """The engine's sum of a bf16 model's response log-probs is a float32 and equals the float64 sum
    of the same model's per-token log-probs (its own logits, taken out to float64 by the test)."""
    from prefsift.scoring.logprobs import batch_logps

    model = _tiny_lm(torch.bfloat16)
    gen = torch.Generator().manual_seed(1)
    seqs = [(torch.randint(3, 97, (n,), generator=gen).tolist(), 4) for n in (40, 33, 57)]
    sums = batch_logps(model, seqs, pad_id=0)
    assert sums.dtype == torch.float32
    for (ids, start), got in zip(seqs, sums):
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].double()
        logp = torch.log_softmax(logits[:-1], -1).gather(-1, torch.tensor(ids[1:])[:, None])[:, 0]
        want = logp[start - 1:].sum().item()
        # bf16 addition over ~50 tokens of about -4.6 each would be off by up to about a nat
        assert abs(got.item() - want) < 1e-3 * abs(want), (got.item(), want)
    assert (accumulation_dtype(torch.bfloat16) == torch.float32
            and accumulation_dtype(torch.float64) == torch.float64)


def test_a_bf16_training_stage_keeps_fp32_master_weights(tmp_path):
    """θ_val-like stage: SGD with a step far below bf16's resolution still moves the fp32 weights
    that the stage saves, and the model handed back is bf16 again (for bf16 scoring)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    from prefsift.models.objectives import PairwiseObjective
    from prefsift.train import StageSettings, TrainingStage

    words = [f"w{i}" for i in range(90)]
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(["<pad>", "<s>", "</s>"] + words)},
                                    unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", bos_token="<s>",
                                  eos_token="</s>")
    policy = _tiny_lm(torch.bfloat16)
    rng = np.random.default_rng(0)
    recs = [{"prompt": " ".join(rng.choice(words, 5)),
             "chosen": " " + " ".join(rng.choice(words, 4)),
             "rejected": " " + " ".join(rng.choice(words, 4))} for _ in range(16)]
    theta_val, info = TrainingStage(policy, policy, tok, recs, PairwiseObjective("dpo", 0.1),
                                  StageSettings(epochs=1, learning_rate=1e-4, batch_size=8,
                                                optimizer="sgd"),
                                  tmp_path / "stage", start_key="bf16-start", data_key="d",
                                  name="theta_val").run()
    assert next(theta_val.parameters()).dtype == torch.bfloat16
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "stage" / "model", dtype=torch.float32)
    start = {n: p.float() for n, p in policy.named_parameters()}
    moved = {n: (p - start[n]).abs().max().item() for n, p in saved.named_parameters()
             if n in start}
    assert max(moved.values()) > 0, "no weight moved"
    # Many weights moved by less than a quarter of a bf16 step at their own value: in bf16 weights
    # any change is at least half a step (a representable neighbour), so only fp32 masters can hold
    # these.
    tiny = 0
    for n, p in saved.named_parameters():
        if n not in start:
            continue
        x, d = start[n], (p.detach() - start[n]).abs()
        ulp = torch.exp2(torch.floor(torch.log2(x.abs().clamp(min=1e-30))) - 7)
        tiny += int(((d > 0) & (d < 0.25 * ulp)).sum())
    assert tiny > 0, moved


def test_bf16_scores_track_fp32_scores(tmp_path):
    """IRM and IF of a bf16 model against the same model in fp32, on the same pairs: close, and in
    the same order (this is a sanity bound; the measured table is in benchmarks/README.md)."""
    from prefsift.data.tokenization import TokenizedPair
    from prefsift.models.objectives import PairwiseObjective
    from prefsift.scoring.influence import InfluenceSettings, compute_influence
    from prefsift.scoring.logprobs import LogprobSettings, compute_pair_logps

    gen = torch.Generator().manual_seed(3)
    pairs = [TokenizedPair(prompt_ids=torch.randint(3, 97, (6,), generator=gen).tolist(),
                           chosen_ids=torch.randint(3, 97, (int(n),), generator=gen).tolist(),
                           rejected_ids=torch.randint(3, 97, (int(m),), generator=gen).tolist())
             for n, m in torch.randint(4, 12, (24, 2), generator=gen)]
    ref32 = _tiny_lm(torch.float32)
    pol32 = _tiny_lm(torch.float32)
    with torch.no_grad():
        for p in pol32.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    obj = PairwiseObjective("dpo", 0.5)
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        ref, pol = (ref32.to(dtype) if dtype != torch.float32 else ref32,
                    pol32.to(dtype) if dtype != torch.float32 else pol32)
        r = compute_pair_logps(ref, pairs, 0, LogprobSettings(), progress=False)
        p = compute_pair_logps(pol, pairs, 0, LogprobSettings(), progress=False)
        irm = obj.margin(torch.as_tensor(p.chosen), torch.as_tensor(p.rejected),
                         torch.as_tensor(r.chosen), torch.as_tensor(r.rejected)).numpy()
        res = compute_influence(pol, pairs[:16], (r.chosen[:16], r.rejected[:16]), pairs[16:],
                                (r.chosen[16:], r.rejected[16:]), obj, 0,
                                InfluenceSettings(method="loop"), progress=False)
        out[name] = (np.asarray(p.chosen), irm, res.total)
        if dtype != torch.float32:
            ref32, pol32 = ref32.float(), pol32.float()
    (lp32, irm32, if32), (lp16, irm16, if16) = out["fp32"], out["bf16"]
    assert np.all(np.isfinite(if16)) and if16.dtype == np.float64
    assert np.max(np.abs(lp16 - lp32)) < 0.5  # nats, over sequences of up to 17 tokens
    assert spearmanr(irm16, irm32)[0] > 0.9 and spearmanr(if16, if32)[0] > 0.8


@no_cuda
def test_a_run_asking_for_cuda_here_stops_before_any_work(tmp_path):
    from prefsift.pipeline import RunConfig, check_run_inputs

    cfg = RunConfig(out=str(tmp_path / "run"), device="cuda")
    with pytest.raises(ConfigError, match="no CUDA device") as e:
        check_run_inputs(cfg)
    assert e.value.key == "device" and not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="is the run's: set the top-level `dtype`"):
        RunConfig(scores={"dtype": "bf16"})


@no_cuda
def test_the_gpu_check_skips_cleanly_without_cuda():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120)
    assert (proc.returncode == 0
            and "no CUDA device here: skipped" in proc.stdout), proc.stderr[-2000:]

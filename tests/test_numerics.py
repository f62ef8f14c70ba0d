"""The numeric path is chosen per machine: fp32 where bf16 is emulated (AVX2), bf16 where native."""
import json
import os
import subprocess
import sys

import pytest

from puyu_lab.numerics import NumericPath, choose, cpu_native_bf16, resolve

AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
AMX = {"avx2": True, "avx512f": True, "avx512_bf16": True, "amx_bf16": True}


def test_native_bf16_needs_the_flags_and_no_isa_limit():
    assert cpu_native_bf16({}, {"avx2": True})[0] is False
    assert "emulated" in cpu_native_bf16({}, {"avx2": True})[1]
    assert cpu_native_bf16({}, AMX)[0] is True
    native, why = cpu_native_bf16({"ATEN_CPU_CAPABILITY": "avx2"}, AMX)
    assert not native and "ATEN_CPU_CAPABILITY" in why
    native, why = cpu_native_bf16({"ONEDNN_MAX_CPU_ISA": "AVX2"}, AMX)
    assert not native and "ONEDNN_MAX_CPU_ISA" in why
    assert cpu_native_bf16({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"}, AMX)[0] is True


def test_a_config_setting_wins_and_says_so():
    auto = choose("cpu")
    assert resolve(None, "cpu") is auto
    forced = resolve(not auto.bf16, "cpu")
    assert forced.dtype != auto.dtype and forced.forced and "set in the config" in forced.reason
    assert resolve(auto.bf16, "cpu") == auto


def _in_child(code: str, env: dict) -> str:
    full = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=600,
                          check=True).stdout


def test_forced_avx2_picks_fp32_with_its_reason():
    out = json.loads(_in_child("import json; from puyu_lab.numerics import choose; "
                               "print(json.dumps(choose('cpu').to_dict()))", AVX2).strip().splitlines()[-1])
    path = NumericPath(**out)
    assert path.dtype == "fp32" and path.muon_ns_dtype == "fp32" and not path.native_bf16
    assert "emulated" in path.reason and "fp32" in path.reason
    assert path.probe["fp32"] > 0 and path.probe["bf16"] > 0


@pytest.mark.slow
def test_pretraining_under_forced_avx2_records_fp32_in_the_manifest(tmp_path):
    """A tiny real pretraining run in a child process with the AVX2 paths forced: its manifest says
    fp32, Newton–Schulz in fp32, and why."""
    code = f"""
import json
from puyu_lab.workspace import Workspace
from puyu_lab.data.pipeline import prepare
from puyu_lab.data.sources import load_sources
from puyu_lab.pretrain.model import ModelPreset
from puyu_lab.pretrain.train import PretrainConfig, pretrain, train_tokenizer
ws = Workspace({str(tmp_path / 'ws')!r})
prepare(raw=load_sources(["news-zh"], limit_per_source=200, seed=1), show_progress=False).export(ws)
train_tokenizer(ws, 3072)
events = []
pretrain(ws, PretrainConfig(preset=ModelPreset(hidden_size=256, num_layers=1, num_heads=4, num_kv_heads=2,
         intermediate_size=256, vocab_size=3072, block_size=32), batch_size=2, max_steps=3, warmup_steps=1,
         eval_every=3, save_every=3, sample_every=0, eval_blocks=2, progress_bar=False),
         on_event=lambda e: events.append(e.kind))
m = ws.get("model/base").manifest
print(json.dumps({{"metrics": m["metrics"], "numerics": m["params"]["numerics"], "events": events}}))
"""
    out = json.loads(_in_child(code, AVX2).strip().splitlines()[-1])
    assert out["metrics"]["precision"] == "fp32" and out["metrics"]["muon_ns_dtype"] == "fp32"
    assert out["numerics"]["dtype"] == "fp32" and "emulated" in out["numerics"]["reason"]
    assert "numerics" in out["events"]


def test_bf16_cpu_runs_pad_batches_to_a_multiple_and_the_padding_changes_no_loss():
    """oneDNN builds bf16 kernels per input shape: SFT batches pad to a multiple of 32 there (103 s → 73 s
    for the quick run on an AMX Xeon), and only there (fp32 pays for the extra padding)."""
    import torch
    from transformers import LlamaForCausalLM

    from puyu_lab.finetune.dataset import IGNORE, Collator
    from puyu_lab.pretrain.model import ModelPreset, llama_config

    assert NumericPath("bf16", "native", device="cpu").pad_multiple == 32
    assert NumericPath("fp32", "emulated bf16", device="cpu").pad_multiple is None
    assert NumericPath("bf16", "Ampere", device="cuda").pad_multiple is None
    batch = [{"input_ids": [5, 6, 7], "labels": [IGNORE, 6, 7]},
             {"input_ids": list(range(10, 50)), "labels": list(range(10, 50))}]
    padded, plain = Collator(0, 32)(batch), Collator(0)(batch)
    assert plain["input_ids"].shape == (2, 40) and padded["input_ids"].shape == (2, 64)
    assert (padded["labels"][:, 40:] == IGNORE).all() and padded["attention_mask"].sum(1).tolist() == [3, 40]
    torch.manual_seed(0)
    preset = ModelPreset(hidden_size=256, num_layers=1, num_heads=4, num_kv_heads=2, intermediate_size=256,
                         vocab_size=256, block_size=64)
    model = LlamaForCausalLM(llama_config(preset)).eval()
    with torch.no_grad():
        a, b = model(**plain).loss.item(), model(**padded).loss.item()
    assert abs(a - b) < 1e-5, (a, b)

"""A model of another architecture, as a learner would bring it, through every stage: a Qwen2-shaped
stand-in (``tests/standin.py``: its own byte-level BPE ``tokenizer.json``, no ``tokenizer.model``)
fine-tuned with LoRA and QLoRA from its directory, merged, converted by llama.cpp's converter (its
pre-tokenizer named by its regex), quantized down the ladder (and with an importance matrix) and measured, drawn
on the trade-off panel, evaluated and run as an agent.
No stage names a Llama module: LoRA finds the model's own linear layers."""
from __future__ import annotations

import json
import re

import pytest

from .conftest import ROOT
from .standin import build_standin

pytestmark = pytest.mark.slow


def test_no_stage_names_llama_modules():
    names = re.compile(r"""["'](q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj|lm_head)["']""")
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in (ROOT / "puyu_lab").rglob("*.py")
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if names.search(line)]
    assert hits == []


def test_a_qwen2_model_goes_through_finetune_merge_ladder_eval_and_agent(layers, tmp_path):
    from llama_cpp import Llama

    from puyu_lab.agent.config import AgentConfig
    from puyu_lab.agent.entry import run as run_agent
    from puyu_lab.artifacts import ladder_files, load_corpus
    from puyu_lab.deploy.config import DeployConfig
    from puyu_lab.deploy.entry import run as run_deploy
    from puyu_lab.deploy.quantize import weight_types
    from puyu_lab.eval.config import EvalConfig
    from puyu_lab.eval.entry import run as run_eval
    from puyu_lab.finetune.data import SFTDataSettings
    from puyu_lab.finetune.train import SFTConfig, finetune
    from puyu_lab.models.tokenizer import load_tokenizer

    ws = layers.workspace("corpus", tmp_path / "ws")
    base = build_standin(tmp_path / "qwen2-standin", list(load_corpus(ws, "train")["text"])[:600])
    assert not (base / "tokenizer.model").exists()
    assert json.loads((base / "config.json").read_text())["architectures"] == ["Qwen2ForCausalLM"]
    data = SFTDataSettings(dialogs_zh=30, dialogs_en=10, sentiment_max=20, tool_examples=10, tool_heldout=5,
                           self_repeat=1)
    for method in ("qlora", "lora"):  # LoRA last: its merged model is the model/sft the later stages use
        res = finetune(ws, SFTConfig(method=method, base=str(base), max_steps=3, batch_size=4, max_length=160,
                                     sample_every=0, save_every=3, progress_bar=False, data=data, bf16=False),
                       score=False)
        assert res.metrics["method"] == method and res.metrics["eval_loss"] is not None
        adapter = json.loads((ws.get("adapter/sft").path / "adapter_config.json").read_text())
        assert set(adapter["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                  "down_proj", "lm_head"}  # found in the model, not assumed
    sft = ws.get("model/sft").path
    assert json.loads((sft / "config.json").read_text())["architectures"] == ["Qwen2ForCausalLM"]
    tok = load_tokenizer(sft)  # tokenizer.json only

    run_deploy(ws, DeployConfig(levels=("F16", "Q8_0", "Q4_K_M", "Q2_K"), n_tokens=256, n_ctx=128, decode_tokens=8,
                                transformers=("HF fp32",)))
    files = ladder_files(ws)
    assert "Q4_K" in weight_types(files["Q4_K_M"])
    rows = {r["level"]: r for r in json.loads((ws.get("quant/sft").path / "results.json").read_text())}
    assert rows["HF fp32"]["kl_mean"] < 1e-6  # the converter kept the Qwen2 model exact
    assert rows["Q8_0"]["kl_mean"] < rows["Q2_K"]["kl_mean"]
    # the low levels quantized with an importance matrix too (llama-imatrix on held-out text), measured beside
    # them: the same tensor types, other values
    imat = ladder_files(ws, imatrix=True)
    for lv in ("Q4_K_M", "Q2_K"):
        assert weight_types(imat[f"{lv}+imatrix"]) == weight_types(files[lv])
        assert imat[f"{lv}+imatrix"].read_bytes() != files[lv].read_bytes()
        assert rows[f"{lv}+imatrix"]["kl_mean"] > 0
    # an i-quant that exists only with an importance matrix: smaller than Q2_K, its own type in the file
    assert weight_types(imat["IQ2_XS+imatrix"])["IQ2_XS"] > 0 and rows["IQ2_XS+imatrix"]["size_mb"] < rows["Q2_K"]["size_mb"]
    # … and drawn: one point per measured row on the trade-off chart, the Pareto frontier beside them
    from puyu_lab.artifacts import load_quant_results
    from puyu_lab.panels.deploy import QuantTradeoffPanel, pareto

    rws, detail = load_quant_results(ws)
    panel = QuantTradeoffPanel(rws, detail, tok, files=imat)
    assert list(panel.fig.data[0].text) == [r["level"] for r in rws]
    front = pareto(rws)
    assert len(panel.fig.data) == 2 and list(panel.fig.data[1].x) == [r["size_mb"] for r in front]
    assert all(not (o["size_mb"] <= f["size_mb"] and o["kl_mean"] < f["kl_mean"]) for f in front for o in rws if o is not f)
    # a model brought by its path, not made by the chain: the stand-in's own directory, a GGUF file of it (its
    # tokenizer read by llama.cpp itself) and a quantized GGUF file (the ladder requantized from its Q8_0)
    import shutil

    from puyu_lab.deploy.pipeline import source

    own = tmp_path / "brought"
    own.mkdir()
    shutil.copyfile(files["F32"], own / "my-model.f32.gguf")
    shutil.copyfile(files["Q8_0"], own / "my-model.q8.gguf")
    for path, name, ref in [(base, "qwen2-standin", "F32"), (own / "my-model.f32.gguf", "my-model.f32", "F32"),
                            (own / "my-model.q8.gguf", "my-model.q8", "Q8_0")]:
        run_deploy(ws, DeployConfig(model=str(path), levels=("Q8_0", "Q4_K_M"), n_tokens=256, n_ctx=128,
                                    decode_tokens=8, transformers=("HF fp32",), imatrix=False))
        gg, qa = ws.get(f"gguf/{name}"), ws.get(f"quant/{name}")
        assert gg.manifest["params"]["source"] == str(path) and gg.manifest["parents"] == []
        got = {r["level"]: r for r in json.loads((qa.path / "results.json").read_text())}
        assert next(iter(got)) == ref and got[ref]["kl_mean"] == 0 and got["Q4_K_M"]["kl_mean"] > 0
        assert ("HF fp32" in got) == path.is_dir()  # a directory gets its transformers row, a file cannot
        assert "Q4_K" in weight_types(ladder_files(ws, str(path))["Q4_K_M"])
        if path.suffix == ".gguf":
            gtok = source(ws, str(path)).tokenizer()
            for text in ("今天天气很好，我们去公园散步。", "Hello world, it's 2024! 123456"):
                assert gtok(text, add_special_tokens=False)["input_ids"] == tok(text, add_special_tokens=False)["input_ids"]
        brows, bdetail = load_quant_results(ws, str(path))
        assert list(QuantTradeoffPanel(brows, bdetail, source(ws, str(path)).tokenizer()).fig.data[0].text) == list(got)
    # the requantized ladder is measured against its own Q8_0 reference: F16 and F32 above it are not made
    assert set(ladder_files(ws, str(own / "my-model.q8.gguf"))) == {"Q8_0", "Q4_K_M"}
    llm = Llama(str(files["F32"]), verbose=False, n_ctx=128)
    for text in ("今天天气很好，我们去公园散步。", "Hello world, it's 2024! 123456", "<|im_start|>user\n你好<|im_end|>\n"):
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == tok(text, add_special_tokens=False)["input_ids"]
    llm.close()

    run_eval(ws, EvalConfig(n=4, ppl_docs=2, models=("model/sft",), optional_models=(), levels=("Q4_K_M",),
                            progress_bar=False))
    m = ws.get("eval/chain").metrics
    assert set(m) == {"sft", "sft-Q4_K_M"} and "sentiment" in m["sft"]
    run_agent(ws, AgentConfig(n_tasks=3, levels=("Q4_K_M",), max_new_tokens=24))
    a = ws.get("agent/eval").metrics
    assert a["arithmetic_tasks"] == 3 and "Q4_K_M_arithmetic_with_tools" in a

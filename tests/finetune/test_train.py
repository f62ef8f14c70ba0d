"""Full / LoRA / QLoRA runs, their memory, merge = adapter, stop/resume, clear errors (tiny real models)."""
import json
import math
import subprocess
import sys

import pytest

from puyu_lab.finetune.train import finetune
from puyu_lab.workspace import MissingArtifact, Workspace

from .helpers import SMALL_DATA, cfg, ws  # noqa: F401 (ws: a fixture)

pytestmark = pytest.mark.slow


def test_three_methods_run_and_qlora_holds_least_memory(ws):
    mem = {}
    for method in ("full", "lora", "qlora"):
        res = finetune(ws, cfg(method=method), save=False)
        # a loss that trains: finite, below a uniform guess over the vocabulary (ln 3072 = 8.03 nats)
        assert res.steps == 4 and 0 < res.metrics["eval_loss"] < math.log(3072), res.metrics["eval_loss"]
        mem[method] = res.memory
        print(method, res.memory, res.metrics["trainable_parameters"])
    assert mem["qlora"]["total_mb"] < mem["lora"]["total_mb"] < mem["full"]["total_mb"]
    assert mem["qlora"]["weights_mb"] < mem["lora"]["weights_mb"]  # 4-bit base weights
    assert mem["lora"]["optimizer_mb"] < mem["full"]["optimizer_mb"] / 2  # only the adapters have Adam state


def test_sft_data_is_kept_when_the_settings_are_the_same(ws):
    """sft/data is rebuilt only when its settings change, a tuple setting included (the manifest stores it as JSON:
    read back as a list, it once looked changed, so every LoRA / QLoRA run of the lab rebuilt sft/data and left
    model/sft made from an older one — the grader flagged the honest bundle's lineage)."""
    from dataclasses import replace

    with_forms = cfg(data=replace(SMALL_DATA, date_questions=("What day is {days} days after {date}?",)))
    finetune(ws, with_forms, save=False)
    made = ws.get("sft/data").id
    finetune(ws, with_forms, save=False)
    assert ws.get("sft/data").id == made, "the same settings rebuilt sft/data"
    finetune(ws, cfg(), save=False)  # other settings: rebuilt
    assert ws.get("sft/data").id != made


def test_merged_model_equals_adapter_model(ws):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    res = finetune(ws, cfg(method="lora", learning_rate=1e-2), save=True)
    assert ws.exists("adapter/sft") and ws.exists("model/sft")
    sft = ws.get("model/sft")
    assert {"xtuner_config.py", "sft_config.json", "tokenizer.model", "selfcheck.json"} <= {p.name for p in sft.path.iterdir()}
    assert [p["name"] for p in sft.parents] == ["model/base", "sft/data", "adapter/sft"]
    base = AutoModelForCausalLM.from_pretrained(str(ws.get("model/base").path))
    adapter = PeftModel.from_pretrained(base, str(ws.get("adapter/sft").path)).eval()
    merged = AutoModelForCausalLM.from_pretrained(str(sft.path)).eval()
    ids = torch.tensor([[1, 3, 200, 300, 400, 4, 500, 600, 700, 800]])
    with torch.no_grad():
        a, m = adapter(ids).logits, merged(ids).logits
    diff = (a - m).abs().max().item()
    assert diff <= 1e-4, diff  # fp32 merge: only summation-order rounding
    assert (merged.get_output_embeddings().weight - base.get_output_embeddings().weight).abs().max() > 0  # it changed
    gen = json.loads((sft.path / "generation_config.json").read_text())
    assert gen["eos_token_id"] == [2, 4]  # </s> and <|im_end|> both stop generation
    assert "<|im_start|>" in json.loads((sft.path / "tokenizer_config.json").read_text()).get("chat_template", "") or \
        (sft.path / "chat_template.jinja").is_file()
    # the self-check: every held-out paraphrase answered, each marked by whether it names the
    # assistant, and the metric is their share (what the model reaches: test_full_finetune_learns_...)
    from puyu_lab.artifacts import load_sft_data

    rows = json.loads((sft.path / "selfcheck.json").read_text())["selfcog"]
    assert [r["prompt"] for r in rows] == [h["prompt"] for h in load_sft_data(ws, "selfcog_heldout")] and len(rows) == 12
    assert [r["ok"] for r in rows] == [SMALL_DATA.assistant_name in r["answer"] for r in rows]
    assert res.metrics["selfcog_heldout_acc"] == sum(r["ok"] for r in rows) / 12


def test_full_finetune_learns_self_cognition(ws, tmp_path):
    """Trained long enough, the tiny model answers held-out paraphrases with its name (the quick
    profile's model: 12/12; this one: 12/12 after 15 epochs), and the over-fitting that costs is measured: each
    unrelated control prompt's answer, and the share of them that is the self-introduction.

    No bound on that share: with the camp's one self-introduction for both languages, this near-blank model (six
    steps of pretraining) answered all 4 controls with it (twice); with 60 dialogs 4, with 120 reviews 3, with 120
    reviews and 40 dialogs 4, with 120 dialogs 2 (and then named itself in only 9 of 12); the landing CI's quick
    chain 3. One control more or less is noise, not a property of the recipe; the lab shows the share and
    teaches the remedy."""
    import shutil

    from puyu_lab.artifacts import load_sft_data
    from puyu_lab.models import HFModel

    own = Workspace(tmp_path / "ws")  # a copy: the other tests keep the module's sft/data and model/sft
    shutil.copytree(ws.root, own.root, symlinks=True, dirs_exist_ok=True)
    name = SMALL_DATA.assistant_name
    base = HFModel.load("model/base", ws=own)
    held = [h["prompt"] for h in load_sft_data(own, "selfcog_heldout")]
    assert sum(name in base.reply([{"role": "user", "content": q}], 40) for q in held) == 0  # it never heard the name
    events = []
    res = finetune(own, cfg(max_steps=-1, epochs=15, sample_every=0, save_every=100000, log_every=50,
                            sample_tokens=40), save=False, on_event=events.append)
    m = res.metrics
    print("held-out self-cognition", m["selfcog_heldout_acc"], "control collapse", m["control_collapse"],
          "steps", res.steps, "eval loss", m["eval_loss"])
    assert m["selfcog_heldout_acc"] >= 11 / 12, m  # measured 12/12; the lab's self-check asks for 90 %
    from puyu_lab.contracts.dialogs import CONTROL_PROMPTS

    check = [e.data for e in events if e.kind == "selfcheck"][-1]
    assert list(check["control"]) == list(CONTROL_PROMPTS) and all(isinstance(a, str) and a for a in check["control"].values())
    assert m["control_collapse"] == check["collapse"] == sum(name in a for a in check["control"].values()) / len(CONTROL_PROMPTS)


def test_stop_then_resume_on_one_curve(ws):
    from puyu_lab.events import StopFlag

    stop = StopFlag()

    def on_event(e):
        if e.kind == "log" and e.data["step"] >= 2:
            stop.set()

    first = finetune(ws, cfg(max_steps=6), on_event=on_event, stop=stop, save=False)
    assert first.stopped and first.steps < 6
    second = finetune(ws, cfg(max_steps=6), resume=True, save=False)
    assert second.steps == 6 and not second.stopped
    steps = [h["step"] for h in second.history if "loss" in h]
    assert steps[0] <= first.steps and steps[-1] == 6 and steps == sorted(steps)


def test_missing_base_names_the_pretrain_lab(tmp_path):
    with pytest.raises(MissingArtifact, match=r"02_pretrain\.ipynb"):
        finetune(Workspace(tmp_path / "empty"), cfg())


def test_cli_check_reports_lines(tmp_path):
    f = tmp_path / "c.jsonl"
    f.write_text('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n[1]\n',
                 encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "puyu_lab", "finetune", "check", str(f)], capture_output=True, text=True)
    assert out.returncode == 1 and f"{f}:line 2: expected an object" in out.stdout and "1 valid record(s), 1 bad" in out.stdout


def test_live_selfcog_accuracy_and_the_base_context_are_reported(ws):
    events = []
    res = finetune(ws, cfg(max_length=160), save=False, score=False, on_event=events.append)
    m = res.metrics
    assert m["base_context"] == 64 and m["max_length"] == 160
    warn = [e.data["message"] for e in events if e.kind == "warning" and "never trained" in e.data["message"]]
    assert warn and "positions 64–159" in warn[0]
    # held-out self-cognition accuracy at each sample (steps 2 and 4), shown with the samples in the panel
    assert [c["step"] for c in m["selfcog_curve"]] == [2, 4] and all(0 <= c["acc"] <= 1 for c in m["selfcog_curve"])
    samples = [e.data["samples"] for e in events if e.kind == "sample"]
    assert len(samples) == 2 and any("held-out self-cognition" in k for k in samples[0])
    quiet = []
    finetune(ws, cfg(max_length=64, max_steps=1, sample_every=0), save=False, score=False, on_event=quiet.append)
    assert not [e for e in quiet if e.kind == "warning" and "never trained" in e.data["message"]]

"""作业 of labs 03, 04 and 05: each task's check fails without its evidence and passes with the evidence its starter
cell makes — the notebook's own cell, run here on a small real workspace (the tiny chain of tests/conftest.py, a
parameter line made smaller where the task's own sizes would take longer than a test should) — and fails on evidence
that was done wrongly."""
from __future__ import annotations

import json
import re
import shutil

import pytest

import puyu_lab as pl
from puyu_lab import checks
from puyu_lab.workspace import Workspace

from ..conftest import ROOT

TASKS = {"03_finetune": ("finetune.hw_paraphrase", "finetune.hw_lora_rank"),
         "04_preference": ("preference.hw_pairs", "preference.hw_beta"),
         "05_deploy": ("deploy.hw_level", "deploy.hw_mix")}


def _cells(lab: str) -> list[dict]:
    return json.loads((ROOT / "labs" / f"{lab}.ipynb").read_text(encoding="utf-8"))["cells"]


def starter(lab: str, head: str, **lines: str) -> str:
    """The source of the cell tagged ``homework`` that starts with ``# 作业 <head>`` in ``labs/<lab>.ipynb``; each
    keyword replaces the line that assigns that name (``steps="1"``)."""
    found = [("".join(c["source"]), c) for c in _cells(lab) if c["cell_type"] == "code"
             and "".join(c["source"]).startswith(f"# 作业 {head}")]
    assert len(found) == 1, f"{lab}: one cell starts with '# 作业 {head}'"
    src, cell = found[0]
    assert "homework" in cell["metadata"].get("tags", []), f"{lab}: the {head} cell is tagged homework"
    for name, value in lines.items():
        src, n = re.subn(rf"^{re.escape(name)} = .*$", f"{name} = {value}", src, count=1, flags=re.M)
        assert n == 1, f"{head}: no line assigns {name}"
    return src


def run_cell(src: str, ns: dict) -> dict:
    ns.setdefault("pl", pl)
    exec(compile(src, "<homework>", "exec"), ns)
    return ns


def result(lab: str, ws: Workspace, task: str):
    card = checks.homework(lab, ws, display=False, write=False)
    return next(r for r in card.results if r.id == task)


def edit_json(path, edit) -> None:
    d = json.loads(path.read_text(encoding="utf-8"))
    edit(d)
    path.write_text(json.dumps(d, ensure_ascii=False), encoding="utf-8")


def remake(ws: Workspace, name: str) -> None:
    """``name`` made again (a new version with the same files): what a learner's re-run of its lab leaves."""
    old = ws.get(name)
    with ws.write(name, kind=old.kind, stage=old.stage, params=old.params) as w:
        for p in old.path.iterdir():
            if p.name != "manifest.json":
                shutil.copy2(p, w.path / p.name)
        w.metrics.update(old.metrics)


@pytest.fixture(autouse=True)
def quiet_display(monkeypatch):
    """The cells' ``display`` (imported from IPython) prints nothing here."""
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: None)


def test_every_task_has_a_tagged_cell_and_the_section_ends_with_its_card():
    for lab, tasks in TASKS.items():
        assert [c.id for c in checks.select(lab, homework=True)] == list(tasks)
        assert [c.homework for c in checks.select(lab, homework=True)] == ["basic", "advanced"]
        for t in tasks:
            starter(lab, t + " ")
        cells = _cells(lab)
        code = [c for c in cells if c["cell_type"] == "code"]
        last = "".join(code[-1]["source"])
        assert f'checks.homework("{lab}", ws)' in last and "homework" not in code[-1]["metadata"].get("tags", [])
        heading = next(i for i, c in enumerate(cells) if "".join(c["source"]).startswith("## 作业 Homework"))
        assert heading > max(i for i, c in enumerate(cells) if "## 更进一步 Go further" in "".join(c["source"]))
        section = [c for c in cells[heading:] if c["cell_type"] == "code"]
        assert all("homework" in c["metadata"].get("tags", []) for c in section[:-1]), \
            f"{lab}: every starter cell of the section is tagged homework"
        for t in tasks:  # each task's markdown names its check
            assert any(f"`{t}`" in "".join(c["source"]) for c in cells[heading:] if c["cell_type"] == "markdown")
        closing = "".join(cells[-1]["source"])
        assert "puyu-lab submit --learner" in closing and "workspace/report/index.html" in closing


# ---- 03 finetune ---------------------------------------------------------------------------------------------------
def _sft_ns(ws: Workspace, **cfg) -> dict:
    from dataclasses import replace

    from puyu_lab.finetune.data import SFTDataSettings
    from puyu_lab.finetune.train import SFTConfig, finetune, load_sft_data

    data = SFTDataSettings(**ws.get("sft/data").params["data"])  # sft/data's own settings: it is not rebuilt
    return {"ws": ws, "cfg": SFTConfig(data=data, batch_size=4, max_length=160, bf16=False, **cfg),
            "assistant_name": data.assistant_name, "load_sft_data": load_sft_data, "finetune": finetune,
            "replace": replace}


@pytest.mark.slow
def test_finetune_paraphrase(layers, tmp_path):
    ws = layers.workspace("sft", tmp_path / "ws")
    task = "finetune.hw_paraphrase"
    assert result("03_finetune", ws, task).status == "missing"
    run_cell(starter("03_finetune", task + " "), _sft_ns(ws, sample_tokens=8))
    r = result("03_finetune", ws, task)
    assert r.ok and r.consistent and "named" in r.figure and "unrelated" in r.figure, r
    answers = ws.get("homework/finetune/paraphrase").file("answers.json")
    before = answers.read_text(encoding="utf-8")
    # a question sft/data already holds (a held-out paraphrase) is not the learner's own
    held = ws.get("sft/data").file("selfcog_heldout.jsonl").read_text(encoding="utf-8").splitlines()[0]
    edit_json(answers, lambda rows: rows[0].update(prompt=json.loads(held)["prompt"]))
    r = result("03_finetune", ws, task)
    assert not r.ok and "from sft/data" in r.figure
    # fewer than five questions of a kind
    answers.write_text(before, encoding="utf-8")
    edit_json(answers, lambda rows: rows.pop(0))
    assert not result("03_finetune", ws, task).ok
    # a question without its answer
    answers.write_text(before, encoding="utf-8")
    edit_json(answers, lambda rows: rows[1].pop("answer"))
    r = result("03_finetune", ws, task)
    assert not r.ok and "without an answer" in r.figure
    # the cell itself refuses a question of sft/data
    src = starter("03_finetune", task + " ").replace('"请问该怎么称呼你？"', json.dumps(json.loads(held)["prompt"]))
    with pytest.raises(ValueError, match="sft/data"):
        run_cell(src, _sft_ns(ws, sample_tokens=8))
    # model/sft made again since: the answers are an earlier model's
    answers.write_text(before, encoding="utf-8")
    assert result("03_finetune", ws, task).ok
    remake(ws, "model/sft")
    r = result("03_finetune", ws, task)
    assert not r.ok and "earlier model/sft" in r.figure


@pytest.mark.slow
def test_finetune_lora_rank(layers, tmp_path):
    ws = layers.workspace("sft", tmp_path / "ws")
    task = "finetune.hw_lora_rank"
    assert result("03_finetune", ws, task).status == "missing"
    ids = {n: ws.get(n).id for n in ("sft/data", "model/sft", "model/base")}
    run_cell(starter("03_finetune", task + " ", ranks="[2, 8]", steps="2"), _sft_ns(ws))
    assert {n: ws.get(n).id for n in ids} == ids, "the runs rewrite no chain artifact"
    r = result("03_finetune", ws, task)
    assert r.ok and r.figure.startswith("r=2: ") and "r=8: " in r.figure and "2 steps each" in r.detail, r
    runs = ws.get("homework/finetune/lora_rank").file("runs.json")
    ev = json.loads(runs.read_text(encoding="utf-8"))
    assert ev[1]["trainable_parameters"] == 4 * ev[0]["trainable_parameters"], "rank × Σ (in + out)"
    before = runs.read_text(encoding="utf-8")
    # a trainable count that is not rank × Σ (in + out) over the adapted layers
    edit_json(runs, lambda d: d[1].update(trainable_parameters=d[1]["trainable_parameters"] + 1))
    r = result("03_finetune", ws, task)
    assert not r.ok and "do not recount" in r.figure
    # one rank only
    runs.write_text(before, encoding="utf-8")
    edit_json(runs, lambda d: d.pop())
    assert not result("03_finetune", ws, task).ok
    # ranks trained for different steps
    runs.write_text(before, encoding="utf-8")
    edit_json(runs, lambda d: d[0].update(steps=3))
    r = result("03_finetune", ws, task)
    assert not r.ok and r.figure.startswith("steps")


# ---- 04 preference -------------------------------------------------------------------------------------------------
def _small_pref(**kw):
    from puyu_lab.preference.config import PairSettings, PrefConfig

    pairs = PairSettings(sentiment=24, tool=16, heldout_sentiment=10, heldout_tool=6)
    return PrefConfig(**{**dict(pairs=pairs, batch_size=4, max_length=160, eval_every=0, log_every=1,
                                progress_bar=False, bf16=False), **kw})


@pytest.fixture(scope="module")
def dpo_ws(layers, tmp_path_factory):
    """The tiny chain up to model/sft, with pref/data and a two-step model/dpo (the lab's own engines)."""
    from puyu_lab.preference.mixture import prepare_pairs
    from puyu_lab.preference.train import train

    ws = layers.workspace("sft", tmp_path_factory.mktemp("dpo") / "ws")
    prepare_pairs(ws, _small_pref())
    train(ws, _small_pref(max_steps=2))
    return ws.root


def _pref_ns(ws: Workspace) -> dict:
    from dataclasses import replace

    import pandas as pd

    from puyu_lab.artifacts import load_pref_pairs
    from puyu_lab.preference.train import load_heldout_scores, train

    cfg = _small_pref()
    return {"ws": ws, "cfg": cfg, "sft": ws.get(cfg.model), "pd": pd, "replace": replace, "train": train,
            "load_pref_pairs": load_pref_pairs, "load_heldout_scores": load_heldout_scores}


@pytest.mark.slow
def test_preference_pairs(dpo_ws, tmp_path):
    shutil.copytree(dpo_ws, tmp_path / "ws", symlinks=True)
    ws = Workspace(tmp_path / "ws")
    task = "preference.hw_pairs"
    assert result("04_preference", ws, task).status == "missing"
    run_cell(starter("04_preference", task + " "), _pref_ns(ws))
    r = result("04_preference", ws, task)
    assert r.ok and r.consistent and r.figure.startswith("SFT ") and "/5 → DPO " in r.figure, r
    art = ws.get("homework/preference/pairs")
    pairs, scores = art.file("pairs.jsonl"), art.file("scores.json")
    p_before, s_before = pairs.read_text(encoding="utf-8"), scores.read_text(encoding="utf-8")
    # a pair whose answers are the same
    lines = p_before.splitlines()
    first = json.loads(lines[0])
    pairs.write_text("\n".join([json.dumps({**first, "rejected": first["chosen"]}, ensure_ascii=False)] + lines[1:]) + "\n",
                     encoding="utf-8")
    r = result("04_preference", ws, task)
    assert not r.ok and "bad line" in r.figure
    # scores of other texts: a longer chosen answer than the one scored
    pairs.write_text("\n".join([json.dumps({**first, "chosen": first["chosen"] + " 还有更多的话要说。"},
                                           ensure_ascii=False)] + lines[1:]) + "\n", encoding="utf-8")
    r = result("04_preference", ws, task)
    assert not r.ok and "other texts" in r.figure
    # a prompt of pref/data is not the learner's own
    held = json.loads(ws.get("pref/data").file("heldout.jsonl").read_text(encoding="utf-8").splitlines()[0])
    pairs.write_text("\n".join([json.dumps({"prompt": held["prompt"], "chosen": first["chosen"],
                                            "rejected": first["rejected"]}, ensure_ascii=False)] + lines[1:]) + "\n",
                     encoding="utf-8")
    r = result("04_preference", ws, task)
    assert not r.ok and "from pref/data" in r.figure
    # fewer than four pairs
    pairs.write_text("\n".join(lines[:3]) + "\n", encoding="utf-8")
    edit_json(scores, lambda d: [v.__delitem__(slice(3, None)) for v in d.values()])
    assert not result("04_preference", ws, task).ok
    # model/dpo trained again since
    pairs.write_text(p_before, encoding="utf-8")
    scores.write_text(s_before, encoding="utf-8")
    assert result("04_preference", ws, task).ok
    remake(ws, "model/dpo")
    r = result("04_preference", ws, task)
    assert not r.ok and "earlier model" in r.figure


@pytest.mark.slow
def test_preference_beta(dpo_ws, tmp_path):
    shutil.copytree(dpo_ws, tmp_path / "ws", symlinks=True)
    ws = Workspace(tmp_path / "ws")
    task = "preference.hw_beta"
    assert result("04_preference", ws, task).status == "missing"
    ids = {n: ws.get(n).id for n in ("pref/data", "model/dpo", "model/sft")}
    run_cell(starter("04_preference", task + " ", steps="1"), _pref_ns(ws))
    assert {n: ws.get(n).id for n in ids} == ids, "the runs rewrite no chain artifact"
    r = result("04_preference", ws, task)
    assert r.ok and r.consistent and r.figure.startswith("β 0.05: ") and "β 0.5: " in r.figure, r
    runs = ws.get("homework/preference/beta").file("runs.json")
    before = runs.read_text(encoding="utf-8")
    # one β only
    edit_json(runs, lambda d: d.pop())
    assert not result("04_preference", ws, task).ok
    # a held-out pair left out
    runs.write_text(before, encoding="utf-8")
    edit_json(runs, lambda d: d[0]["scores"].pop())
    r = result("04_preference", ws, task)
    assert not r.ok and "held-out pairs scored" in r.figure
    # scores of other texts (token counts that do not recount)
    runs.write_text(before, encoding="utf-8")
    edit_json(runs, lambda d: d[1]["scores"][0].update(chosen_tokens=d[1]["scores"][0]["chosen_tokens"] + 1))
    r = result("04_preference", ws, task)
    assert not r.ok and "other texts" in r.figure
    # different steps
    runs.write_text(before, encoding="utf-8")
    edit_json(runs, lambda d: d[0].update(steps=2))
    assert not result("04_preference", ws, task).ok


# ---- 05 deploy -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def deploy_ws(layers, tmp_path_factory):
    """The tiny chain up to model/sft with its ladder (gguf/sft: three levels) and its measurements (quant/sft), made
    by the deploy stage's own engines on a short held-out text."""
    from puyu_lab.deploy import llamatools
    from puyu_lab.deploy.pipeline import build_ladder, measure

    if not llamatools.available():
        pytest.skip("llama.cpp's tools are not built here (make setup)")
    ws = layers.workspace("sft", tmp_path_factory.mktemp("deploy") / "ws")
    build_ladder(ws, "model/sft", ["Q8_0", "Q4_K_M", "Q2_K"], imatrix=False)
    measure(ws, "model/sft", n_tokens=512, n_ctx=128, decode_tokens=8, transformers=(), chat=False, tasks=False)
    return ws.root


def _deploy_ns(ws: Workspace) -> dict:
    from puyu_lab.deploy.pipeline import ladder_files, source

    ns = {"ws": ws, "ladder_files": ladder_files, "source": source}
    return run_cell(starter("05_deploy", "deploy (shared"), ns)


@pytest.mark.slow
def test_deploy_level(deploy_ws, tmp_path):
    shutil.copytree(deploy_ws, tmp_path / "ws", symlinks=True)
    ws = Workspace(tmp_path / "ws")
    task = "deploy.hw_level"
    assert result("05_deploy", ws, task).status == "missing"
    ns = _deploy_ns(ws)
    run_cell(starter("05_deploy", task + " "), ns)
    r = result("05_deploy", ws, task)
    assert r.ok and r.consistent and r.figure.startswith("Q4_0 ") and "ladder: " in r.detail, r
    res = ws.get("homework/deploy/level").file("result.json")
    before = res.read_text(encoding="utf-8")
    # the file is not the level it claims
    edit_json(res, lambda d: d.update(level="Q4_1"))
    r = result("05_deploy", ws, task)
    assert not r.ok and "not Q4_1" in r.figure
    # a level on the ladder
    res.write_text(before, encoding="utf-8")
    edit_json(res, lambda d: d.update(level="Q4_K_M"))
    r = result("05_deploy", ws, task)
    assert not r.ok and "on the ladder" in r.figure
    # the cell refuses a ladder level before it quantizes anything
    with pytest.raises(ValueError, match="Q8_0"):
        run_cell(starter("05_deploy", task + " ", level='"Q8_0"'), ns)
    # KL measured on other tokens than quant/sft's
    res.write_text(before, encoding="utf-8")
    import numpy as np

    kl = ws.get("homework/deploy/level").file("kl.npz")
    z = dict(np.load(kl))
    np.savez_compressed(kl, kl=z["kl"], targets=np.roll(z["targets"], 1))
    r = result("05_deploy", ws, task)
    assert not r.ok and "other text" in r.detail


@pytest.mark.slow
def test_deploy_mix(deploy_ws, tmp_path):
    shutil.copytree(deploy_ws, tmp_path / "ws", symlinks=True)
    ws = Workspace(tmp_path / "ws")
    task = "deploy.hw_mix"
    assert result("05_deploy", ws, task).status == "missing"
    ns = _deploy_ns(ws)
    run_cell(starter("05_deploy", task + " "), ns)
    r = result("05_deploy", ws, task)
    assert r.ok and r.consistent and r.figure.startswith("Q2_K + token_embd Q8_0: "), r
    assert r.detail.startswith("1 matrices changed"), r.detail
    res = ws.get("homework/deploy/mix").file("result.json")
    # an override the file does not hold
    edit_json(res, lambda d: d.update(overrides={"attn_q": "Q8_0"}))
    r = result("05_deploy", ws, task)
    assert not r.ok and "not in the file" in r.figure
    # an override that changes nothing: Q2_K keeps its output layer at Q6_K already
    run_cell(starter("05_deploy", task + " ", overrides='{"^output": "Q6_K"}'), ns)
    r = result("05_deploy", ws, task)
    assert not r.ok and "same types as the ladder" in r.figure
    # a level that is not on the ladder to start from: the cell refuses it, the check too
    with pytest.raises(ValueError, match="Q3_K_S"):
        run_cell(starter("05_deploy", task + " ", base_level='"Q3_K_S"'), ns)
    edit_json(ws.get("homework/deploy/mix").file("result.json"), lambda d: d.update(base_level="Q3_K_S"))
    r = result("05_deploy", ws, task)
    assert not r.ok and "not a ladder level" in r.figure

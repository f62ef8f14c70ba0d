"""作业 of labs 03, 04 and 05: each task's check fails without its evidence and passes with the evidence its starter
cell makes — the notebook's own cell, run here on a small real workspace (the tiny chain of tests/conftest.py, a
parameter line made smaller where the task's own sizes would take longer than a test should) — and fails on evidence
that was done wrongly."""
from __future__ import annotations

import json
import shutil

import pytest

from puyu_lab.workspace import Workspace

from ..preference.small import pairs_workspace, small_cfg
from .homework_helpers import (Evidence, assert_homework_section, assert_missing, copy_ws, edit_json, fails,
                               replace_first_record, result, run_cell, starter)

TASKS = {"03_finetune": ("finetune.hw_paraphrase", "finetune.hw_lora_rank"),
         "04_preference": ("preference.hw_pairs", "preference.hw_beta"),
         "06_deploy": ("deploy.hw_level", "deploy.hw_mix")}


def remake(ws: Workspace, name: str) -> None:
    """``name`` made again (a new version with the same files): what a learner's re-run of its lab leaves."""
    old = ws.get(name)
    with ws.write(name, kind=old.kind, stage=old.stage, params=old.params) as w:
        for p in old.path.iterdir():
            if p.name != "manifest.json":
                shutil.copy2(p, w.path / p.name)
        w.metrics.update(old.metrics)


def assert_stale_once_remade(lab: str, ws: Workspace, task: str, parent: str, said: str) -> None:
    """``task`` passes on ``ws``, and fails (``said`` in its figure) once ``parent`` is made again: its evidence then
    measures an earlier version of it."""
    assert result(lab, ws, task).ok
    remake(ws, parent)
    assert said in fails(lab, ws, task).figure


@pytest.fixture(autouse=True)
def quiet_display(monkeypatch):
    """The cells' ``display`` (imported from IPython) prints nothing here."""
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: None)


def test_every_task_has_a_tagged_cell_and_the_section_ends_with_its_card():
    for lab, tasks in TASKS.items():
        assert_homework_section(lab, tasks)


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
    assert_missing("03_finetune", ws, task)
    run_cell(starter("03_finetune", task), _sft_ns(ws, sample_tokens=8))
    r = result("03_finetune", ws, task)
    assert r.ok and r.consistent and "named" in r.figure and "unrelated" in r.figure, r
    answers = Evidence(ws.get("homework/finetune/paraphrase").file("answers.json"))
    # a question sft/data already holds (a held-out paraphrase) is not the learner's own
    held = ws.get("sft/data").file("selfcog_heldout.jsonl").read_text(encoding="utf-8").splitlines()[0]
    answers.wrong(lambda rows: rows[0].update(prompt=json.loads(held)["prompt"]))
    assert "from sft/data" in fails("03_finetune", ws, task).figure
    # fewer than five questions of a kind
    answers.wrong(lambda rows: rows.pop(0))
    fails("03_finetune", ws, task)
    # a question without its answer
    answers.wrong(lambda rows: rows[1].pop("answer"))
    assert "without an answer" in fails("03_finetune", ws, task).figure
    # the cell itself refuses a question of sft/data
    src = starter("03_finetune", task).replace('"请问该怎么称呼你？"', json.dumps(json.loads(held)["prompt"]))
    with pytest.raises(ValueError, match="sft/data"):
        run_cell(src, _sft_ns(ws, sample_tokens=8))
    # model/sft made again since: the answers are an earlier model's
    answers.restore()
    assert_stale_once_remade("03_finetune", ws, task, "model/sft", "earlier model/sft")


@pytest.mark.slow
def test_finetune_lora_rank(layers, tmp_path):
    ws = layers.workspace("sft", tmp_path / "ws")
    task = "finetune.hw_lora_rank"
    assert_missing("03_finetune", ws, task)
    ids = {n: ws.get(n).id for n in ("sft/data", "model/sft", "model/base")}
    run_cell(starter("03_finetune", task, ranks="[2, 8]", steps="2"), _sft_ns(ws))
    assert {n: ws.get(n).id for n in ids} == ids, "the runs rewrite no chain artifact"
    r = result("03_finetune", ws, task)
    assert r.ok and r.figure.startswith("r=2: ") and "r=8: " in r.figure and "2 steps each" in r.detail, r
    runs = Evidence(ws.get("homework/finetune/lora_rank").file("runs.json"))
    ev = json.loads(runs.before)
    assert ev[1]["trainable_parameters"] == 4 * ev[0]["trainable_parameters"], "rank × Σ (in + out)"
    # a trainable count that is not rank × Σ (in + out) over the adapted layers
    runs.wrong(lambda d: d[1].update(trainable_parameters=d[1]["trainable_parameters"] + 1))
    assert "do not recount" in fails("03_finetune", ws, task).figure
    # one rank only
    runs.wrong(lambda d: d.pop())
    fails("03_finetune", ws, task)
    # ranks trained for different steps
    runs.wrong(lambda d: d[0].update(steps=3))
    r = fails("03_finetune", ws, task)
    assert r.figure.startswith("steps")


# ---- 04 preference -------------------------------------------------------------------------------------------------
def _small_pref(**kw):
    """The preference tests' small sizes, without trl's evaluation."""
    return small_cfg(**{"eval_every": 0, **kw})


@pytest.fixture(scope="module")
def dpo_ws(layers, tmp_path_factory):
    """The tiny chain up to model/sft, with pref/data and a two-step model/dpo (the lab's own engines)."""
    from puyu_lab.preference.train import train

    ws = pairs_workspace(layers, tmp_path_factory.mktemp("dpo") / "ws", _small_pref())
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
    ws = copy_ws(dpo_ws, tmp_path)
    task = "preference.hw_pairs"
    assert_missing("04_preference", ws, task)
    run_cell(starter("04_preference", task), _pref_ns(ws))
    r = result("04_preference", ws, task)
    assert r.ok and r.consistent and r.figure.startswith("SFT ") and "/5 → DPO " in r.figure, r
    art = ws.get("homework/preference/pairs")
    pairs, scores = art.file("pairs.jsonl"), art.file("scores.json")
    p_before, s_before = pairs.read_text(encoding="utf-8"), scores.read_text(encoding="utf-8")
    # a pair whose answers are the same
    lines = p_before.splitlines()
    first = json.loads(lines[0])
    replace_first_record(pairs, {**first, "rejected": first["chosen"]})
    assert "bad line" in fails("04_preference", ws, task).figure
    # scores of other texts: a longer chosen answer than the one scored
    replace_first_record(pairs, {**first, "chosen": first["chosen"] + " 还有更多的话要说。"})
    assert "other texts" in fails("04_preference", ws, task).figure
    # a prompt of pref/data is not the learner's own
    held = json.loads(ws.get("pref/data").file("heldout.jsonl").read_text(encoding="utf-8").splitlines()[0])
    replace_first_record(pairs, {"prompt": held["prompt"], "chosen": first["chosen"], "rejected": first["rejected"]})
    assert "from pref/data" in fails("04_preference", ws, task).figure
    # fewer than four pairs
    pairs.write_text("\n".join(lines[:3]) + "\n", encoding="utf-8")
    edit_json(scores, lambda d: [v.__delitem__(slice(3, None)) for v in d.values()])
    fails("04_preference", ws, task)
    # model/dpo trained again since
    pairs.write_text(p_before, encoding="utf-8")
    scores.write_text(s_before, encoding="utf-8")
    assert_stale_once_remade("04_preference", ws, task, "model/dpo", "earlier model")


@pytest.mark.slow
def test_preference_beta(dpo_ws, tmp_path):
    ws = copy_ws(dpo_ws, tmp_path)
    task = "preference.hw_beta"
    assert_missing("04_preference", ws, task)
    ids = {n: ws.get(n).id for n in ("pref/data", "model/dpo", "model/sft")}
    run_cell(starter("04_preference", task, steps="1"), _pref_ns(ws))
    assert {n: ws.get(n).id for n in ids} == ids, "the runs rewrite no chain artifact"
    r = result("04_preference", ws, task)
    assert r.ok and r.consistent and r.figure.startswith("β 0.05: ") and "β 0.5: " in r.figure, r
    runs = Evidence(ws.get("homework/preference/beta").file("runs.json"))
    # one β only
    runs.wrong(lambda d: d.pop())
    fails("04_preference", ws, task)
    # a held-out pair left out
    runs.wrong(lambda d: d[0]["scores"].pop())
    assert "held-out pairs scored" in fails("04_preference", ws, task).figure
    # scores of other texts (token counts that do not recount)
    runs.wrong(lambda d: d[1]["scores"][0].update(chosen_tokens=d[1]["scores"][0]["chosen_tokens"] + 1))
    assert "other texts" in fails("04_preference", ws, task).figure
    # different steps
    runs.wrong(lambda d: d[0].update(steps=2))
    fails("04_preference", ws, task)


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


def _deploy_task(deploy_ws, tmp_path, task: str):
    """``task`` on a copy of ``deploy_ws``: missing, then done by the section's shared measuring cell and the task's
    starter cell; the workspace, the cells' namespace and the task's result."""
    from puyu_lab.deploy.pipeline import ladder_files, source

    ws = copy_ws(deploy_ws, tmp_path)
    assert_missing("06_deploy", ws, task)
    ns = run_cell(starter("06_deploy", "deploy"), {"ws": ws, "ladder_files": ladder_files, "source": source})
    run_cell(starter("06_deploy", task), ns)
    return ws, ns, result("06_deploy", ws, task)


@pytest.mark.slow
def test_deploy_level(deploy_ws, tmp_path):
    task = "deploy.hw_level"
    ws, ns, r = _deploy_task(deploy_ws, tmp_path, task)
    assert r.ok and r.consistent and r.figure.startswith("Q4_0 ") and "ladder: " in r.detail, r
    res = Evidence(ws.get("homework/deploy/level").file("result.json"))
    # the file is not the level it claims
    res.wrong(lambda d: d.update(level="Q4_1"))
    assert "not Q4_1" in fails("06_deploy", ws, task).figure
    # a level on the ladder
    res.wrong(lambda d: d.update(level="Q4_K_M"))
    assert "on the ladder" in fails("06_deploy", ws, task).figure
    # the cell refuses a ladder level before it quantizes anything
    with pytest.raises(ValueError, match="Q8_0"):
        run_cell(starter("06_deploy", task, level='"Q8_0"'), ns)
    # KL measured on other tokens than quant/sft's
    res.restore()
    import numpy as np

    kl = ws.get("homework/deploy/level").file("kl.npz")
    z = dict(np.load(kl))
    np.savez_compressed(kl, kl=z["kl"], targets=np.roll(z["targets"], 1))
    assert "other text" in fails("06_deploy", ws, task).detail


@pytest.mark.slow
def test_deploy_mix(deploy_ws, tmp_path):
    task = "deploy.hw_mix"
    ws, ns, r = _deploy_task(deploy_ws, tmp_path, task)
    assert r.ok and r.consistent and r.figure.startswith("Q2_K + token_embd Q8_0: "), r
    assert r.detail.startswith("1 matrices changed"), r.detail
    res = ws.get("homework/deploy/mix").file("result.json")
    # an override the file does not hold
    edit_json(res, lambda d: d.update(overrides={"attn_q": "Q8_0"}))
    assert "not in the file" in fails("06_deploy", ws, task).figure
    # an override that changes nothing: Q2_K keeps its output layer at Q6_K already
    run_cell(starter("06_deploy", task, overrides='{"^output": "Q6_K"}'), ns)
    assert "same types as the ladder" in fails("06_deploy", ws, task).figure
    # a level that is not on the ladder to start from: the cell refuses it, the check too
    with pytest.raises(ValueError, match="Q3_K_S"):
        run_cell(starter("06_deploy", task, base_level='"Q3_K_S"'), ns)
    edit_json(ws.get("homework/deploy/mix").file("result.json"), lambda d: d.update(base_level="Q3_K_S"))
    assert "not a ladder level" in fails("06_deploy", ws, task).figure

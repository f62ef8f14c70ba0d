"""作业 of labs 00, 01 and 02: each task's check fails without its evidence and passes with the evidence its starter
cell makes — the notebook's own cell, run here on a small real workspace (a parameter line made smaller where the
task's own sizes would take longer than a test should) — and fails on evidence that was done wrongly."""
from __future__ import annotations

import json
import shutil

import pytest

from puyu_lab.workspace import Workspace

from ..conftest import TINY_PRESET
from .homework_helpers import (Evidence, assert_homework_section, assert_missing, edit_json, fails, result, run_cell,
                               starter)


def test_every_task_has_a_tagged_cell_and_the_section_ends_with_its_card():
    for lab, tasks in (("00_tour", ("tour.hw_matmul", "tour.hw_threads")),
                       ("01_data", ("data.hw_rule", "data.hw_minhash")),
                       ("02_pretrain", ("pretrain.hw_vocab", "pretrain.hw_optimizer"))):
        assert_homework_section(lab, tasks)


# ---- 00 tour -------------------------------------------------------------------------------------------------------
SMALL = "[(64, 64, 64), (128, 128, 128), (256, 256, 256)]"


@pytest.mark.slow
def test_tour_matmul(tmp_path):
    ws = Workspace(tmp_path / "ws")
    assert_missing("00_tour", ws, "tour.hw_matmul")
    run_cell(starter("00_tour", "tour.hw_matmul", sizes=SMALL), {"ws": ws})
    r = result("00_tour", ws, "tour.hw_matmul")
    assert r.ok and r.consistent and "256×256×256" in r.figure and "GFLOP/s" in r.figure, r
    timings = Evidence(ws.get("homework/tour/matmul").file("timings.json"))
    # a conclusion its own timings do not give
    timings.wrong(lambda d: d.update(choice="bf16" if d["choice"] == "fp32" else "fp32"))
    assert "its own timings give" in fails("00_tour", ws, "tour.hw_matmul").detail
    # a GFLOP/s that is not 2·m·k·n / seconds
    timings.wrong(lambda d: d["rows"][0].update(gflops=d["rows"][0]["gflops"] * 3))
    fails("00_tour", ws, "tour.hw_matmul")
    # fewer than 3 sizes in both dtypes
    timings.wrong(lambda d: d.update(rows=[r for r in d["rows"] if r["m"] != 64]))
    assert result("00_tour", ws, "tour.hw_matmul").figure.startswith("2 size(s)")


def test_tour_threads(tmp_path):
    from puyu_lab.numerics import machine

    if machine()["cores"] < 2:
        pytest.skip("one core: nothing to compare")
    ws = Workspace(tmp_path / "ws")
    assert_missing("00_tour", ws, "tour.hw_threads")
    ns = run_cell(starter("00_tour", "tour.hw_matmul", sizes=SMALL), {"ws": ws})
    run_cell(starter("00_tour", "tour.hw_threads"), ns)
    r = result("00_tour", ws, "tour.hw_threads")
    assert r.ok and r.consistent and r.figure.startswith(f"{machine()['cores']} threads:"), r
    timings = Evidence(ws.get("homework/tour/threads").file("timings.json"))
    timings.wrong(lambda d: d.update(cores=1))  # more threads than cores
    fails("00_tour", ws, "tour.hw_threads")
    timings.wrong(lambda d: d.update(rows=[r for r in d["rows"] if r["threads"] == 1]))  # one thread only
    fails("00_tour", ws, "tour.hw_threads")


# ---- 01 data -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cleaning():
    """The lab's ``run`` on a few hundred real documents (signals and MinHash computed once for the module)."""
    from puyu_lab.data.pipeline import prepare
    from puyu_lab.data.sources import load_sources

    return prepare(raw=load_sources(["news-zh", "reviews-zh"], limit_per_source=150, seed=1), show_progress=False)


@pytest.fixture
def data_ws(cleaning, tmp_path):
    ws = Workspace(tmp_path / "ws")
    cleaning.export(ws)
    return ws


@pytest.mark.slow
def test_data_rule(cleaning, data_ws):
    ws = data_ws
    assert_missing("01_data", ws, "data.hw_rule")
    run_cell(starter("01_data", "data.hw_rule"), {"ws": ws, "run": cleaning})
    r = result("01_data", ws, "data.hw_rule")
    assert r.ok and r.consistent and "pass the rules" in r.figure and "gopher_short_doc" in r.detail, r
    # a change no document crosses
    src = starter("01_data", "data.hw_rule").replace('mine.set("gopher_short_doc", 50, "zh")',
                                                     'mine.set("gopher_long_doc", 10 ** 9)')
    run_cell(src, {"ws": ws, "run": cleaning})
    assert "either way" in fails("01_data", ws, "data.hw_rule").figure
    # no change at all
    run_cell(src.replace('mine.set("gopher_long_doc", 10 ** 9)', "pass"), {"ws": ws, "run": cleaning})
    assert result("01_data", ws, "data.hw_rule").figure == "the same recipe as corpus/clean"
    # corpus/clean exported again since: the homework measured another corpus
    run_cell(starter("01_data", "data.hw_rule"), {"ws": ws, "run": cleaning})
    cleaning.export(ws)
    assert "older corpus/clean" in fails("01_data", ws, "data.hw_rule").figure


@pytest.mark.slow
def test_data_minhash(cleaning, data_ws):
    ws = data_ws
    assert_missing("01_data", ws, "data.hw_minhash")
    # a loose banding, so that a few hundred documents gain pairs
    run_cell(starter("01_data", "data.hw_minhash", **{"bands, rows": "56, 2"}), {"ws": ws, "run": cleaning})
    r = result("01_data", ws, "data.hw_minhash")
    assert r.ok and r.consistent and r.figure.startswith("56×2") and "re-hashed" in r.detail, r
    pairs = Evidence(ws.get("homework/data/minhash").file("pairs.json"))
    ev = json.loads(pairs.before)
    assert ev["gained"] and ev["n_gained"] >= len(ev["gained"])
    # a true Jaccard that does not recompute
    pairs.wrong(lambda d: d["gained"][0].update(true_jaccard=0.99))
    assert "do not re-hash" in result("01_data", ws, "data.hw_minhash").figure

    # a gained pair whose texts share no band under 56 × 2 (the second text swapped for another)
    def swap(d):
        other = next(i for i in d["docs"] if i not in (d["gained"][0]["a"], d["gained"][0]["b"]))
        d["docs"][d["gained"][0]["b"]] = d["docs"][other] | {"text": d["docs"][other]["text"] + " 另一篇"}
    pairs.wrong(swap)
    fails("01_data", ws, "data.hw_minhash")
    # corpus/clean's own banding
    run_cell(starter("01_data", "data.hw_minhash", **{"bands, rows": "14, 8"}), {"ws": ws, "run": cleaning})
    assert "own banding" in fails("01_data", ws, "data.hw_minhash").figure
    # more values than a signature holds: the cell stops before it writes anything
    with pytest.raises(ValueError, match="bands × rows"):
        run_cell(starter("01_data", "data.hw_minhash", **{"bands, rows": "30, 4"}), {"ws": ws, "run": cleaning})


# ---- 02 pretrain ---------------------------------------------------------------------------------------------------
def _pretrain_ns(ws: Workspace) -> dict:
    from puyu_lab.pretrain.config import PretrainConfig
    from puyu_lab.pretrain.model import ModelPreset

    return {"ws": ws, "cfg": PretrainConfig(preset=ModelPreset(**TINY_PRESET)), "corpus": ws.get("corpus/clean")}


@pytest.mark.slow
def test_pretrain_vocab(layers, tmp_path):
    ws = layers.workspace("tokenizer", tmp_path / "ws")
    assert_missing("02_pretrain", ws, "pretrain.hw_vocab")
    run_cell(starter("02_pretrain", "pretrain.hw_vocab", vocab_sizes="[2560, 4096]"), _pretrain_ns(ws))
    r = result("02_pretrain", ws, "pretrain.hw_vocab")
    assert r.ok and r.consistent and "2.56k" in r.figure and "3.072k" in r.figure and "4.096k" in r.figure, r
    vocab = Evidence(ws.get("homework/pretrain/vocab").file("vocab.json"))
    vocab.wrong(lambda d: d["rows"][0].update(chars_per_token_zh=d["rows"][0]["chars_per_token_zh"] * 1.2))
    assert "measure otherwise" in result("02_pretrain", ws, "pretrain.hw_vocab").figure
    vocab.wrong(lambda d: d.update(rows=d["rows"][:1]))  # one size besides tokenizer/spm's
    fails("02_pretrain", ws, "pretrain.hw_vocab")


@pytest.mark.slow
def test_pretrain_optimizer(layers, tmp_path):
    ws = layers.workspace("base", tmp_path / "ws")
    assert_missing("02_pretrain", ws, "pretrain.hw_optimizer")
    run_cell(starter("02_pretrain", "pretrain.hw_optimizer"), _pretrain_ns(ws))
    r = result("02_pretrain", ws, "pretrain.hw_optimizer")
    assert r.ok and r.consistent and r.figure.startswith("AdamW ") and "20 steps" in r.figure, r
    assert ws.get("model/base-adamw").params["config"]["optimizer"] == "adamw"
    # another recipe besides the optimizer: not a comparison of optimizers
    man = ws.get("model/base-adamw").path / "manifest.json"
    edit_json(man, lambda d: d["params"]["config"].update(learning_rate=0.1))
    assert "learning_rate" in fails("02_pretrain", ws, "pretrain.hw_optimizer").detail
    edit_json(man, lambda d: d["params"]["config"].update(learning_rate=ws.get("model/base").params["config"]
                                                          ["learning_rate"], optimizer="muon"))
    fails("02_pretrain", ws, "pretrain.hw_optimizer")
    edit_json(man, lambda d: d["params"]["config"].update(optimizer="adamw"))
    assert result("02_pretrain", ws, "pretrain.hw_optimizer").ok
    # model/base trained on an earlier corpus/clean than model/base-adamw: that one is to train again
    edit_json(ws.get("model/base").path / "manifest.json", lambda d: d["parents"][0].update(id="an-earlier-one"))
    r = fails("02_pretrain", ws, "pretrain.hw_optimizer")
    assert r.figure == "another corpus/clean" and r.detail.startswith("model/base was trained"), r
    shutil.rmtree(ws.root / "runs", ignore_errors=True)


"""作业 of labs 00, 01 and 02: each task's check fails without its evidence and passes with the evidence its starter
cell makes — the notebook's own cell, run here on a small real workspace (a parameter line made smaller where the
task's own sizes would take longer than a test should) — and fails on evidence that was done wrongly."""
from __future__ import annotations

import json
import re
import shutil

import pytest

import puyu_lab as pl
from puyu_lab import checks
from puyu_lab.workspace import Workspace

from ..conftest import ROOT, TINY_PRESET


def starter(lab: str, task: str, **lines: str) -> str:
    """The source of the cell tagged ``homework`` that starts with ``# 作业 <task>`` in ``labs/<lab>.ipynb``; each
    keyword replaces the line that assigns that name (``sizes="[(64, 64, 64)]"``)."""
    cells = json.loads((ROOT / "labs" / f"{lab}.ipynb").read_text(encoding="utf-8"))["cells"]
    found = [("".join(c["source"]), c) for c in cells if c["cell_type"] == "code"
             and "".join(c["source"]).startswith(f"# 作业 {task} ")]
    assert len(found) == 1, f"{lab}: one cell starts with '# 作业 {task} '"
    src, cell = found[0]
    assert "homework" in cell["metadata"].get("tags", []), f"{lab}: the {task} cell is tagged homework"
    for name, value in lines.items():
        src, n = re.subn(rf"^{re.escape(name)} = .*$", f"{name} = {value}", src, count=1, flags=re.M)
        assert n == 1, f"{task}: no line assigns {name}"
    return src


def run_cell(src: str, ns: dict) -> dict:
    ns.setdefault("pl", pl)
    ns.setdefault("display", lambda *a, **k: None)
    exec(compile(src, "<homework>", "exec"), ns)
    return ns


def result(lab: str, ws: Workspace, task: str):
    card = checks.homework(lab, ws, display=False, write=False)
    return next(r for r in card.results if r.id == task)


def edit_json(path, edit) -> None:
    d = json.loads(path.read_text(encoding="utf-8"))
    edit(d)
    path.write_text(json.dumps(d, ensure_ascii=False), encoding="utf-8")


def test_every_task_has_a_tagged_cell_and_the_section_ends_with_its_card():
    for lab, tasks in (("00_tour", ("tour.hw_matmul", "tour.hw_threads")),
                       ("01_data", ("data.hw_rule", "data.hw_minhash")),
                       ("02_pretrain", ("pretrain.hw_vocab", "pretrain.hw_optimizer"))):
        assert [c.id for c in checks.select(lab, homework=True)] == list(tasks)
        assert {c.homework for c in checks.select(lab, homework=True)} == {"basic", "advanced"}
        for t in tasks:
            starter(lab, t)
        cells = json.loads((ROOT / "labs" / f"{lab}.ipynb").read_text(encoding="utf-8"))["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        last = "".join(code[-1]["source"])
        assert f'checks.homework("{lab}", ws)' in last and "homework" not in code[-1]["metadata"].get("tags", [])
        heading = next(i for i, c in enumerate(cells) if "".join(c["source"]).startswith("## 作业 Homework"))
        assert heading > max(i for i, c in enumerate(cells) if "## 更进一步 Go further" in "".join(c["source"]))
        closing = "".join(cells[-1]["source"])
        assert "puyu-lab submit --learner" in closing and "workspace/report/index.html" in closing


# ---- 00 tour -------------------------------------------------------------------------------------------------------
SMALL = "[(64, 64, 64), (128, 128, 128), (256, 256, 256)]"


@pytest.mark.slow
def test_tour_matmul(tmp_path):
    ws = Workspace(tmp_path / "ws")
    r = result("00_tour", ws, "tour.hw_matmul")
    assert r.status == "missing" and not r.ok
    run_cell(starter("00_tour", "tour.hw_matmul", sizes=SMALL), {"ws": ws})
    r = result("00_tour", ws, "tour.hw_matmul")
    assert r.ok and r.consistent and "256×256×256" in r.figure and "GFLOP/s" in r.figure, r
    timings = ws.get("homework/tour/matmul").file("timings.json")
    before = timings.read_text(encoding="utf-8")
    # a conclusion its own timings do not give
    edit_json(timings, lambda d: d.update(choice="bf16" if d["choice"] == "fp32" else "fp32"))
    r = result("00_tour", ws, "tour.hw_matmul")
    assert not r.ok and "its own timings give" in r.detail
    # a GFLOP/s that is not 2·m·k·n / seconds
    timings.write_text(before, encoding="utf-8")
    edit_json(timings, lambda d: d["rows"][0].update(gflops=d["rows"][0]["gflops"] * 3))
    assert not result("00_tour", ws, "tour.hw_matmul").ok
    # fewer than 3 sizes in both dtypes
    timings.write_text(before, encoding="utf-8")
    edit_json(timings, lambda d: d.update(rows=[r for r in d["rows"] if r["m"] != 64]))
    assert result("00_tour", ws, "tour.hw_matmul").figure.startswith("2 size(s)")


def test_tour_threads(tmp_path):
    from puyu_lab.numerics import machine

    if machine()["cores"] < 2:
        pytest.skip("one core: nothing to compare")
    ws = Workspace(tmp_path / "ws")
    assert result("00_tour", ws, "tour.hw_threads").status == "missing"
    ns = run_cell(starter("00_tour", "tour.hw_matmul", sizes=SMALL), {"ws": ws})
    run_cell(starter("00_tour", "tour.hw_threads"), ns)
    r = result("00_tour", ws, "tour.hw_threads")
    assert r.ok and r.consistent and r.figure.startswith(f"{machine()['cores']} threads:"), r
    timings = ws.get("homework/tour/threads").file("timings.json")
    before = timings.read_text(encoding="utf-8")
    edit_json(timings, lambda d: d.update(cores=1))  # more threads than cores
    assert not result("00_tour", ws, "tour.hw_threads").ok
    timings.write_text(before, encoding="utf-8")
    edit_json(timings, lambda d: d.update(rows=[r for r in d["rows"] if r["threads"] == 1]))  # one thread only
    assert not result("00_tour", ws, "tour.hw_threads").ok


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
    assert result("01_data", ws, "data.hw_rule").status == "missing"
    run_cell(starter("01_data", "data.hw_rule"), {"ws": ws, "run": cleaning})
    r = result("01_data", ws, "data.hw_rule")
    assert r.ok and r.consistent and "pass the rules" in r.figure and "gopher_short_doc" in r.detail, r
    # a change no document crosses
    src = starter("01_data", "data.hw_rule").replace('mine.set("gopher_short_doc", 50, "zh")',
                                                     'mine.set("gopher_long_doc", 10 ** 9)')
    run_cell(src, {"ws": ws, "run": cleaning})
    r = result("01_data", ws, "data.hw_rule")
    assert not r.ok and "either way" in r.figure
    # no change at all
    run_cell(src.replace('mine.set("gopher_long_doc", 10 ** 9)', "pass"), {"ws": ws, "run": cleaning})
    assert result("01_data", ws, "data.hw_rule").figure == "the same recipe as corpus/clean"
    # corpus/clean exported again since: the homework measured another corpus
    run_cell(starter("01_data", "data.hw_rule"), {"ws": ws, "run": cleaning})
    cleaning.export(ws)
    r = result("01_data", ws, "data.hw_rule")
    assert not r.ok and "older corpus/clean" in r.figure


@pytest.mark.slow
def test_data_minhash(cleaning, data_ws):
    ws = data_ws
    assert result("01_data", ws, "data.hw_minhash").status == "missing"
    # a loose banding, so that a few hundred documents gain pairs
    run_cell(starter("01_data", "data.hw_minhash", **{"bands, rows": "56, 2"}), {"ws": ws, "run": cleaning})
    r = result("01_data", ws, "data.hw_minhash")
    assert r.ok and r.consistent and r.figure.startswith("56×2") and "re-hashed" in r.detail, r
    pairs = ws.get("homework/data/minhash").file("pairs.json")
    before = pairs.read_text(encoding="utf-8")
    ev = json.loads(before)
    assert ev["gained"] and ev["n_gained"] >= len(ev["gained"])
    # a true Jaccard that does not recompute
    edit_json(pairs, lambda d: d["gained"][0].update(true_jaccard=0.99))
    assert "do not re-hash" in result("01_data", ws, "data.hw_minhash").figure
    # a gained pair whose texts share no band under 56 × 2 (the second text swapped for another)
    pairs.write_text(before, encoding="utf-8")

    def swap(d):
        other = next(i for i in d["docs"] if i not in (d["gained"][0]["a"], d["gained"][0]["b"]))
        d["docs"][d["gained"][0]["b"]] = d["docs"][other] | {"text": d["docs"][other]["text"] + " 另一篇"}
    edit_json(pairs, swap)
    assert not result("01_data", ws, "data.hw_minhash").ok
    # corpus/clean's own banding
    run_cell(starter("01_data", "data.hw_minhash", **{"bands, rows": "14, 8"}), {"ws": ws, "run": cleaning})
    r = result("01_data", ws, "data.hw_minhash")
    assert not r.ok and "own banding" in r.figure
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
    assert result("02_pretrain", ws, "pretrain.hw_vocab").status == "missing"
    run_cell(starter("02_pretrain", "pretrain.hw_vocab", vocab_sizes="[2560, 4096]"), _pretrain_ns(ws))
    r = result("02_pretrain", ws, "pretrain.hw_vocab")
    assert r.ok and r.consistent and "2.56k" in r.figure and "3.072k" in r.figure and "4.096k" in r.figure, r
    vocab = ws.get("homework/pretrain/vocab").file("vocab.json")
    before = vocab.read_text(encoding="utf-8")
    edit_json(vocab, lambda d: d["rows"][0].update(chars_per_token_zh=d["rows"][0]["chars_per_token_zh"] * 1.2))
    assert "measure otherwise" in result("02_pretrain", ws, "pretrain.hw_vocab").figure
    vocab.write_text(before, encoding="utf-8")
    edit_json(vocab, lambda d: d.update(rows=d["rows"][:1]))  # one size besides tokenizer/spm's
    assert not result("02_pretrain", ws, "pretrain.hw_vocab").ok


@pytest.mark.slow
def test_pretrain_optimizer(layers, tmp_path):
    ws = layers.workspace("base", tmp_path / "ws")
    assert result("02_pretrain", ws, "pretrain.hw_optimizer").status == "missing"
    run_cell(starter("02_pretrain", "pretrain.hw_optimizer"), _pretrain_ns(ws))
    r = result("02_pretrain", ws, "pretrain.hw_optimizer")
    assert r.ok and r.consistent and r.figure.startswith("AdamW ") and "20 steps" in r.figure, r
    assert ws.get("model/base-adamw").params["config"]["optimizer"] == "adamw"
    # another recipe besides the optimizer: not a comparison of optimizers
    man = ws.get("model/base-adamw").path / "manifest.json"
    edit_json(man, lambda d: d["params"]["config"].update(learning_rate=0.1))
    r = result("02_pretrain", ws, "pretrain.hw_optimizer")
    assert not r.ok and "learning_rate" in r.detail
    edit_json(man, lambda d: d["params"]["config"].update(learning_rate=ws.get("model/base").params["config"]
                                                          ["learning_rate"], optimizer="muon"))
    assert not result("02_pretrain", ws, "pretrain.hw_optimizer").ok
    edit_json(man, lambda d: d["params"]["config"].update(optimizer="adamw"))
    assert result("02_pretrain", ws, "pretrain.hw_optimizer").ok
    # model/base trained on an earlier corpus/clean than model/base-adamw: that one is to train again
    edit_json(ws.get("model/base").path / "manifest.json", lambda d: d["parents"][0].update(id="an-earlier-one"))
    r = result("02_pretrain", ws, "pretrain.hw_optimizer")
    assert not r.ok and r.figure == "another corpus/clean" and r.detail.startswith("model/base was trained"), r
    shutil.rmtree(ws.root / "runs", ignore_errors=True)


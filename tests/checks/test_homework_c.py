"""作业 of labs 07 (eval), 08 (agent) and 09 (RAG): each task's check fails before the task is done (its artifact is
missing), passes on the evidence the lab's own starter cell makes, and fails when the task is done wrongly where that
can be checked.

The starter cells are not copied here: each test runs the notebook's parameters and setup cells, then the homework
cell itself (a parameter of it changed where a test says so), on a copy of the session's tiny chain (conftest's
``layers``: corpus → tokenizer → base → sft, made by the stages' own engines) to which the test adds what the lab's
stage makes (``eval/chain``, ``rag/index`` and ``rag/eval``) with the stage's engine, sized down.
"""
from __future__ import annotations

import json

import pytest

from puyu_lab.workspace import Workspace

from .homework_helpers import (assert_homework_section, assert_missing, cells, copy_ws, replace_first_record, result,
                               source)

pytestmark = pytest.mark.slow  # the tiny chain is built once per session; each task then runs in seconds


def _setup_cells(lab: str) -> list[str]:
    nb = cells(lab)
    p = next(i for i, c in enumerate(nb) if "parameters" in c["metadata"].get("tags", []))
    return [source(nb[i]) for i in (p, p + 1)]


def homework_cell(lab: str, n: int) -> tuple[str, str]:
    """The id and source of the lab's ``n``-th homework cell (tagged ``homework``), which must say which check it is for."""
    tagged = [c for c in cells(lab) if "homework" in c["metadata"].get("tags", [])]
    return tagged[n]["id"], source(tagged[n])


class Lab:
    """A lab's parameters and setup cells run on ``ws`` (``PUYU_LAB_HOME``), then the homework cells asked for."""

    def __init__(self, lab: str, ws: Workspace, monkeypatch):
        from puyu_lab import i18n

        monkeypatch.setenv("PUYU_LAB_HOME", str(ws.root))
        monkeypatch.setenv("PUYU_LAB_PROFILE", "quick")
        monkeypatch.setenv("PUYU_LAB_LANG", "en")  # the figures asserted below are the English ones
        monkeypatch.setattr(i18n, "_LANG", i18n.get_language())  # the setup cell's language is put back afterwards
        self.lab, self.ws, self.ns = lab, ws, {"__name__": "__main__"}
        for src in _setup_cells(lab):
            exec(compile(src, f"<{lab} setup>", "exec"), self.ns)

    def run(self, index: int, /, **subst: tuple[str, str]) -> dict:
        """Run homework cell ``index``; ``subst``: {name: (old text, new text)} replacements (each must match)."""
        _, src = homework_cell(self.lab, index)
        for old, new in subst.values():
            assert old in src, f"{self.lab} homework cell {index} has no {old!r}"
            src = src.replace(old, new)
        exec(compile(src, f"<{self.lab} homework {index}>", "exec"), self.ns)
        return self.ns

    def result(self, id: str):
        return result(self.lab, self.ws, id)

    @classmethod
    def fresh(cls, lab: str, ws: Workspace, tmp_path, monkeypatch, task: str) -> "Lab":
        """``lab`` set up on a copy of ``ws``, where ``task`` is not done yet (its check reports it missing)."""
        self = cls(lab, copy_ws(ws, tmp_path), monkeypatch)
        assert_missing(lab, self.ws, task)
        return self


def test_each_lab_ends_with_its_homework_card_and_tags_its_starter_cells():
    for lab, ids in (("07_eval", ("eval.hw_task", "eval.hw_sample")), ("08_agent", ("agent.hw_tool", "agent.hw_pattern")),
                     ("09_rag", ("rag.hw_threshold", "rag.hw_chunks"))):
        assert_homework_section(lab, ids)
        for n, id in enumerate(ids):
            assert f"作业 {id}" in homework_cell(lab, n)[1], f"{lab}: homework cell {n} is not {id}'s"


# ---- 06 评测 -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def eval_ws(layers, tmp_path_factory):
    """The tiny chain to model/sft, and eval/chain made by the eval stage on a few documents per task."""
    from puyu_lab.eval.config import EvalConfig
    from puyu_lab.eval.entry import run

    ws = layers.workspace("sft", tmp_path_factory.mktemp("hw06") / "ws")
    run(ws, EvalConfig(n=6, ppl_docs=2, levels=(), optional_models=(), progress_bar=False))
    return ws


def test_eval_hw_task(eval_ws, tmp_path, monkeypatch):
    lab = Lab.fresh("07_eval", eval_ws, tmp_path, monkeypatch, "eval.hw_task")
    lab.run(0)
    r = lab.result("eval.hw_task")
    assert r.ok and r.consistent and "my_reviews (10)" in r.figure, (r.status, r.figure, r.detail)
    # every review positive: the gold answer is always the first option, which measures a bias
    lab.run(0, labels=('"neg"),', '"pos"),'))
    r = lab.result("eval.hw_task")
    assert r.status == "fail" and "same option" in r.figure, (r.status, r.figure, r.detail)


def test_eval_hw_sample(eval_ws, tmp_path, monkeypatch):
    lab = Lab.fresh("07_eval", eval_ws, tmp_path, monkeypatch, "eval.hw_sample")
    lab.run(1, n=("n_big = 100", "n_big = 6"))  # the chain's own size: nothing learnt about the interval
    r = lab.result("eval.hw_sample")
    assert r.status == "fail" and "twice" in r.figure, (r.status, r.figure, r.detail)
    lab.run(1, n=("n_big = 100", "n_big = 12"))
    r = lab.result("eval.hw_sample")
    assert r.ok and r.consistent and "(12 samples)" in r.figure and "chain" in r.figure, (r.status, r.figure, r.detail)


# ---- 07 智能体 ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def agent_ws(layers, tmp_path_factory):
    """The tiny chain to model/base, fine-tuned briefly on data with a dozen held-out arithmetic tasks (the pattern
    task asks ten or more)."""
    from puyu_lab.finetune.data import SFTDataSettings
    from puyu_lab.finetune.train import SFTConfig, finetune

    ws = layers.workspace("base", tmp_path_factory.mktemp("hw07") / "ws")
    data = SFTDataSettings(dialogs_zh=30, dialogs_en=10, sentiment_max=20, tool_examples=10, tool_heldout=12, self_repeat=1)
    finetune(ws, SFTConfig(max_steps=2, batch_size=4, max_length=160, sample_every=0, save_every=2, progress_bar=False,
                           data=data, bf16=False), score=False)
    return ws


def test_agent_hw_tool(agent_ws, tmp_path, monkeypatch):
    lab = Lab.fresh("08_agent", agent_ws, tmp_path, monkeypatch, "agent.hw_tool")
    ws = lab.ws
    lab.run(0)
    r = lab.result("agent.hw_tool")
    # a required call is decoded under the schema: count_chars takes any string, so every call runs
    assert r.ok and r.consistent and r.value == 1.0 and "count_chars" in r.figure, (r.status, r.figure, r.detail)
    art = ws.get("homework/agent/my-tool")
    spec = json.loads(art.file("tool.json").read_text(encoding="utf-8"))
    assert spec["name"] == "count_chars" and spec["parameters"]["required"] == ["text"]
    # a tool the labs give is not one of your own
    lab.run(0, name=("my_tool = make_tool(count_chars)", "my_tool = make_tool(count_chars, name='calculator')"))
    r = lab.result("agent.hw_tool")
    assert r.status == "fail" and "calculator" in r.figure, (r.status, r.figure, r.detail)


def test_agent_hw_pattern(agent_ws, tmp_path, monkeypatch):
    lab = Lab.fresh("08_agent", agent_ws, tmp_path, monkeypatch, "agent.hw_pattern")
    ws = lab.ws
    ret = '    return "".join("[-+*/]" if p in "+-*/" else re.escape(p) for p in parts)'
    # the tightest pattern: the whole expression, so every narrowed call computes the task's result
    lab.run(1, tight=(ret, '    return re.escape(task["expression"])'))
    r = lab.result("agent.hw_pattern")
    assert r.ok and r.consistent and r.value > 0, (r.status, r.figure, r.detail)
    # a pattern that allows no task's expression (no task's result is 99999999): no call gets better
    lab.run(1, wrong=(ret, '    return "99999999"'))
    r = lab.result("agent.hw_pattern")
    assert r.status == "fail" and "0/12" in r.figure, (r.status, r.figure, r.detail)
    # the narrowed traces must match their patterns: a row whose pattern was changed afterwards is caught
    lab.run(1, tight=(ret, '    return re.escape(task["expression"])'))
    rows = ws.get("homework/agent/pattern").file("rows.jsonl")
    replace_first_record(rows, {**json.loads(rows.read_text(encoding="utf-8").splitlines()[0]), "pattern": "0"})
    r = lab.result("agent.hw_pattern")
    assert r.status == "fail" and "does not match" in r.figure, (r.status, r.figure, r.detail)


# ---- 08 检索增强 -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rag_ws(layers, tmp_path_factory):
    """The tiny chain to model/sft, and rag/index and rag/eval made by the RAG stage, sized down."""
    from puyu_lab.rag import RAGConfig, run

    ws = layers.workspace("sft", tmp_path_factory.mktemp("hw08") / "ws")
    run(ws, RAGConfig.for_profile("quick", encoder_steps=10, encoder_batch=16, n_questions=40, withheld_docs=8,
                                  n_read=12, course_reader=False, progress_bar=False))
    return ws


def test_rag_hw_threshold(rag_ws, tmp_path, monkeypatch):
    lab = Lab.fresh("09_rag", rag_ws, tmp_path, monkeypatch, "rag.hw_threshold")
    lab.run(0, target=("target_precision = 0.9", "target_precision = 0.0"))  # no higher than the chain's
    r = lab.result("rag.hw_threshold")
    assert r.status == "fail" and "aim above" in r.figure, (r.status, r.figure, r.detail)
    from puyu_lab.rag.evaluate import refusal_at, refusal_curve

    calib = lab.ns["hw_calib"]
    scores, truth = [x["relevance"] for x in calib], [x["answerable"] for x in calib]
    chain = refusal_at(scores, truth, lab.ns["hw_eval"]["metrics"]["threshold"])["precision"]
    best = max(p["precision"] for p in refusal_curve(scores, truth))
    assert best > chain, "the tiny chain's calibration half leaves no higher precision to aim at"
    target = (chain + best) / 2  # above the chain's, and reached on the calibration half
    lab.run(0, target=("target_precision = 0.9", f"target_precision = {target!r}"))
    r = lab.result("rag.hw_threshold")
    assert r.ok and r.consistent and "the chain's" in r.figure, (r.status, r.figure, r.detail)
    reaching = lab.ns["reaching"]
    if len(reaching) > 1:  # a higher threshold that also reaches the target is not the lowest
        lab.run(0, target=("target_precision = 0.9", f"target_precision = {target!r}"),
                pick=('my_threshold = reaching[0]["threshold"]', 'my_threshold = reaching[-1]["threshold"]'))
        r = lab.result("rag.hw_threshold")
        assert r.status == "fail" and "take the lowest" in r.figure, (r.status, r.figure, r.detail)


def test_rag_hw_chunks(rag_ws, tmp_path, monkeypatch):
    lab = Lab.fresh("09_rag", rag_ws, tmp_path, monkeypatch, "rag.hw_chunks")
    ws = lab.ws
    lab.run(1)
    r = lab.result("rag.hw_chunks")
    assert r.ok and r.consistent and r.figure.startswith("100 chars"), (r.status, r.figure, r.detail)
    rows = [json.loads(x) for x in ws.get("homework/rag/chunks").file("rows.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rows and all(len(p["text"]) <= 100 for x in rows for p in x["passages"])
    chain_chars = ws.get("rag/index").params["chunk_chars"]
    lab.run(1, size=("chunk_chars = 100", f"chunk_chars = {chain_chars}"))  # the chain's own size
    r = lab.result("rag.hw_chunks")
    assert r.status == "fail" and "rag/index's own" in r.figure, (r.status, r.figure, r.detail)

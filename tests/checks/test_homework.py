"""作业: homework tasks are checks of their own kind — optional, counted apart, switched by the teacher."""
import json

import pytest

from puyu_lab import checks
from puyu_lab.checks.core import REGISTRY, Outcome, check
from puyu_lab.workspace import Workspace


@pytest.fixture
def task():
    """A homework task of lab 01 that passes when the learner wrote scratch/hw.txt (removed after the test)."""
    @check("data.hw_test", "01_data.ipynb", "测试作业", "test homework", verifies="scratch/hw.txt exists",
           verifies_zh="scratch/hw.txt 存在", hint="write scratch/hw.txt", hint_zh="写 scratch/hw.txt",
           homework="basic")
    def _fn(ctx):
        p = ctx.ws.root / "scratch" / "hw.txt"
        return Outcome(p.is_file(), "written" if p.is_file() else "not yet")

    yield "data.hw_test"
    REGISTRY.pop("data.hw_test")


def test_homework_is_apart_from_the_labs_checks(tmp_path, task):
    ws = Workspace(tmp_path / "ws")
    ws.root.mkdir()
    assert task not in {c.id for c in checks.select("01")}
    assert task in [c.id for c in checks.select("01", homework=True)]
    only = {c.id: c.id == task for c in checks.select("01", homework=True)}  # the lab's real tasks switched off
    card = checks.homework("01", ws, display=False, enabled=only)  # not done: no error, it is optional
    assert [r.id for r in card.homework] == [task] and not card.homework[0].ok
    assert card.total == 0 and card.ok, "a homework task does not count as a check"
    (ws.root / "scratch").mkdir()
    (ws.root / "scratch" / "hw.txt").write_text("done")
    card = checks.homework("01", ws, display=False, enabled=only)
    assert card.homework[0].ok
    # the lab's self-check on an empty workspace fails its own checks and keeps the homework in the report
    with pytest.raises(checks.ChecksFailed) as e:
        checks.verify("01", ws, display=False)
    assert task not in str(e.value)
    report = json.loads((ws.root / "report" / "checks.json").read_text())
    kinds = {(r["id"], r["homework"]) for r in report["results"]}
    assert (task, "basic") in kinds and any(not h for _, h in kinds), kinds
    assert report["total"] == len(checks.select("01")), "the report's total counts the lab's checks only"
    text = card.text()
    assert "homework: 1/1 done" in text or "作业：完成 1/1 项" in text


def test_a_teacher_switches_a_task_off(tmp_path, task):
    ws = Workspace(tmp_path / "ws")
    ws.root.mkdir()
    ids = lambda card: {r.id for r in card.results}  # noqa: E731
    assert task not in ids(checks.homework("01", ws, display=False, enabled={task: False}))
    assert task in ids(checks.homework("01", ws, display=False, enabled={task: True}))


def test_every_homework_task_is_bilingual_and_leveled():
    for c in checks.select(homework=True):
        assert c.homework in ("basic", "advanced"), c.id
        assert c.verifies_zh.strip() and c.hint_zh.strip() and c.zh.strip(), f"{c.id}: needs its Chinese"


def test_a_wrong_level_is_refused():
    with pytest.raises(ValueError, match="homework='easy'"):
        check("data.hw_bad", "01_data.ipynb", "坏", "bad", verifies="-", hint="-", hint_zh="-", homework="easy")


@pytest.mark.notebook
def test_the_headless_chain_leaves_homework_cells_to_the_learner(tmp_path):
    """Cells tagged ``homework`` run when the learner runs them; ``make chain`` leaves them out (their starter code
    trains or measures outside the chain's time budget), unless PUYU_LAB_HOMEWORK=1."""
    import nbformat

    from puyu_lab.labrunner import run_lab

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("profile = 'quick'", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("open('ran.txt', 'a').write('lab\\n')"),
        nbformat.v4.new_code_cell("open('ran.txt', 'a').write('homework\\n')", metadata={"tags": ["homework"]}),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "lab.ipynb"
    nbformat.write(nb, path)
    ws = Workspace(tmp_path / "ws")
    res = run_lab(path, tmp_path / "out", profile="quick", workspace=ws)
    assert res.ok, res.error
    assert (tmp_path / "ran.txt").read_text() == "lab\n"
    assert not list((tmp_path / "out").glob(".*.input.ipynb*")), "the chain's input copy is removed"
    res = run_lab(path, tmp_path / "out", profile="quick", workspace=ws, homework=True)
    assert res.ok, res.error
    assert (tmp_path / "ran.txt").read_text() == "lab\nlab\nhomework\n"


def test_the_grader_rechecks_the_homework_the_teacher_assigned(tmp_path, task):
    """A bundle's 作业 evidence travels (homework/<lab>/<task> artifacts) and is re-checked by `puyu-lab grade`;
    the probe file's "homework" switches say which tasks count; a switched-off task is not graded; a bad switch is
    one clear error naming it."""
    from puyu_lab.checks.bundle import submit
    from puyu_lab.checks.grade import grade
    from puyu_lab.checks.probes import make_probes
    from puyu_lab.errors import InputError

    @check("data.hw_artifact", "01_data.ipynb", "测试作业产物", "test homework artifact",
           verifies="homework/data/test exists with n = 3", verifies_zh="homework/data/test 存在且 n = 3",
           hint="run the task", hint_zh="运行这道题", homework="advanced", needs=("homework/data/test",))
    def _fn(ctx):
        n = int((ctx.get("homework/data/test").path / "n.txt").read_text())
        return Outcome(n == 3, f"n = {n}", value=n)

    try:
        ws = Workspace(tmp_path / "ws")
        with ws.write("homework/data/test", kind="homework", stage="data") as w:
            (w.path / "n.txt").write_text("3")
        subs = tmp_path / "subs"
        submit(ws, subs / "amy.zip", learner="amy")
        doc = make_probes(1)
        assert doc["homework"]["data.hw_artifact"] is True and task in doc["homework"]
        doc["homework"] = {"data.hw_artifact": True, task: False}
        probes = tmp_path / "probes.json"
        probes.write_text(json.dumps(doc, ensure_ascii=False))
        book = grade(subs, tmp_path / "book", probes=probes)
        row = book.rows[0]
        assert row.homework["data.hw_artifact"]["status"] == "pass", row.homework
        assert task not in row.homework, "a task the teacher switched off is not graded"
        assert row.homework_done >= 1
        html = book.html_path.read_text(encoding="utf-8")
        assert "data-homework='data.hw_artifact'" in html
        assert "homework:data.hw_artifact" in book.csv_path.read_text(encoding="utf-8")
        doc["homework"] = {"data.hw_nonesuch": True}
        probes.write_text(json.dumps(doc))
        with pytest.raises(InputError, match="homework.data.hw_nonesuch: no such homework task"):
            grade(subs, tmp_path / "book2", probes=probes)
    finally:
        REGISTRY.pop("data.hw_artifact")

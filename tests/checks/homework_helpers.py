"""What the 作业 tests (``test_homework_a.py``, ``_b.py``, ``_c.py``) share: a lab's notebook cells, a homework
starter cell run on a workspace, the homework card's result for one task, evidence edited in place, a copy of a
module's workspace, and the checks every lab's homework section must pass."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import puyu_lab as pl
from puyu_lab import checks
from puyu_lab.workspace import Workspace

from ..conftest import ROOT


def cells(lab: str) -> list[dict]:
    """The cells of ``labs/<lab>.ipynb``."""
    return json.loads((ROOT / "labs" / f"{lab}.ipynb").read_text(encoding="utf-8"))["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def starter(lab: str, task: str, **lines: str) -> str:
    """The source of the code cell tagged ``homework`` that starts with ``# 作业 <task> `` in ``labs/<lab>.ipynb``
    (``task``: a check's id, or ``deploy`` for lab 06's shared cell); each keyword replaces the line that assigns
    that name (``sizes="[(64, 64, 64)]"``, ``steps="1"``)."""
    found = [(source(c), c) for c in cells(lab) if c["cell_type"] == "code" and source(c).startswith(f"# 作业 {task} ")]
    assert len(found) == 1, f"{lab}: one cell starts with '# 作业 {task} '"
    src, cell = found[0]
    assert "homework" in cell["metadata"].get("tags", []), f"{lab}: the {task} cell is tagged homework"
    for name, value in lines.items():
        src, n = re.subn(rf"^{re.escape(name)} = .*$", f"{name} = {value}", src, count=1, flags=re.M)
        assert n == 1, f"{task}: no line assigns {name}"
    return src


def run_cell(src: str, ns: dict) -> dict:
    """Run a cell's source in namespace ``ns`` (with ``pl``, and a ``display`` that shows nothing); ``ns`` after it."""
    ns.setdefault("pl", pl)
    ns.setdefault("display", lambda *a, **k: None)
    exec(compile(src, "<homework>", "exec"), ns)
    return ns


def result(lab: str, ws: Workspace, task: str):
    """``task``'s result on ``lab``'s homework card for ``ws``."""
    card = checks.homework(lab, ws, display=False, write=False)
    return next(r for r in card.results if r.id == task)


def assert_missing(lab: str, ws: Workspace, task: str) -> None:
    """``task`` is not done on ``ws``: its check reports its artifact missing (and does not pass)."""
    r = result(lab, ws, task)
    assert r.status == "missing" and not r.ok, (r.status, r.figure, r.detail)


def edit_json(path: Path, edit) -> None:
    """Edit a JSON file in place: ``edit`` changes the loaded value."""
    d = json.loads(path.read_text(encoding="utf-8"))
    edit(d)
    path.write_text(json.dumps(d, ensure_ascii=False), encoding="utf-8")


def replace_first_record(path: Path, record: dict) -> None:
    """A JSON-lines file with its first record replaced by ``record``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([json.dumps(record, ensure_ascii=False)] + lines[1:]) + "\n", encoding="utf-8")


def copy_ws(ws: Workspace | Path, tmp_path: Path) -> Workspace:
    """A copy of a module-scoped workspace (or of its root folder) under ``tmp_path``, for one test to change."""
    shutil.copytree(ws.root if isinstance(ws, Workspace) else ws, tmp_path / "ws", symlinks=True)
    return Workspace(tmp_path / "ws")


def assert_homework_section(lab: str, tasks: tuple[str, ...]) -> None:
    """``lab``'s homework: its tasks are ``tasks`` (basic, then advanced), each with a starter cell tagged
    ``homework`` and named in the section's text; the section follows "Go further", every code cell of it is a
    tagged starter but the last, which shows the homework card and runs in the chain; the closing cell says how to
    submit."""
    assert [c.id for c in checks.select(lab, homework=True)] == list(tasks)
    assert [c.homework for c in checks.select(lab, homework=True)] == ["basic", "advanced"]
    for t in tasks:
        starter(lab, t)
    nb = cells(lab)
    code = [c for c in nb if c["cell_type"] == "code"]
    assert f'checks.homework("{lab}", ws)' in source(code[-1]), f"{lab}: the last code cell shows the card"
    assert "homework" not in code[-1]["metadata"].get("tags", []), f"{lab}: the card cell runs in the chain"
    heading = next(i for i, c in enumerate(nb) if source(c).startswith("## 作业 Homework"))
    assert heading > max(i for i, c in enumerate(nb) if "## 更进一步 Go further" in source(c))
    section = [c for c in nb[heading:] if c["cell_type"] == "code"]
    assert all("homework" in c["metadata"].get("tags", []) for c in section[:-1]), \
        f"{lab}: every starter cell of the section is tagged homework"
    for t in tasks:  # each task's markdown names its check
        assert any(f"`{t}`" in source(c) for c in nb[heading:] if c["cell_type"] == "markdown"), f"{lab}: {t}"
    closing = source(nb[-1])
    assert "puyu-lab submit --learner" in closing and "workspace/report/index.html" in closing


def fails(lab: str, ws: Workspace, task: str):
    """``task``'s result on ``lab``'s homework card for ``ws``, which must not pass."""
    r = result(lab, ws, task)
    assert not r.ok, (r.status, r.figure, r.detail)
    return r


class Evidence:
    """A JSON file of a homework artifact as its starter cell wrote it, made wrong one way at a time."""

    def __init__(self, path: Path):
        self.path, self.before = path, path.read_text(encoding="utf-8")

    def restore(self) -> None:
        """The file as the cell wrote it."""
        self.path.write_text(self.before, encoding="utf-8")

    def wrong(self, edit) -> None:
        """The file as the cell wrote it, then changed by ``edit`` (which changes the loaded value)."""
        self.restore()
        edit_json(self.path, edit)

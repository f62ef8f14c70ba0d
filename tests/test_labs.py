"""Every lab in labs/ runs top to bottom headless with the quick profile, in order.

Labs are discovered, not listed: a new notebook is executed here (and in CI) from the day it lands.
The labs share one workspace, as in ``make chain``, because each lab reads what the previous made
(the session-wide ``chain`` fixture of conftest.py, which the browser tests reuse).

Discovery and each lab's required sections are checked without running anything (fast tests);
only ``test_lab_runs`` executes the notebooks.
"""
import json
import math
import re

import pytest

from puyu_lab.labrunner import discover
from puyu_lab.stages import STAGES

from .conftest import ROOT

LABS = discover(ROOT / "labs")


def _cells(nb):
    return json.loads(nb.read_text(encoding="utf-8"))["cells"]


def _text(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def test_labs_are_discovered():
    """Every notebook in labs/ is found, in order: the tour, then one lab per stage, in chain order."""
    names = [p.name for p in LABS]
    on_disk = sorted(p.name for p in (ROOT / "labs").glob("*.ipynb"))
    assert names == on_disk, "every notebook in labs/ must be a discoverable lab named NN_name.ipynb"
    assert names == ["00_tour.ipynb"] + [s.lab for s in STAGES], "the tour, then each stage's lab in chain order"
    assert [int(n[:2]) for n in names] == list(range(len(names))), "lab numbers run 00, 01, … without gaps"
    assert discover() == LABS  # the default folder is this checkout's labs/


def test_discover_picks_lab_notebooks_only_in_number_order(tmp_path):
    for name in ("10_late.ipynb", "02_b.ipynb", "01_a.ipynb", "scratch.ipynb", "1_short.ipynb",
                 "03-dash.ipynb", "04_notes.md", "Untitled.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in discover(tmp_path)] == ["01_a.ipynb", "02_b.ipynb", "10_late.ipynb"]


@pytest.mark.parametrize("nb", LABS, ids=[p.stem for p in LABS])
def test_lab_has_the_required_sections(nb):
    """Each lab opens with its title, goal, time and needs (a stage lab: what it makes), has one
    parameters cell under its heading, ends with a self-check and a go-further section, and
    records its key figures."""
    cells = _cells(nb)
    head = _text(cells[0])
    assert cells[0]["cell_type"] == "markdown"
    assert head.startswith(f"# {nb.name[:2]} · "), f"{nb.name}: the first cell starts with '# {nb.name[:2]} · <title>'"
    for field in ("**Goal.**", "**Time (quick profile):**", "**Needs:**"):
        assert field in head, f"{nb.name}: the opening cell lacks {field}"
    stage = next((s for s in STAGES if s.lab == nb.name), None)
    if stage is not None:
        title = head.splitlines()[0]
        assert stage.zh in title and stage.en in title, f"{nb.name}: title {title!r} names stage {stage.title!r}"
        assert "**Makes:**" in head, f"{nb.name}: the opening cell lacks **Makes:**"
        for art in stage.produces:
            assert f"`{art}" in head, f"{nb.name}: the opening cell does not name what it makes: `{art}` (stages.py)"
    headings = [ln for c in cells if c["cell_type"] == "markdown" for ln in _text(c).splitlines()
                if ln.startswith("## ")]
    where = {}
    for h in ("## 参数 Parameters", "## 自检 Self-check", "## 更进一步 Go further"):
        at = [i for i, x in enumerate(headings) if x.startswith(h)]
        assert at, f"{nb.name}: no section {h!r} (sections: {headings})"
        where[h] = at[0]
    assert where["## 参数 Parameters"] == 0, f"{nb.name}: the parameters come first ({headings})"
    assert where["## 自检 Self-check"] < where["## 更进一步 Go further"] == len(headings) - 1, \
        f"{nb.name}: the lab ends with its self-check, then go-further ({headings})"
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{nb.name} needs one cell tagged 'parameters'"
    p = tagged[0]
    # the defaults come from the environment (PUYU_LAB_PROFILE / PUYU_LAB_LANG, as the tour documents); papermill
    # (make chain) injects its own values in a cell after this one
    assert cells[p]["cell_type"] == "code" and re.search(
        r'^profile = os\.environ\.get\("PUYU_LAB_PROFILE", "quick"\)$', _text(cells[p]), re.M), \
        f'{nb.name}: the parameters cell sets profile = os.environ.get("PUYU_LAB_PROFILE", "quick")'
    assert re.search(r'^language = os\.environ\.get\("PUYU_LAB_LANG"\)  #', _text(cells[p]), re.M), \
        f'{nb.name}: the parameters cell sets language = os.environ.get("PUYU_LAB_LANG") (unset: the system\'s language)'
    assert re.search(r"^import os$", _text(cells[p]), re.M), f"{nb.name}: the parameters cell imports os"
    assert "## 参数 Parameters" in _text(cells[p - 1]), f"{nb.name}: the parameters cell follows its heading"
    assert any("record_figures(" in _text(c) for c in cells[p + 1:] if c["cell_type"] == "code"), \
        f"{nb.name} should record its key figures (puyu_lab.labrunner.record_figures)"


@pytest.mark.parametrize("nb", LABS, ids=[p.stem for p in LABS])
@pytest.mark.notebook
@pytest.mark.slow
def test_lab_runs(nb, chain):
    res = chain.run(nb)
    assert res.ok, res.error
    assert res.figures, f"{nb.name} should record its key figures (puyu_lab.labrunner.record_figures)"
    # a figure is a real number: a NaN or an infinity is a measurement gone wrong (the checks passed regardless)
    broken = {k: v for k, v in res.figures.items() if isinstance(v, float) and not math.isfinite(v)}
    assert not broken, f"{nb.name} recorded figures that are not finite: {broken}"
    # its report opens offline: every panel as it ended (a snapshot per widget output), no CDN script
    page = res.executed.with_suffix(".html").read_text(encoding="utf-8")
    for bad in ("could not render", "(no snapshot:", "(an interactive widget", "cdnjs.cloudflare.com/ajax/libs/require",
                "unpkg.com/@jupyter-widgets"):
        assert bad not in page, f"{res.executed.with_suffix('.html')}: {bad!r}"
    if "puyu-plot" in page:
        assert (res.executed.parent / "plotly.min.js").is_file()


def test_notebooks_are_committed_clean():
    for nb in LABS:
        data = json.loads(nb.read_text(encoding="utf-8"))
        for cell in data["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs") and not cell.get("execution_count"), f"{nb.name} has outputs"
        assert "widgets" not in data.get("metadata", {}), f"{nb.name} carries widget state"
        tags = [c.get("metadata", {}).get("tags", []) for c in data["cells"]]
        assert sum("parameters" in t for t in tags) == 1, f"{nb.name} needs one cell tagged 'parameters'"


@pytest.mark.parametrize("nb", LABS, ids=[p.stem for p in LABS])
def test_every_markdown_cell_is_bilingual_from_one_source(nb):
    """Each markdown cell holds its Chinese (first) and its English, so the two cannot drift (puyu_lab.labtext)."""
    from puyu_lab.labtext import problems

    bad = [f"cell {i}: {p}" for i, c in enumerate(_cells(nb)) if c["cell_type"] == "markdown"
           for p in problems(_text(c))]
    assert not bad, f"{nb.name}:\n" + "\n".join(bad)


def test_a_language_block_renders_as_markdown_and_the_style_hides_the_other():
    """nbconvert's own Markdown renderer (what the chain's HTML uses) keeps the blocks' Markdown, and the CSS
    ``setup`` shows hides exactly the other language."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    from puyu_lab.labtext import blocks, language_style, problems

    src = ('## 2 预训练 Pretraining\n\n<div lang="zh" class="lang-zh">\n\n**目标。** 训练一个分词器。\n\n- 第一步\n\n'
           '</div>\n<div lang="en" class="lang-en">\n\n**Goal.** Train a tokenizer.\n\n- step one\n\n</div>')
    assert problems(src) == [] and blocks(src)["zh"].startswith("**目标。**")
    html = markdown2html_mistune(src)
    assert "<strong>目标。</strong>" in html and "<strong>Goal.</strong>" in html and "<li>step one</li>" in html
    assert 'class="lang-zh"' in html and 'class="lang-en"' in html
    assert language_style("zh") == "<style>.lang-en { display: none; } .lang-zh { display: block; }</style>"
    assert language_style("en") == "<style>.lang-zh { display: none; } .lang-en { display: block; }</style>"
    assert problems("Only English.") and problems("## Parameters")
    assert any("first" in p for p in problems(src.replace('lang="zh" class="lang-zh"', "TMP")
                                              .replace('lang="en" class="lang-en"', 'lang="zh" class="lang-zh"')
                                              .replace("TMP", 'lang="en" class="lang-en"')))


def test_the_language_is_the_variable_then_the_system_locale(monkeypatch):
    from puyu_lab.i18n import default_language

    for var in ("PUYU_LAB_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(var, raising=False)
    assert default_language() == "en"
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    assert default_language() == "zh"
    monkeypatch.setenv("LC_ALL", "en_US.UTF-8")
    assert default_language() == "en"  # LC_ALL overrides LANG, as in POSIX
    monkeypatch.setenv("PUYU_LAB_LANG", "zh")
    assert default_language() == "zh"  # the variable overrides the locale


@pytest.mark.notebook
@pytest.mark.slow
def test_a_lab_run_in_chinese_prints_no_english_only_sentence(tmp_path):
    """The tour and the data lab, run with language "zh" in a workspace of their own: no line they print, raise or
    show as plain text is an English sentence without Chinese (puyu_lab.labtext.english_only_sentences)."""
    from puyu_lab.labrunner import run_lab
    from puyu_lab.labtext import english_only_sentences
    from puyu_lab.workspace import Workspace

    ws = Workspace(tmp_path / "ws")

    def english_lines(name: str, language: str) -> list[str]:
        res = run_lab(ROOT / "labs" / name, tmp_path / language, profile="quick", workspace=ws,
                      parameters={"language": language})
        assert res.ok, res.error
        found = []
        for i, cell in enumerate(json.loads(res.executed.read_text(encoding="utf-8"))["cells"]):
            for o in cell.get("outputs", []):
                if o.get("output_type") == "stream" and o.get("name") == "stdout":
                    text = _text({"source": o.get("text", "")})
                elif o.get("output_type") == "error":
                    text = f"{o.get('ename')}: {o.get('evalue')}"
                else:
                    continue
                found += [f"{name} cell {i}: {line}" for line in english_only_sentences(text)]
        return found

    # the detector sees English where there is some: the tour run in English prints English sentences
    assert len(english_lines("00_tour.ipynb", "en")) >= 2
    bad = english_lines("00_tour.ipynb", "zh") + english_lines("01_data.ipynb", "zh")
    assert not bad, "English-only lines in a zh run:\n" + "\n".join(bad[:40])

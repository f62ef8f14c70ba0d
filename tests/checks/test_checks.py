"""The checks module on small real workspaces: every lab has checks, every self-check cell calls them, a fresh
workspace fails each with its hint, a check fails on a real artifact that misses its bound, and a figure edited
in a manifest is caught against its evidence. Every hint is written in Chinese too, and a learner reads the one of
the current language on the card and in the self-check cell's error."""
from __future__ import annotations

import json
import re

import pytest

from puyu_lab.checks import REGISTRY, ChecksFailed, ReportCard, run, select, verify
from puyu_lab.checks.probes import load_probes, make_probes
from puyu_lab.errors import InputError
from puyu_lab.i18n import get_language, set_language
from puyu_lab.labrunner import discover
from puyu_lab.labtext import cjk_share
from puyu_lab.workspace import Workspace

from ..conftest import ROOT

LABS = discover(ROOT / "labs")


def test_every_lab_has_checks_with_titles_and_hints():
    checks = select()
    assert {c.lab for c in checks} == {p.name for p in LABS}
    for c in checks:
        assert c.zh and c.en and c.verifies and c.hint and c.hint_zh, c.id
        assert c.id.split(".", 1)[0] in c.lab, c.id
        assert c.scope in ("artifact", "machine")
    assert [c.id for c in select("03")] == [c.id for c in select("finetune")] == [c.id for c in select("03_finetune.ipynb")]
    with pytest.raises(ValueError, match="labs with checks are"):
        select("99_nothing")


@pytest.mark.parametrize("nb", LABS, ids=[p.stem for p in LABS])
def test_every_self_check_cell_calls_the_checks_module(nb):
    cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
    i = next(i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and "自检 Self-check" in "".join(c["source"]))
    code = "".join(cells[i + 1]["source"])
    assert f'checks.verify("{nb.stem}", ws)' in code, f"{nb.name}: the first self-check cell should call the checks"


def test_fresh_workspace_fails_each_check_with_its_hint(tmp_path, capsys):
    from puyu_lab.cli import main

    home = tmp_path / "ws"
    assert main(["check", "--home", str(home), "--no-write"]) == 1
    out = capsys.readouterr().out
    card = run(Workspace(home), scope="artifact")
    assert card.total == sum(c.scope == "artifact" and not c.homework for c in REGISTRY.values()) and card.passed == 0
    for r in card.results:
        assert r.status == "missing" and not r.ok, r
        assert f"✗ {r.id}" in out and f"→ {r.hint}" in out, r.id
        assert "run " in r.detail  # which lab makes what it needs
    assert "checks passed" in out.splitlines()[-1]


CODE = re.compile(r"`([^`]*)`")


def test_every_hint_has_a_chinese_twin_with_the_same_code():
    for c in select():
        en, zh = c.hint, c.hint_zh
        assert zh.strip() and zh != en, c.id
        assert en.count("`") % 2 == 0 and zh.count("`") % 2 == 0, f"{c.id}: an unclosed backtick"
        prose_en, prose_zh = CODE.sub("", en), CODE.sub("", zh)
        assert cjk_share(prose_zh) >= 0.3, f"{c.id}: hint_zh is not mostly Chinese: {zh!r}"
        # the same code to run, the same config fields, in the same order
        assert CODE.findall(zh) == CODE.findall(en), f"{c.id}: {CODE.findall(zh)} != {CODE.findall(en)}"
        # the same lab numbers, sections, sizes and budgets
        assert set(re.findall(r"\d+", prose_en)) <= set(re.findall(r"\d+", prose_zh)), c.id
        # Chinese prose: full-width punctuation, and a lab is 实验 NN
        assert not re.search(r"[,;:()]", prose_zh), f"{c.id}: half-width punctuation in {zh!r}"
        assert not re.search(r"\blabs? \d", prose_zh), c.id
    with pytest.raises(TypeError, match="hint_zh"):
        from puyu_lab.checks.core import check

        check("x.y", "99_x.ipynb", "题", "title", verifies="v", hint="h")  # the Chinese hint is required


@pytest.fixture
def lang():
    """Set the course language in a test; the previous one comes back afterwards."""
    before = get_language()
    yield set_language
    set_language(before)


@pytest.mark.parametrize("language", ["zh", "en"])
def test_a_failing_check_shows_its_hint_in_the_current_language(tmp_path, lang, language):
    from puyu_lab.checks.report import card_fragment

    lang(language)
    ws = Workspace(tmp_path / "ws")  # fresh: every check of lab 03 fails (its artifacts are missing)
    with pytest.raises(ChecksFailed) as err:
        verify("03_finetune", ws, display=False, write=False)
    card = run(ws, "03_finetune")
    text, html, msg = card.text(), card_fragment(card), str(err.value)
    assert card.failures
    for r in card.failures:
        c = REGISTRY[r.id]
        shown, other = (c.hint_zh, c.hint) if language == "zh" else (c.hint, c.hint_zh)
        assert r.hint == shown and (r.hint_en, r.hint_zh) == (c.hint, c.hint_zh)
        assert f"→ {shown}" in text and other not in text, r.id
        assert f"✗ {r.id} ({r.figure}): {shown}" in msg and other not in msg, r.id
        assert f"→ {html_escape(shown)}</div>" in html and html_escape(other) not in html, r.id
    # a card drawn later follows the language then current, whichever language it ran in
    lang("en" if language == "zh" else "zh")
    assert all(f"→ {REGISTRY[r.id].hint_zh if language == 'en' else REGISTRY[r.id].hint}" in card.text()
               for r in card.failures)


def html_escape(s: str) -> str:
    import html

    return html.escape(s)


def test_report_json_keeps_both_hints_and_old_reports_still_load(tmp_path, lang):
    lang("zh")
    card = run(Workspace(tmp_path / "ws"), "02_pretrain")
    saved = json.loads(json.dumps(card.as_dict(), ensure_ascii=False))
    for d in saved["results"]:
        c = REGISTRY[d["id"]]
        assert (d["hint"], d["hint_en"], d["hint_zh"]) == (c.hint_zh, c.hint, c.hint_zh)
    assert ReportCard.from_dict(saved).as_dict() == saved
    # a checks.json written before hints were bilingual (no hint_en / hint_zh), or by a newer version (more fields)
    old = json.loads(json.dumps(saved))
    for d in old["results"]:
        del d["hint_en"], d["hint_zh"]
        d["from_the_future"] = 1
    back = ReportCard.from_dict(old)
    assert [r.hint_in("en") for r in back.results] == [r.hint_in("zh") for r in back.results] == \
        [d["hint"] for d in old["results"]]
    assert "→ " + old["results"][0]["hint"] in back.text()


def test_a_real_artifact_that_misses_its_bound_fails_with_the_figure(layers):
    # the tests' small corpus keeps fewer than 1,000 training documents: data.size fails, the rest pass
    card = run(Workspace(layers.path("corpus")), "01_data")
    res = {r.id: r for r in card.results}
    assert res["data.size"].status == "fail" and "train" in res["data.size"].figure
    assert res["data.pii"].ok and res["data.sources"].ok
    assert all(r.consistent for r in card.results)


def test_an_edited_manifest_figure_is_caught_against_its_evidence(layers, tmp_path):
    ws = layers.workspace("base", tmp_path / "ws")
    art = ws.get("model/base")
    man = json.loads((art.path / "manifest.json").read_text(encoding="utf-8"))
    assert run(ws, "02_pretrain").results[0].consistent
    man["metrics"]["eval_loss"] = man["metrics"]["eval_loss"] * 0.5  # "my loss was half that"
    (art.path / "manifest.json").write_text(json.dumps(man), encoding="utf-8")
    loss = next(r for r in run(ws, "02_pretrain").results if r.id == "pretrain.loss")
    assert not loss.consistent and loss.claimed == pytest.approx(loss.value * 0.5)


def test_report_card_page_and_json(layers, tmp_path):
    from puyu_lab.checks.report import write_report

    card = run(Workspace(layers.path("corpus")), scope="artifact")
    page = write_report(card, tmp_path / "report")
    text = page.read_text(encoding="utf-8")
    assert "<script src='plotly.min.js'>" in text and "https://" not in text
    assert (tmp_path / "report" / "plotly.min.js").is_file()
    saved = json.loads((tmp_path / "report" / "checks.json").read_text(encoding="utf-8"))
    assert saved["passed"] == card.passed and len(saved["results"]) == card.total
    assert text.count("data-check=") == card.total


def test_manifests_record_what_the_stage_wrote(layers):
    import hashlib

    art = Workspace(layers.path("corpus")).get("corpus/clean")
    files = art.manifest["files"]
    assert files and "manifest.json" not in files
    for rel, meta in files.items():
        assert hashlib.sha256((art.path / rel).read_bytes()).hexdigest() == meta["sha256"], rel


def test_probe_file_errors_name_the_group_and_field(tmp_path):
    p = tmp_path / "probes.json"
    doc = make_probes(3)
    assert {g["id"] for g in doc["groups"]} == {"selfcog", "sentiment", "tools"}
    p.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    assert [g.id for g in load_probes(p)] == ["selfcog", "sentiment", "tools"]
    assert make_probes(3) == doc and make_probes(4) != doc  # the teacher's seed decides
    bad = {"groups": [{"id": "a", "kind": "answer", "items": [{"prompt": "x"}]}]}
    p.write_text(json.dumps(bad), encoding="utf-8")
    with pytest.raises(InputError, match=r"groups\[0\]\.items\[0\].*expect"):
        load_probes(p)
    p.write_text('{"groups": [{"id": "a", "kind": "oops"}]}', encoding="utf-8")
    with pytest.raises(InputError, match=r"groups\[0\]\.kind"):
        load_probes(p)
    p.write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match="probes.json:1"):
        load_probes(p)


# ---- what a check measured is written in both languages ---------------------------------------------------------
def _english_words(text: str) -> list[str]:
    """Lower-case English words in a piece of a figure: artifact names (model/sft), identifiers (chars_per_token),
    quoted values ('pos') and the eval's model keys do not count."""
    text = re.sub(r"'[^']*'|`[^`]*`", " ", text)  # a quoted value ('pos'), code
    kept = [w for w in text.split() if not re.search(r"[/_@.=]", w)]
    return [w for w in re.findall(r"\b[a-z]{3,}\b", " ".join(kept)) if w not in {"base", "sft", "dpo", "orpo", "chain"}]


def _untranslated(node) -> list[str]:
    """The English literal pieces of a figure / detail expression that are not written with ``say`` (or ``joined``)."""
    import ast

    if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("say", "joined", "Msg"):
        return []
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value] if _english_words(node.value) else []
    if isinstance(node, ast.FormattedValue):  # f"{r['steps']}": a value, not words
        return []
    return [bad for child in ast.iter_child_nodes(node) for bad in _untranslated(child)]


def _literal_text(node) -> str:
    """The literal words of a string expression (the values formatted into an f-string left out)."""
    import ast

    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.FormattedValue):
        return " "
    return "".join(_literal_text(c) for c in ast.iter_child_nodes(node))


def test_every_figure_and_detail_of_a_check_is_written_in_both_languages():
    """Each Outcome's figure and detail (and a stale artifact's) is a ``say("中文", "English")``, or has no English words
    (a number, a file name): a learner reading Chinese never meets an English figure on the card."""
    import ast

    from puyu_lab.checks import core, evidence, labs
    from puyu_lab.labtext import cjk_share

    files = sorted((ROOT / "puyu_lab" / "checks" / "labs").glob("*.py")) + [ROOT / "puyu_lab" / "checks" / "evidence.py"]
    assert {p.stem for p in files} >= {"agent", "data", "deploy", "eval", "finetune", "preference", "pretrain", "rag", "tour"}
    found, bad = 0, []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            exprs = []
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("Outcome", "stale"):
                pos = 1 if node.func.id == "Outcome" else 3
                exprs += node.args[pos:pos + 1] + [k.value for k in node.keywords if k.arg in ("figure", "detail")]
                found += 1
            elif isinstance(node, ast.Assign) and any(getattr(t, "id", "") in ("fig", "figure", "detail") for t in node.targets):
                exprs.append(node.value)
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "say":
                zh, en = node.args  # say(zh, en): the first one is the Chinese
                zh_text = _literal_text(zh)
                if _english_words(zh_text) and cjk_share(zh_text) < 0.2:
                    bad.append(f"{path.name}:{node.lineno}: say()'s Chinese reads as English: {zh_text!r}")
            for e in exprs:
                bad += [f"{path.name}:{e.lineno}: {s!r}" for s in _untranslated(e)]
    assert found > 100 and not bad, "\n".join(bad)
    assert core.MISSING_EVIDENCE.zh and evidence.MADE_AGAIN.zh and labs


@pytest.mark.parametrize("language", ["zh", "en"])
def test_a_card_shows_its_figures_in_the_language_current_when_it_is_drawn(layers, tmp_path, lang, language):
    from puyu_lab.checks.report import card_fragment

    lang(language)
    card = run(Workspace(layers.path("corpus")), "01_data")
    size = next(r for r in card.results if r.id == "data.size")
    assert size.figure_zh != size.figure_en and "训练" in size.figure_zh and "train" in size.figure_en
    assert size.figure == (size.figure_zh if language == "zh" else size.figure_en)
    fresh = run(Workspace(tmp_path / "ws"), "03_finetune")  # missing artifacts: the figure and what to run
    for other in ("zh", "en"):
        lang(other)
        text, html = card.text() + fresh.text(), card_fragment(card) + card_fragment(fresh)
        for r in card.results + fresh.results:
            shown, hidden = (r.figure_zh, r.figure_en) if other == "zh" else (r.figure_en, r.figure_zh)
            assert shown[:33] in text and html_escape(shown) in html, r.id
            if hidden != shown:
                assert html_escape(hidden) not in html, r.id
            if r.detail_en != r.detail_zh:
                assert (r.detail_zh if other == "zh" else r.detail_en) in text, r.id
                assert (r.detail_en if other == "zh" else r.detail_zh) not in text, r.id
        if other == "zh":
            assert all(not _english_words(r.figure_zh) for r in card.results + fresh.results)
            assert all("run " not in r.detail_zh and r.detail_zh.startswith("先运行") for r in fresh.results)
    # checks.json keeps both; a report written before figures were bilingual still loads and shows its figure
    saved = json.loads(json.dumps(card.as_dict(), ensure_ascii=False))
    assert ReportCard.from_dict(saved).results[0].figure_zh == card.results[0].figure_zh
    for d in saved["results"]:
        for k in ("figure_en", "figure_zh", "detail_en", "detail_zh"):
            del d[k]
    old = ReportCard.from_dict(saved)
    assert [r.figure_in("zh") for r in old.results] == [r.figure_in("en") for r in old.results] == \
        [d["figure"] for d in saved["results"]]


def test_the_card_is_left_aligned_inside_jupyterlab(tmp_path):
    """JupyterLab right-aligns an HTML output's cells (``:not(.jp-RenderedMarkdown).jp-RenderedHTMLCommon td``,
    specificity 0-2-1) and centres its tables: the card's stylesheet outranks that rule, and every cell carries its
    alignment inline too (what stays where a notebook's <style> is stripped)."""
    from puyu_lab.checks.report import STYLE, card_fragment

    def specificity(selector: str) -> tuple[int, int]:  # (classes, elements): the selectors here have no id
        selector = re.sub(r":not\(([^)]*)\)", r" \1", selector)  # :not() counts as its argument
        classes = len(re.findall(r"[.:][\w-]+", selector))
        tags = len(re.findall(r"(?:^|[\s>+~])([a-z][\w-]*)", selector))
        return classes, tags

    jupyterlab = specificity(":not(.jp-RenderedMarkdown).jp-RenderedHTMLCommon td")
    assert jupyterlab == (2, 1)
    rules = re.findall(r"([^{}]+)\{([^}]*)\}", STYLE.replace("<style>", "").replace("\n", ""))
    for cell in ("td", "th"):
        winners = [sel for sels, body in rules if "text-align:left" in body for sel in sels.split(",")
                   if sel.strip().endswith(cell) and specificity(sel.strip()) > jupyterlab]
        assert winners, cell
    assert any("margin-left:0" in body for sels, body in rules if "table.puyu-card" in sels)
    html = card_fragment(run(Workspace(tmp_path / "ws"), "03_finetune"))
    cells = re.findall(r"<t[dh][ >][^>]*>?", html)
    assert cells and all("text-align:left" in c for c in cells), cells[:3]
    assert all("margin-left:0" in t for t in re.findall(r"<table[^>]*>", html))


@pytest.mark.slow
def test_a_tool_probe_runs_the_agent_loop_on_fresh_arithmetic():
    """The teacher's hidden ``tool`` group: fresh arithmetic through the agent loop with the calculator offered. The
    course assistant passes most; the same questions expecting wrong numbers pass none (the answer is checked, not
    the call alone); its phrasings are none the fine-tune, RL or held-out sets use."""
    from puyu_lab.checks.probes import TOOL_FORMS, ProbeGroup, run_group
    from puyu_lab.contracts.tasks import ARITHMETIC_QUESTION, ARITHMETIC_RL_FORMS, ARITHMETIC_UNSEEN_FORMS
    from puyu_lab.finetune.data import ARITH_Q
    from puyu_lab.models import course

    assert not set(TOOL_FORMS) & {ARITHMETIC_QUESTION, *ARITH_Q, *ARITHMETIC_RL_FORMS, *ARITHMETIC_UNSEEN_FORMS}
    doc = make_probes(5, n_tools=6)
    tools = next(g for g in load_probes_doc(doc) if g.kind == "tool")
    assert tools.model == "model/rl" and len(tools.items) == 6
    with course.load("assistant") as m:
        right = run_group(m, tools)
        wrong = run_group(m, ProbeGroup("w", "tool", [{**it, "expect": str(int(it["expect"]) + 1)} for it in tools.items],
                                        0.8, max_new_tokens=64))
    assert right.passed >= 4 and all(r["called"] for r in right.rows if r["ok"]), right.rows
    assert wrong.passed == 0


def load_probes_doc(doc):
    import json
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)
    return load_probes(f.name)

"""中文优先 (issue 38): what the command line and the chain's pages say follows PUYU_LAB_LANG.

- ``puyu-lab status``, ``submit``, ``grade`` and ``check`` print every line in Chinese under zh and none under en (the
  same English-line test as the doctor's, tests/test_i18n_docs.py), paths and commands aside;
- the chain's line per lab, its failure and its report page (headings, status, the numeric path) are in the current
  language; the gradebook page and its flags too, while the CSV's keys and data-* attributes stay English;
- lab 00's tables: the doctor's check names as shown and its statuses, the profiles' "fits", translated; no profile
  types a time (times are measured: the table ``make chain`` writes).
"""
from __future__ import annotations

import html
import re

import pytest

from puyu_lab import i18n

from .test_i18n_docs import chinese_lines, english_lines


@pytest.fixture
def lang(monkeypatch):
    """Sets the language for the test (put back after it)."""
    return lambda code: monkeypatch.setattr(i18n, "_LANG", code)


def _workspace(root):
    from puyu_lab.workspace import Workspace

    ws = Workspace(root)
    with ws.write("corpus/raw", kind="corpus", stage="data", params={"n": 1}) as w:
        (w.path / "data.jsonl").write_text('{"text": "你好"}\n', encoding="utf-8")
        w.metrics["documents"] = 1
    return ws


def _cli(capsys, *argv) -> tuple[int, str]:
    from puyu_lab.cli import main

    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize("code", ["zh", "en"])
def test_status_submit_grade_and_check_speak_the_course_language(lang, code, capsys, tmp_path):
    lang(code)
    ws = _workspace(tmp_path / "ws")
    (tmp_path / "class").mkdir()
    outs = {}
    outs["status"] = _cli(capsys, "status", "--home", str(ws.root))[1]
    outs["submit"] = _cli(capsys, "submit", "--home", str(ws.root), "--out", str(tmp_path / "class"),
                          "--learner", "alice", "--no-model")[1]
    outs["grade"] = _cli(capsys, "grade", str(tmp_path / "class"), "--out", str(tmp_path / "book"))[1]
    outs["check"] = _cli(capsys, "check", "01", "--home", str(ws.root), "--no-write")[1]
    outs["no lab"] = _cli(capsys, "check", "99", "--home", str(ws.root))[1]
    from puyu_lab.stages import STAGES

    for verb, out in outs.items():
        for stage in STAGES:  # a stage's title names it in both languages (书生·万卷 · Data), in either language
            out = out.replace(stage.title, "")
        if code == "zh":
            assert not english_lines(out), f"`puyu-lab {verb}` English-only under zh:\n" + "\n".join(english_lines(out))
        elif verb != "check":  # a check's title is a bilingual heading (语料规模 Corpus size), in either language
            assert not chinese_lines(out), f"`puyu-lab {verb}` Chinese under en:\n" + "\n".join(chinese_lines(out))
    assert str(ws.root.resolve()) in outs["status"] and "corpus/raw" in outs["status"]
    assert ("已就绪" if code == "zh" else "present") in outs["status"]
    assert re.search(r"submission-alice-\S+\.zip", outs["submit"]) and "alice" in outs["grade"]
    assert ("错误：" if code == "zh" else "error: ") in outs["no lab"] and "'99'" in outs["no lab"]
    page = (tmp_path / "book" / "gradebook.html").read_text(encoding="utf-8")
    assert ("成绩册" in page) == (code == "zh") and "data-verdict='incomplete'" in page
    assert ("每位学员" in page) == (code == "zh") and ("Per learner" in page) == (code == "en")


def test_gradebook_flags_are_in_both_languages(lang, tmp_path):
    """Each flag is a Msg: the English (what the tests and the CSV's readers match) with its Chinese; the page and
    the CSV show the current language's."""
    import zipfile

    from puyu_lab.checks.grade import grade, grade_one

    bad = tmp_path / "class" / "bad.zip"
    bad.parent.mkdir()
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("bundle.json", '{"format": "other"}')
    (flag,) = grade_one(bad).flags
    assert flag.startswith("bundle.json: format 'other', expected") and flag.zh.startswith("bundle.json：格式是 'other'")
    lang("zh")
    book = grade(tmp_path / "class", tmp_path / "book")
    page = html.unescape(book.html_path.read_text(encoding="utf-8"))
    assert flag.zh in page and str(flag) not in page and "有疑点" in page
    assert flag.zh in book.csv_path.read_text(encoding="utf-8")
    assert "data-verdict='flagged'" in page  # the keys stay English


@pytest.mark.parametrize("code", ["zh", "en"])
def test_the_chain_line_and_report_page(lang, code, tmp_path):
    from puyu_lab.errors import Msg
    from puyu_lab.labrunner import LabResult, write_report

    lang(code)
    ok = LabResult("01_data.ipynb", True, 12.5, {"kept": 0.5})
    failed = LabResult("02_pretrain.ipynb", False, 3.0, {},
                       Msg("cell 4 (execution count 3): ValueError: bad — executed copy: x.ipynb",
                           "第 4 个单元格（执行序号 3）出错：ValueError: bad —— 执行后的副本：x.ipynb"))
    lines = ok.line() + "\n" + failed.line()
    if code == "zh":
        assert lines.startswith("通过") and "失败" in lines and "第 4 个单元格" in lines and "FAIL" not in lines
    else:
        assert lines.startswith("ok") and "FAIL" in lines and "cell 4" in lines and not chinese_lines(lines)
    out = tmp_path / "ws" / "chain"
    out.mkdir(parents=True)
    page = write_report([ok, failed], out, "quick", numerics="fp32 (a test)").read_text(encoding="utf-8")
    zh_words = ("全链路报告", "<th>实验</th>", "<th>用时（秒）</th>", "<th>关键指标</th>", "数值精度：", "配置档 <b>quick</b>")
    en_words = ("chain report", "<th>Lab</th>", "<th>Wall time (s)</th>", "<th>Key figures</th>", "numeric path: ",
                "profile <b>quick</b>")
    want, not_want = (zh_words, en_words) if code == "zh" else (en_words, zh_words)
    assert all(w in page for w in want), [w for w in want if w not in page]
    assert not any(w in page for w in not_want), [w for w in not_want if w in page]


def test_chain_only_an_unknown_lab_is_one_line(lang, capsys, tmp_path):
    lang("zh")
    code, out = _cli(capsys, "chain", "--only", "99", "--home", str(tmp_path / "ws"))
    assert code == 2 and "错误：没有与 ['99'] 对应的实验" in out and "Traceback" not in out


# ---- lab 00's tables ---------------------------------------------------------------------------------------------
def _report():
    from puyu_lab.doctor import Check, Report

    return Report([Check("python", "3.11", label=i18n.tr("Python 版本", "python")),
                   Check("llama.cpp", "0.3", "warn", "pip install llama-cpp-python", required=False,
                         label=i18n.tr("llama.cpp 推理", "llama.cpp")),
                   Check("torch", "—", "fail", "make setup", label=i18n.tr("PyTorch", "torch"))])


def test_lab_00_tables_in_chinese(lang):
    from puyu_lab.panels.chain import doctor_view, profiles_view

    lang("zh")
    doc = doctor_view(_report()).body
    assert "Python 版本" in doc and "llama.cpp 推理" in doc  # the shown names, not the stable keys
    assert ">警告<" in doc and ">未通过<" in doc and ">通过<" in doc
    assert not re.search(r">(ok|warn|fail)<", doc), doc
    prof = profiles_view()
    assert re.search(r"<td>[是否]</td>", prof.body) and not re.search(r"<td>(yes|no)</td>", prof.body)
    assert "本机可用" in prof.body
    lang("en")
    assert re.search(r">warn<", doctor_view(_report()).body) and re.search(r"<td>(yes|no)</td>", profiles_view().body)


_TYPED_TIME = re.compile(r"(?<!\w)\d[\d,.]*\s?(?:s|秒|min|分钟|小时|h|hours?|minutes?|seconds?)\b"
                         r"|[≈~]\s?\d|\b(?:a|one|two|half an?) (?:minutes?|hours?)\b|[一两二三四五六七八九十半]+(?:个)?(?:分钟|小时)")


def test_profiles_type_no_time():
    """A profile's time is measured (the table ``make chain`` writes), never typed into its description."""
    import puyu_lab.profiles as profiles

    for p in profiles.PROFILES.values():
        for text in (p.description, p.description_zh):
            assert not _TYPED_TIME.search(text), (p.name, text)
    assert not _TYPED_TIME.search(profiles.__doc__ or "")
    assert not hasattr(profiles.Profile, "minutes") and "minutes" not in profiles.Profile.__dataclass_fields__
    assert _TYPED_TIME.search("about 10 minutes") and _TYPED_TIME.search("≈ 42 min") and _TYPED_TIME.search("约 10 分钟")

"""Every error a learner can fix exists in Chinese and in English (issue 38).

- An AST scan of ``puyu_lab/``: every ``raise`` of a :class:`~puyu_lab.errors.PuyuError` (any class deriving from it,
  directly or through others, anywhere in the package) passes ``zh=``, in Chinese, with the same f-string
  expressions (file, line, field, figures) as the English.
- Real error paths raised with the language set to zh read in Chinese and keep the path, line and field; in en they
  have no Chinese.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "puyu_lab"

# The command-line modules, whose messages another change turns bilingual: scanned once this list is empty.
CLI_FILES_PENDING_ZH: list[str] = []

CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")  # Chinese characters and Chinese punctuation


def _sources() -> dict[str, ast.Module]:
    return {p.relative_to(ROOT).as_posix(): ast.parse(p.read_text(encoding="utf-8"), str(p))
            for p in sorted(PACKAGE.rglob("*.py"))}


def _base_name(node: ast.expr) -> str | None:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


def puyu_error_classes(trees: dict[str, ast.Module]) -> set[str]:
    """The names of every class in the package deriving, directly or through others, from PuyuError."""
    bases: dict[str, set[str]] = {}
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases.setdefault(node.name, set()).update(filter(None, map(_base_name, node.bases)))
    found = {"PuyuError"}
    grew = True
    while grew:
        grew = False
        for name, bs in bases.items():
            if name not in found and bs & found:
                found.add(name)
                grew = True
    return found


def _aliases(tree: ast.Module, classes: set[str]) -> dict[str, str]:
    """Local name → class for ``from … import X as Y`` of one of ``classes``."""
    out = {c: c for c in classes}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for a in node.names:
                if a.name in classes and a.asname:
                    out[a.asname] = a.name
    return out


def puyu_raises(trees: dict[str, ast.Module], classes: set[str]):
    """(file, line, class, the Call) for each ``raise X(…)`` of a PuyuError class. ``raise exc`` (an exception
    built earlier, or caught) and a bare ``raise`` are not calls and are left to where the exception was made."""
    for rel, tree in trees.items():
        names = _aliases(tree, classes)
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                name = _base_name(node.exc.func)
                if name in names:
                    yield rel, node.lineno, names[name], node.exc


def _expressions(node: ast.AST | None) -> list[ast.expr]:
    """The f-string expressions inside ``node`` (``{path}``, ``{line}``, ``{', '.join(KINDS)}`` …)."""
    if node is None:
        return []
    return [n.value for n in ast.walk(node) if isinstance(n, ast.FormattedValue)]


def _identifiers(expr: ast.AST) -> set[str]:
    return {n.id if isinstance(n, ast.Name) else n.attr for n in ast.walk(expr) if isinstance(n, (ast.Name, ast.Attribute))}


def _strings(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _kept(expr: ast.expr, zh_ids: set[str]) -> bool:
    """Whether the Chinese shows what the English expression ``expr`` shows: each name it reads is read in the
    Chinese too, or its Chinese form (``{why}`` → ``{why.zh}`` / ``{zh_of(why)}``, ``{hint}`` → ``{hint_zh}``,
    ``{advice()}`` → ``{advice_zh()}``, ``{HINT}`` → ``{HINT_ZH}``); words quoted inside it (``{x or 'all'}``) may be
    translated."""
    return all(i in zh_ids or f"{i}_zh" in zh_ids or f"{i}_ZH" in zh_ids for i in _identifiers(expr))


@pytest.fixture(scope="module")
def scanned():
    trees = _sources()
    classes = puyu_error_classes(trees)
    return classes, list(puyu_raises(trees, classes))


def test_the_scan_finds_the_package_errors(scanned):
    classes, raises = scanned
    # the classes defined beside their stages are found through their bases, not listed by hand
    assert {"InputError", "WorkspaceError", "MissingArtifact", "UndeclaredRead", "ProfileError", "ConverterMissing",
            "ToolMissing", "ServerError", "LevelMismatch"} <= classes
    assert len(raises) > 100
    assert not [f for f in CLI_FILES_PENDING_ZH if not (ROOT / f).is_file()], "a listed CLI file no longer exists"


def test_every_puyu_error_is_raised_with_its_chinese(scanned):
    _, raises = scanned
    missing, english, dropped = [], [], []
    for rel, line, cls, call in raises:
        if rel in CLI_FILES_PENDING_ZH:
            continue
        where = f"{rel}:{line}: {cls}"
        zh = next((k.value for k in call.keywords if k.arg == "zh"), None)
        if zh is None or (isinstance(zh, ast.Constant) and zh.value is None):
            missing.append(where)
            continue
        texts = _strings(zh)
        if texts and not any(CJK.search(t) for t in texts):
            english.append(where)
        zh_ids = set().union(*map(_identifiers, _expressions(zh) or [zh]))
        lost = sorted(ast.unparse(e) for e in _expressions(call.args[0] if call.args else None) if not _kept(e, zh_ids))
        if lost:
            dropped.append(f"{where}: {', '.join('{' + e + '}' for e in lost)}")
    assert not missing, ("raised without zh= (write the Chinese beside the English: "
                         "raise X(f\"…\", zh=f\"…\")):\n  " + "\n  ".join(missing))
    assert not english, "zh= without Chinese:\n  " + "\n  ".join(english)
    assert not dropped, ("the Chinese leaves out what the English names (the same file, line, field and figures in "
                         "both):\n  " + "\n  ".join(dropped))


# Code a learner reaches from a lab's parameters, a homework cell or the command line: it raises PuyuErrors only (which
# the scan above holds to their Chinese), never a bare ValueError / RuntimeError whose English is all a zh learner
# gets. A file (None: all of it) or the functions named in it.
LEARNER_REACHED: dict[str, set[str] | None] = {
    "puyu_lab/contracts/calculator.py": None,  # lab 08's tools, and their refusals in the trace
    "puyu_lab/contracts/dates.py": None,
    "puyu_lab/data/dedup.py": {"lsh_clusters"},  # lab 01's MinHash homework (bands × rows)
    "puyu_lab/pretrain/optim.py": {"build_optimizer"},  # cfg.optimizer
    "puyu_lab/__init__.py": {"set_language"},  # pl.set_language / pl.setup(language=…)
    "puyu_lab/panels/agent.py": None,
    "puyu_lab/panels/pretrain.py": None,
    "puyu_lab/labrunner.py": None,  # `puyu-lab chain --only …`
    "puyu_lab/artifacts.py": {"load_sft_data", "load_pref_pairs"},
    "puyu_lab/checks/core.py": {"select"},  # `puyu-lab check 99`
    "puyu_lab/rag/index.py": {"search"},
    "puyu_lab/agent/evaluate.py": {"heldout_tasks"},
    "puyu_lab/deploy/memory.py": None,
}
_BUILTIN_ERRORS = {n for n, v in vars(__import__("builtins")).items()
                   if isinstance(v, type) and issubclass(v, BaseException)}


def _functions(tree: ast.Module, names: set[str] | None):
    if names is None:
        return [tree]
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name in names]


def test_what_a_learner_reaches_raises_puyu_errors():
    trees = _sources()
    bare = []
    for rel, names in LEARNER_REACHED.items():
        assert rel in trees, f"{rel} no longer exists"
        scopes = _functions(trees[rel], names)
        assert names is None or {f.name for f in scopes} == names, f"{rel}: no function {names}"
        for scope in scopes:
            for node in ast.walk(scope):
                if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) \
                        and _base_name(node.exc.func) in _BUILTIN_ERRORS:
                    bare.append(f"{rel}:{node.lineno}: {ast.unparse(node.exc)[:90]}")
    assert not bare, ("a learner meets these in English only: raise an InputError (or another PuyuError) "
                      "with zh= instead:\n  " + "\n  ".join(bare))


def test_every_warning_is_written_in_both_languages():
    """A ``warnings.warn`` a learner reads (a stale model left out of the evaluation, the sandbox's opt-out) passes
    its text through ``tr(zh, en)``, so it follows PUYU_LAB_LANG."""
    bad = []
    for rel, tree in _sources().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _base_name(node.func) == "warn" and node.args:
                text = node.args[0]
                if not (isinstance(text, ast.Call) and _base_name(text.func) == "tr"):
                    bad.append(f"{rel}:{node.lineno}: {ast.unparse(text)[:80]}")
    assert not bad, "warnings without their Chinese (write warnings.warn(tr(zh, en))):\n  " + "\n  ".join(bad)


# ---- real error paths, raised in each language ---------------------------------------------------------------
@pytest.fixture
def language():
    """Sets the language for the test, and puts back the one before."""
    from puyu_lab.i18n import get_language, set_language

    before = get_language()
    yield set_language
    set_language(before)


def _raised(fn, exc_type):
    with pytest.raises(exc_type) as e:
        fn()
    return e.value


def _bad_profile():
    from puyu_lab.profiles import ProfileError, get_profile

    return _raised(lambda: get_profile("quikc"), ProfileError)


def _missing_artifact(tmp_path):
    from puyu_lab.workspace import MissingArtifact, Workspace

    return _raised(lambda: Workspace(tmp_path / "empty").get("model/sft"), MissingArtifact)


def _bad_data_line(tmp_path):
    from puyu_lab.data.sources import load_local
    from puyu_lab.errors import InputError

    p = tmp_path / "data.jsonl"
    p.write_text('{"text": "good one"}\n{"text": "broken\n', encoding="utf-8")
    return p, _raised(lambda: load_local(p), InputError)


def _bad_sft_records(tmp_path):
    from puyu_lab.errors import InputError
    from puyu_lab.finetune.data import load_custom

    p = tmp_path / "mine.jsonl"
    p.write_text('{"messages": [{"role": "user", "content": "a"}]}\n[1]\n', encoding="utf-8")
    return p, _raised(lambda: load_custom(p), InputError)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_bad_profile_name(language, lang):
    language(lang)
    msg = str(_bad_profile())
    assert "'quikc'" in msg and "quick" in msg
    assert bool(CJK.search(msg)) == (lang == "zh"), msg


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_missing_artifact(language, lang, tmp_path):
    language(lang)
    err = _missing_artifact(tmp_path)
    msg = str(err)
    assert "'model/sft'" in msg and "labs/03_finetune.ipynb" in msg and "PUYU_LAB_HOME" in msg
    assert str(tmp_path / "empty") in msg
    assert bool(CJK.search(msg)) == (lang == "zh"), msg
    assert not CJK.search(err.en) and CJK.search(err.zh)  # both kept, whichever is shown


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_bad_line_of_a_data_file(language, lang, tmp_path):
    language(lang)
    p, err = _bad_data_line(tmp_path)
    msg = str(err)
    assert f"{p}:2" in msg and "skip_bad=True" in msg
    assert bool(CJK.search(msg)) == (lang == "zh"), msg


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_bad_records_of_a_custom_sft_file(language, lang, tmp_path):
    """The reasons are built per record, then joined into one error: each keeps its line in both languages."""
    language(lang)
    p, err = _bad_sft_records(tmp_path)
    msg = str(err)
    assert str(p) in msg and "'messages'" in msg
    assert ("第 1 行" in msg and "第 2 行" in msg) if lang == "zh" else ("line 1" in msg and "line 2" in msg)
    assert bool(CJK.search(msg)) == (lang == "zh"), msg


def _learner_errors(tmp_path) -> list[BaseException]:
    """Errors a learner meets from a lab's parameters and homework, and from the command line."""
    import numpy as np

    from puyu_lab.contracts.calculator import calculate
    from puyu_lab.contracts.dates import add_days
    from puyu_lab.data.dedup import lsh_clusters
    from puyu_lab.errors import PuyuError
    from puyu_lab import set_language
    from puyu_lab.i18n import get_language
    from puyu_lab.labrunner import run_chain
    from puyu_lab.workspace import Workspace

    lang = get_language()
    errs = [_raised(lambda: calculate("1/0"), PuyuError), _raised(lambda: calculate("x+1"), PuyuError),
            _raised(lambda: add_days("May 1", 3), PuyuError),
            _raised(lambda: lsh_clusters(np.zeros((3, 16), dtype=np.uint64), 30, 4), PuyuError),
            _raised(lambda: set_language("fr"), PuyuError),
            _raised(lambda: run_chain(workspace=Workspace(tmp_path / "ws"), only=["99"]), PuyuError)]
    assert get_language() == lang  # the refused language left the one before
    return errs


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_errors_from_parameters_and_homework(language, lang, tmp_path):
    language(lang)
    errs = _learner_errors(tmp_path)
    for err in errs:
        msg = str(err)
        assert bool(CJK.search(msg)) == (lang == "zh"), msg
        assert err.zh and CJK.search(err.zh) and not CJK.search(err.en), (err.en, err.zh)
    assert "'fr'" in str(errs[4]) and "30" in str(errs[3]) and "4" in str(errs[3]) and "['99']" in str(errs[5])


def test_the_session_speaks_english():
    """tests/conftest.py pins the language, so tests matching English messages pass on a zh_CN machine."""
    import os

    from puyu_lab.i18n import get_language

    assert os.environ.get("PUYU_LAB_LANG") == "en" and get_language() == "en"

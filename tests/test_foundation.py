"""Profiles, events, i18n, doctor, CLI, and the environment.yml/pyproject match (the panels' throttle: tests/panels)."""
import importlib.metadata as md
import os
import re
import subprocess
import sys
import tomllib

import pytest
import yaml

import puyu_lab
from puyu_lab import doctor
from puyu_lab.events import Emitter, StopFlag, Stopped, progress
from puyu_lab.profiles import PROFILES, ProfileError, get_profile

from .conftest import ROOT


def test_profiles(monkeypatch):
    assert get_profile().name == "quick"
    monkeypatch.setenv("PUYU_LAB_PROFILE", "full")
    assert get_profile().name == "full"
    assert get_profile("quick").name == "quick"
    with pytest.raises(ProfileError, match="unknown profile"):
        get_profile("huge")
    assert set(PROFILES) == {"quick", "full", "gpu"}


def test_gpu_profile_fails_clearly_without_cuda():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ProfileError, match="CUDA"):
        get_profile("gpu")


def test_emitter_isolates_listener_errors():
    seen = []
    em = Emitter("data", seen.append)
    em.subscribe(lambda e: 1 / 0)
    em.emit("progress", done=1, total=2)
    assert seen[0].kind == "progress" and seen[0]["done"] == 1 and seen[0].stage == "data"
    assert len(em.errors) == 1


def test_progress_honours_stop():
    stop = StopFlag()
    got = []
    with pytest.raises(Stopped):
        for i in progress(range(10), stop=stop, show=False):
            got.append(i)
            if i == 3:
                stop.set()
    assert got == [0, 1, 2, 3]


def test_language_switch():
    puyu_lab.set_language("zh")
    assert puyu_lab.t("funnel") == "清洗漏斗"
    puyu_lab.set_language("en")
    assert puyu_lab.t("funnel") == "Cleaning funnel"
    with pytest.raises(ValueError):
        puyu_lab.set_language("fr")


def test_doctor_ok_here():
    env = {**os.environ, "PUYU_LAB_LANG": "en"}  # the words below are the English report's
    out = subprocess.run([sys.executable, "-m", "puyu_lab", "doctor"], capture_output=True, text=True, timeout=120,
                         env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ready" in out.stdout and "llama.cpp" in out.stdout and "profiles that fit" in out.stdout


def test_doctor_names_a_missing_package_and_the_fix(monkeypatch):
    real = md.version

    def fake(dist):
        if dist == "sentencepiece":
            raise md.PackageNotFoundError(dist)
        return real(dist)

    monkeypatch.setattr(doctor.md, "version", fake)
    monkeypatch.setattr(puyu_lab.i18n, "_LANG", "en")
    report = doctor.run()
    assert not report.ok
    bad = report.failures[0]
    assert "sentencepiece" in bad.value and "make lab" in bad.fix
    assert "NOT ready" in report.text()


def test_cli_status_and_errors(tmp_path):
    out = subprocess.run([sys.executable, "-m", "puyu_lab", "status", "--home", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "书生·万卷" in out.stdout and "missing" in out.stdout
    out = subprocess.run([sys.executable, "-m", "puyu_lab", "chain", "--profile", "huge"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.startswith("error: unknown profile")


def _req_name(r: str) -> str:
    import re

    return re.split(r"[\s<>=!~;]", r, maxsplit=1)[0].lower()


def test_environment_yml_matches_pyproject():
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pyver = py["requires-python"]
    conda_python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert conda_python == "python=3.11" and "<3.13" in pyver
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    wanted = py["dependencies"] + py["optional-dependencies"]["llama"] + py["optional-dependencies"]["dev"]
    assert sorted(pip_section) == sorted(wanted), "environment.yml pip section must list exactly pyproject's packages"


def test_no_module_imports_a_private_name_of_another():
    """A name starting with one underscore is its module's own: another module importing it (``from ..x import
    _y``) breaks when ``x`` changes it. import-linter has no contract for names, so this reads every import."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "puyu_lab"
    bad = []
    for p in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("puyu_lab")):
                bad += [f"{p.relative_to(root.parent)}:{node.lineno} imports {a.name} from {node.module or '.'}"
                        for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    assert not bad, "\n".join(bad)


TIMING = re.compile(
    r"(?<![\w/])\d[\d.,]*\s?(?:ms|s|min|minutes|seconds)\b"  # 55 s, 40 ms, 42 min
    r"|\d[\d.,]*\s?(?:tokens|tok|samples|docs|documents|steps)/s\b|\d[\d.,]*\s?GFLOP/s"  # 1,700 tokens/s, 30 GFLOP/s
    r"|\d[\d.,]*\s?× (?:slower|faster)|\d[\d.,]*\s?%\s(?:more|less) time")  # 29× slower, 25 % more time


def test_no_measured_timings_in_comments():
    """Timings in comments and docstrings went stale (commits existed only to refresh them): a measured figure
    belongs in ``make bench``'s output or the README, the comment keeps the reason in words and points there."""
    import io
    import tokenize
    from pathlib import Path

    assert TIMING.search("took 103 s") and TIMING.search("≈ 1,700 tokens/s") and TIMING.search("29× slower")
    assert not TIMING.search("budget_s, in seconds") and not TIMING.search("GFLOP/s of one matmul")
    root = Path(__file__).resolve().parents[1] / "puyu_lab"
    bad = []
    for p in sorted(root.rglob("*.py")):
        for tok in tokenize.generate_tokens(io.StringIO(p.read_text(encoding="utf-8")).readline):
            doc = tok.type == tokenize.STRING and tok.string.lstrip("rbuRBU").startswith(('"""', "'''"))
            if tok.type == tokenize.COMMENT or doc:
                bad += [f"{p.relative_to(root.parent)}:{tok.start[0] + tok.string[:m.start()].count(chr(10))}: "
                        f"{m.group(0)!r}" for m in TIMING.finditer(tok.string)]
    assert not bad, "measured timings in comments (move the figure to make bench / the README):\n" + "\n".join(bad)


def test_no_import_circles_between_the_packages_modules():
    """checks ↔ labrunner and errors ↔ paths ↔ workspace once imported each other (inside functions, to dodge the
    circle): a reader could not tell which came first. Every import, at any depth, between two top-level parts."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "puyu_lab"
    mods = {}
    for p in root.rglob("*.py"):
        name = ".".join(p.relative_to(root.parent).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = p
    unit = lambda m: ".".join(m.split(".")[:2])  # noqa: E731 — puyu_lab.<module or subpackage>
    edges: dict[str, set[str]] = {}
    for m, p in mods.items():
        pkg = m if p.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.ImportFrom):
                base = pkg.split(".")[:len(pkg.split(".")) - (node.level - 1)] if node.level else []
                mod = ".".join(base + ([node.module] if node.module else [])) if node.level else (node.module or "")
                targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                if t in mods and unit(t) != unit(m) and unit(m) != "puyu_lab" and unit(t) != "puyu_lab":
                    edges.setdefault(unit(m), set()).add(unit(t))
    circles, path = set(), []

    def walk(node: str) -> None:  # depth-first: a node met again on the current path closes a circle
        if node in path:
            cyc = path[path.index(node):]
            k = cyc.index(min(cyc))
            circles.add(" → ".join(cyc[k:] + cyc[:k] + [min(cyc)]))
            return
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            walk(nxt)
        path.pop()

    for start in sorted(edges):
        walk(start)
    assert not circles, sorted(circles)


def test_lazy_exports_are_visible_to_editors_and_stay_lazy():
    """Each package's lazily exported names (``_EXPORTS``) are also imported under ``TYPE_CHECKING`` from the same
    module (so "go to definition" and type checkers find them), and importing the package loads none of them."""
    import ast
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "puyu_lab"
    seen = 0
    for p in sorted(root.glob("*/__init__.py")):
        tree = ast.parse(p.read_text(encoding="utf-8"))
        table = next((ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                      and any(getattr(t, "id", None) == "_EXPORTS" for t in n.targets)), None)
        if table is None:
            continue
        seen += 1
        guarded = {}
        for n in tree.body:
            if isinstance(n, ast.If) and getattr(n.test, "id", None) == "TYPE_CHECKING":
                for imp in n.body:
                    guarded.update({a.name: imp.module for a in imp.names})
        assert guarded == table, f"{p.relative_to(root.parent)}: TYPE_CHECKING imports {guarded}, _EXPORTS {table}"
        pkg = f"puyu_lab.{p.parent.name}"
        code = (f"import sys, {pkg} as m\nloaded = [k for k, v in m._EXPORTS.items() if f'{pkg}.' + v in sys.modules]\n"
                "print(loaded)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and out.stdout.strip() == "[]", (pkg, out.stdout, out.stderr[-500:])
    assert seen >= 9, seen

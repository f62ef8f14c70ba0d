"""05 LMDeploy Deploy: the GGUF ladder and what each level costs in fidelity."""
from __future__ import annotations

import json

import numpy as np

from ...artifacts import gguf_name, quant_name
from ..core import Outcome, check

LAB = "05_deploy.ipynb"
CAMP = "进阶岛: LMDeploy 量化部署进阶实践"
GGUF, QUANT = gguf_name(), quant_name()
Q4_KL_BOUND = 0.05  # nats/token: the chain's Q4_K_M sits near 0.013; Q2_K near 0.09


def _ladder(ctx) -> dict:
    return json.loads(ctx.get(GGUF).file("ladder.json").read_text(encoding="utf-8"))


def _kl(ctx) -> dict:
    def load():
        z = np.load(ctx.get(QUANT).file("per_token.npz"))
        return {k[3:]: z[k].astype(np.float64) for k in z.files if k.startswith("kl_")}
    return ctx.cached("kl", load)


def _rows(ctx) -> dict:
    rows = json.loads(ctx.get(QUANT).file("results.json").read_text(encoding="utf-8"))
    return {r["level"]: r for r in rows}


@check("deploy.ladder", LAB, "量化阶梯逐级变小", "Each level is smaller", needs=(GGUF,),
       verifies="gguf/sft: every file down the ladder (F32 → … → Q2_K) is smaller than the one above it "
                "(sizes as the deploy stage wrote them)",
       hint="rerun the ladder in lab 05; a level that is not smaller fell back to another type "
            "(see the per-tensor type map)",
       hint_zh="在实验 05 中重新生成量化阶梯；没有变小的那一级回退成了别的类型（见逐张量的类型图）", camp=CAMP)
def ladder(ctx):
    art = ctx.get(GGUF)
    files = art.manifest.get("files") or {}
    sizes = []
    for lv, f in _ladder(ctx).items():
        try:
            size = art.file(f["file"]).stat().st_size
        except FileNotFoundError:  # too big for a bundle: the size the stage recorded when it wrote the file
            size = files[f["file"]]["bytes"] if f["file"] in files else None
        if size is None:
            raise FileNotFoundError(f"gguf/sft/{f['file']} is not here and its manifest records no size")
        sizes.append((lv, size))
    mb = [s / 2**20 for _, s in sizes]
    ok = len(sizes) >= 3 and all(a > b for a, b in zip(mb, mb[1:]))
    return Outcome(ok, " > ".join(f"{lv} {s:.1f}" for (lv, _), s in zip(sizes, mb)) + " MB")


@check("deploy.q4km", LAB, "Q4_K_M 是 4 比特 K-quant", "Q4_K_M holds 4-bit K-quants", needs=(GGUF,),
       verifies="the Q4_K_M file's weight matrices include Q4_K tensors and none stayed F16/F32 (read with gguf)",
       hint="your model's row lengths must be multiples of 256 or llama.cpp falls back; rerun lab 05's ladder",
       hint_zh="模型权重的行长度必须是 256 的倍数，否则 llama.cpp 会回退到别的类型；请重新运行实验 05 的量化阶梯",
       camp=CAMP)
def q4km(ctx):
    from ...deploy.quantize import weight_types

    types = weight_types(ctx.get(GGUF).file(_ladder(ctx)["Q4_K_M"]["file"]))
    ok = "Q4_K" in types and not {"F16", "F32"} & set(types)
    return Outcome(ok, ", ".join(f"{t}×{n}" for t, n in sorted(types.items())))


@check("deploy.kl", LAB, "比特越少偏差越大", "Fewer bits diverge more", needs=(QUANT,),
       verifies=f"quant/sft per-token KL from F32: Q8_0 < Q4_K_M < Q2_K, and Q4_K_M's mean KL < {Q4_KL_BOUND}",
       hint="measure again in lab 05 (the quantization panel); if Q4_K_M diverges far, check the F32 reference",
       hint_zh="在实验 05 中重新测量（量化面板）；若 Q4_K_M 偏离很大，检查 F32 参考模型",
       camp=CAMP)
def kl(ctx):
    k = _kl(ctx)
    m = {lv: float(k[lv].mean()) for lv in ("Q8_0", "Q4_K_M", "Q2_K") if lv in k}
    if len(m) < 3:
        return Outcome(False, f"levels measured: {', '.join(sorted(k))}")
    ok = m["Q8_0"] < m["Q4_K_M"] < m["Q2_K"] and m["Q4_K_M"] < Q4_KL_BOUND
    return Outcome(ok, f"Q8_0 {m['Q8_0']:.1e} < Q4_K_M {m['Q4_K_M']:.1e} < Q2_K {m['Q2_K']:.1e}",
                   value=m["Q4_K_M"], claimed=_rows(ctx).get("Q4_K_M", {}).get("kl_mean"))


@check("deploy.exact", LAB, "转换无损", "The converter kept the model exact", needs=(QUANT,),
       verifies="transformers fp32 and the F32 GGUF give the same distributions: mean KL < 1e-6 (quant/sft)",
       hint="the GGUF does not match your model: reconvert it in lab 05 (an older converter or another tokenizer)",
       hint_zh="GGUF 与你的模型不一致：在实验 05 中重新转换（可能用了旧版转换器或另一个分词器）",
       camp=CAMP)
def exact(ctx):
    row = _rows(ctx).get("HF fp32")
    if row is None:
        return Outcome(False, "no transformers row in quant/sft")
    return Outcome(row["kl_mean"] < 1e-6, f"KL {row['kl_mean']:.1e}", value=row["kl_mean"])

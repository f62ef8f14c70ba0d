"""06 LMDeploy Deploy: the GGUF ladder and what each level costs in fidelity."""
from __future__ import annotations

import numpy as np

from ...artifacts import gguf_name, quant_name
from ..core import Outcome, check, say
from ..evidence import read_json, stale

LAB = "06_deploy.ipynb"
CAMP = "进阶岛: LMDeploy 量化部署进阶实践"
GGUF, QUANT = gguf_name(), quant_name()
Q4_KL_BOUND = 0.05  # nats/token: the chain's Q4_K_M sits near 0.013; Q2_K near 0.09


def _ladder(ctx) -> dict:
    return read_json(ctx.get(GGUF), "ladder.json")


def _kl(ctx) -> dict:
    def load():
        z = np.load(ctx.get(QUANT).file("per_token.npz"))
        return {k[3:]: z[k].astype(np.float64) for k in z.files if k.startswith("kl_")}
    return ctx.cached("kl", load)


def _rows(ctx) -> dict:
    return {r["level"]: r for r in read_json(ctx.get(QUANT), "results.json")}


def _size(art, fname: str) -> int:
    """The size of ``art``'s file ``fname``: a file too big for a bundle is not in it, its size is the one the
    manifest recorded when the stage wrote it."""
    try:
        return art.file(fname).stat().st_size
    except FileNotFoundError:
        rec = (art.manifest.get("files") or {}).get(fname)
        if rec is None:
            raise FileNotFoundError(f"{art.name}/{fname} is not here and its manifest records no size") from None
        return int(rec["bytes"])


@check("deploy.ladder", LAB, "量化阶梯逐级变小", "Each level is smaller", needs=(GGUF,),
       verifies="gguf/sft: every file down the ladder (F32 → … → Q2_K) is smaller than the one above it "
                "(sizes as the deploy stage wrote them)",
       verifies_zh='gguf/sft：量化阶梯上每个文件（F32 → … → Q2_K）都比上一级小（大小取自部署阶段写下的数字）',
       hint="rerun the ladder in lab 06; a level that is not smaller fell back to another type "
            "(see the per-tensor type map)",
       hint_zh="在实验 06 中重新生成量化阶梯；没有变小的那一级回退成了别的类型（见逐张量的类型图）", camp=CAMP)
def ladder(ctx):
    art = ctx.get(GGUF)
    sizes = [(lv, _size(art, f["file"])) for lv, f in _ladder(ctx).items()]
    mb = [s / 2**20 for _, s in sizes]
    ok = len(sizes) >= 3 and all(a > b for a, b in zip(mb, mb[1:]))
    return Outcome(ok, " > ".join(f"{lv} {s:.1f}" for (lv, _), s in zip(sizes, mb)) + " MB")


@check("deploy.q4km", LAB, "Q4_K_M 是 4 比特 K-quant", "Q4_K_M holds 4-bit K-quants", needs=(GGUF,),
       verifies="the Q4_K_M file's weight matrices include Q4_K tensors and none stayed F16/F32 (read with gguf)",
       verifies_zh='Q4_K_M 文件的权重矩阵里有 Q4_K 张量，且没有一个还停留在 F16/F32（用 gguf 读取）',
       hint="your model's row lengths must be multiples of 256 or llama.cpp falls back; rerun lab 06's ladder",
       hint_zh="模型权重的行长度必须是 256 的倍数，否则 llama.cpp 会回退到别的类型；请重新运行实验 06 的量化阶梯",
       camp=CAMP)
def q4km(ctx):
    from ...deploy.quantize import weight_types

    types = weight_types(ctx.get(GGUF).file(_ladder(ctx)["Q4_K_M"]["file"]))
    ok = "Q4_K" in types and not {"F16", "F32"} & set(types)
    return Outcome(ok, ", ".join(f"{t}×{n}" for t, n in sorted(types.items())))


@check("deploy.kl", LAB, "比特越少偏差越大", "Fewer bits diverge more", needs=(QUANT,),
       verifies=f"quant/sft per-token KL from F32: Q8_0 < Q4_K_M < Q2_K, and Q4_K_M's mean KL < {Q4_KL_BOUND}",
       verifies_zh='quant/sft 相对 F32 的逐词元 KL：Q8_0 < Q4_K_M < Q2_K，且 Q4_K_M 的平均 KL < 0.05',
       hint="measure again in lab 06 (the quantization panel); if Q4_K_M diverges far, check the F32 reference",
       hint_zh="在实验 06 中重新测量（量化面板）；若 Q4_K_M 偏离很大，检查 F32 参考模型",
       camp=CAMP)
def kl(ctx):
    k = _kl(ctx)
    m = {lv: float(k[lv].mean()) for lv in ("Q8_0", "Q4_K_M", "Q2_K") if lv in k}
    if len(m) < 3:
        return Outcome(False, say(f"测过的等级：{'、'.join(sorted(k))}", f"levels measured: {', '.join(sorted(k))}"))
    ok = m["Q8_0"] < m["Q4_K_M"] < m["Q2_K"] and m["Q4_K_M"] < Q4_KL_BOUND
    return Outcome(ok, f"Q8_0 {m['Q8_0']:.1e} < Q4_K_M {m['Q4_K_M']:.1e} < Q2_K {m['Q2_K']:.1e}",
                   value=m["Q4_K_M"], claimed=_rows(ctx).get("Q4_K_M", {}).get("kl_mean"))


@check("deploy.exact", LAB, "转换无损", "The converter kept the model exact", needs=(QUANT,),
       verifies="transformers fp32 and the F32 GGUF give the same distributions: mean KL < 1e-6 (quant/sft)",
       verifies_zh='transformers fp32 与 F32 GGUF 给出相同的分布：平均 KL < 1e-6（quant/sft）',
       hint="the GGUF does not match your model: reconvert it in lab 06 (an older converter or another tokenizer)",
       hint_zh="GGUF 与你的模型不一致：在实验 06 中重新转换（可能用了旧版转换器或另一个分词器）",
       camp=CAMP)
def exact(ctx):
    row = _rows(ctx).get("HF fp32")
    if row is None:
        return Outcome(False, say("quant/sft 里没有 transformers 那一行", "no transformers row in quant/sft"))
    return Outcome(row["kl_mean"] < 1e-6, f"KL {row['kl_mean']:.1e}", value=row["kl_mean"])


# ---- 作业 Homework: a level of the learner's choosing, and a mix of their own, measured on quant/sft's text ----------
LEVEL = "homework/deploy/level"
NOT_COMPARABLE = say("KL 无法比较", "KL not comparable")
MIX = "homework/deploy/mix"
FLOAT_TYPES = {"F16", "F32", "BF16"}


def _hw_kl(ctx, name: str) -> tuple[float, int, str]:
    """(mean KL from F32, tokens, why not) of a homework artifact's kl.npz: its scored tokens must be quant/sft's own
    (the same held-out text, cut into the same windows), so its KL sits beside the ladder's."""
    z = np.load(ctx.get(name).file("kl.npz"))
    ref = np.load(ctx.get(QUANT).file("per_token.npz"))["targets"]
    kl, targets = z["kl"].astype(np.float64), z["targets"]
    if not np.array_equal(targets, ref):
        return float("nan"), len(targets), say("测 KL 用的文本和 quant/sft 的不同（对照它 per_token.npz 里的 targets）",
                                               "measured on other text than quant/sft (its per_token.npz targets)")
    if len(kl) != len(targets) or not np.isfinite(kl).all() or (kl < 0).any():
        return float("nan"), len(targets), say("kl.npz：不是每个打分词元各有一个有限且 ≥ 0 的 KL",
                                               "kl.npz: not one finite KL ≥ 0 per scored token")
    return float(kl.mean()), len(targets), ""


def _ladder_sizes(ctx) -> dict[str, tuple[float, float]]:
    """The ladder's levels (plain ones) → (MB, mean KL), from gguf/sft's ladder.json and quant/sft's per-token KL."""
    k = _kl(ctx)
    return {lv: (f["size"] / 2**20, float(k[lv].mean())) for lv, f in _ladder(ctx).items() if lv in k}


def _neighbours(ctx, mb: float) -> str:
    """The ladder's levels just above and below ``mb`` in size, with their KL."""
    rows = sorted(_ladder_sizes(ctx).items(), key=lambda kv: kv[1][0])
    below = [r for r in rows if r[1][0] <= mb][-1:]
    above = [r for r in rows if r[1][0] > mb][:1]
    return " · ".join(f"{lv} {s:.2f} MB, KL {kl:.1e}" for lv, (s, kl) in below + above)


def _main_type(level: str) -> str | None:
    """The tensor type a K-quant or legacy level is named after (Q4_K_S → Q4_K, Q4_0 → Q4_0); None for others."""
    import re

    m = re.fullmatch(r"(Q\d)_(K)(?:_[SML])?|(Q\d)_([01])", level)
    if not m:
        return None
    return f"{m.group(1)}_K" if m.group(1) else f"{m.group(3)}_{m.group(4)}"


@check("deploy.hw_level", LAB, "作业：阶梯之外的一个量化等级", "Homework: a level off the ladder", homework="basic",
       needs=(LEVEL, GGUF, QUANT),
       verifies="homework/deploy/level: a GGUF file quantized from gguf/sft's F32 to a level that is not on the ladder "
                "(its header's file type; no weight matrix left F16/F32; a K-quant or legacy level holds its own "
                "type), and its per-token KL from F32 measured on quant/sft's own scored tokens; the mean KL is "
                "recomputed and set beside the ladder's levels of the nearest sizes",
       verifies_zh="homework/deploy/level：从 gguf/sft 的 F32 量化出一个不在量化阶梯上的等级的 GGUF 文件（看文件头记录的类型；"
                   "没有一个权重矩阵留在 F16/F32；K-quant 或传统等级必须含有它自己的类型），以及它相对 F32 的逐词元 KL，"
                   "测在 quant/sft 自己打分的那些词元上；成绩单重新计算平均 KL，并和阶梯上大小最接近的等级放在一起比较",
       hint="run the 作业 cells at the end of lab 06 (the shared measuring cell, then `deploy.hw_level`) with a level "
            "off the ladder (`level = \"Q4_0\"`)",
       hint_zh="运行实验 06 末尾的作业单元格（先运行共用的测量单元格，再运行 `deploy.hw_level`），选一个不在阶梯上的等级"
               "（`level = \"Q4_0\"`）", camp=CAMP)
def hw_level(ctx):
    from ...deploy.quantize import reference_level, weight_types

    if out := stale(ctx, LEVEL, (GGUF, QUANT), say("用的是较早的量化阶梯", "made from an earlier ladder")):
        return out
    art = ctx.get(LEVEL)
    res = read_json(art, "result.json")
    level = str(res["level"])
    on_ladder = set(_ladder(ctx))
    try:
        on_ladder |= {lv.split("+")[0] for lv in read_json(ctx.get(GGUF), "imatrix.json")}
    except FileNotFoundError:
        pass
    if level in on_ladder:
        return Outcome(False, say(f"{level} 已经在阶梯上", f"{level} is on the ladder"),
                       detail=say("选一个阶梯上没有的等级，比如 Q4_0", "pick a level the ladder does not have, such as Q4_0"))
    fname = res["file"]
    try:
        path = art.file(fname)
    except FileNotFoundError:  # a bundle without the file: what was recorded when it was written
        path = None
    ftype = reference_level(path) if path is not None else res.get("file_type")
    types = dict(weight_types(path)) if path is not None else res.get("types", {})
    if ftype != level:
        return Outcome(False, say(f"文件是 {ftype}，不是 {level}", f"the file is {ftype}, not {level}"))
    main = _main_type(level)
    if FLOAT_TYPES & set(types) or (main is not None and main not in types):
        return Outcome(False, f"{level}: " + ", ".join(f"{t}×{n}" for t, n in sorted(types.items())),
                       detail=say("llama.cpp 退回到了别的类型：矩阵的行长必须是块大小的整数倍",
                                  "llama.cpp fell back to other types: rows must be multiples of the block"))
    kl, n, why = _hw_kl(ctx, LEVEL)
    if why:
        return Outcome(False, NOT_COMPARABLE, detail=why)
    mb = _size(art, fname) / 2**20
    return Outcome(True, f"{level} {mb:.2f} MB, KL {kl:.1e}", value=kl, claimed=res.get("kl_mean"),
                   detail=say(f"{n} 个词元；阶梯：{_neighbours(ctx, mb)}", f"{n} tokens; ladder: {_neighbours(ctx, mb)}"))


def _override_problems(types: dict[str, str], overrides: dict[str, str]) -> list[tuple[str, str]]:
    """Tensors a pattern (llama-quantize's --tensor-type: a regex searched in the tensor's name) matched that do not
    have its type, and patterns that matched nothing: (English, Chinese) each."""
    import re

    bad = []
    for pat in overrides:
        if not any(re.search(pat, name) for name in types):
            bad.append((f"{pat!r} matches no weight matrix", f"{pat!r} 没有匹配到任何权重矩阵"))
    for name, t in types.items():
        wanted = {v.upper() for p, v in overrides.items() if re.search(p, name)}
        if wanted and t not in wanted:
            bad.append((f"{name} is {t}, not {'/'.join(sorted(wanted))}", f"{name} 是 {t}，不是 {'/'.join(sorted(wanted))}"))
    return bad


@check("deploy.hw_mix", LAB, "作业：自己配一份量化混合方案", "Homework: a quantization mix of your own",
       homework="advanced", needs=(MIX, GGUF, QUANT),
       verifies="homework/deploy/mix: a GGUF file quantized from gguf/sft's F32 at a ladder level with tensor-type "
                "overrides of your own (llama-quantize's `--tensor-type`): every weight matrix a pattern matches holds "
                "its type and the file differs from the ladder's file of that level in at least one matrix (read "
                "from both headers); its per-token KL from F32 on quant/sft's own scored tokens is recomputed and set "
                "beside the ladder",
       verifies_zh="homework/deploy/mix：从 gguf/sft 的 F32 出发，按阶梯上的某个等级量化，并加上你自己的张量类型覆盖"
                   "（llama-quantize 的 `--tensor-type`）：每个被匹配到的权重矩阵都是指定的类型，而且至少有一个矩阵和阶梯上"
                   "同一等级的文件不同（两个文件头都读）；它在 quant/sft 自己打分的那些词元上相对 F32 的逐词元 KL，由成绩单"
                   "重新计算，并和阶梯放在一起比较",
       hint="run the 作业 cells at the end of lab 06 (the shared measuring cell, then `deploy.hw_mix`) with an "
            "override that changes a matrix (`overrides = {\"token_embd\": \"Q8_0\"}`)",
       hint_zh="运行实验 06 末尾的作业单元格（先运行共用的测量单元格，再运行 `deploy.hw_mix`），用一条真能改变某个矩阵的覆盖规则"
               "（`overrides = {\"token_embd\": \"Q8_0\"}`）", camp=CAMP)
def hw_mix(ctx):
    from ...deploy.quantize import tensor_types

    if out := stale(ctx, MIX, (GGUF, QUANT), say("用的是较早的量化阶梯", "made from an earlier ladder")):
        return out
    art = ctx.get(MIX)
    res = read_json(art, "result.json")
    base, overrides = str(res["base_level"]), dict(res["overrides"])
    ladder = _ladder(ctx)
    if base not in ladder:
        return Outcome(False, say(f"{base} 不是阶梯上的等级", f"{base} is not a ladder level"),
                       detail=say(f"从其中一个开始：{'、'.join(ladder)}", f"start from one of {', '.join(ladder)}"))
    if not overrides:
        return Outcome(False, say(f"{base} 没有任何覆盖", f"{base} without overrides"),
                       detail=say("让一些张量保持别的类型", "keep some tensors at another type"))

    def matrices(path):
        return {k: v for k, v in tensor_types(path).items() if not k.endswith("norm.weight")}

    try:
        mine = matrices(art.file(res["file"]))
    except FileNotFoundError:  # a bundle without the file: the types recorded when it was written
        mine = res["tensor_types"]
    try:
        theirs = matrices(ctx.get(GGUF).file(ladder[base]["file"]))
    except FileNotFoundError:
        theirs = None
    bad = _override_problems(mine, overrides)
    if bad:
        return Outcome(False, say("文件里没有这些覆盖", "the overrides are not in the file"),
                       detail=say("；".join(zh for _, zh in bad[:3]), "; ".join(en for en, _ in bad[:3])))
    changed = None if theirs is None else [k for k in mine if theirs.get(k) != mine[k]]
    if changed is not None and not changed:
        return Outcome(False, say(f"类型和阶梯上的 {base} 完全一样", f"the same types as the ladder's {base}"),
                       detail=say("换一个张量来覆盖：选该等级自己的混合方案里还不是这种类型的张量",
                                  "override a tensor the level's own mix does not already give that type"))
    kl, n, why = _hw_kl(ctx, MIX)
    if why:
        return Outcome(False, NOT_COMPARABLE, detail=why)
    mb = _size(art, res["file"]) / 2**20
    what = ", ".join(f"{p} {t.upper()}" for p, t in overrides.items())
    lad = _ladder_sizes(ctx)
    n_changed = len(changed) if changed is not None else "?"
    return Outcome(True, f"{base} + {what}: {mb:.2f} MB, KL {kl:.1e}", value=kl, claimed=res.get("kl_mean"),
                   detail=say(f"改了 {n_changed} 个矩阵；单用 {base}：{lad[base][0]:.2f} MB，KL {lad[base][1]:.1e}；"
                              f"阶梯：{_neighbours(ctx, mb)}",
                              f"{n_changed} matrices changed; {base} alone {lad[base][0]:.2f} MB, "
                              f"KL {lad[base][1]:.1e}; ladder: {_neighbours(ctx, mb)}"))

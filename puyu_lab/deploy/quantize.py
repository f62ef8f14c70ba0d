"""The quantization ladder, with llama.cpp's own quantizer called from Python.

Each level is checked after writing: the file must really hold the requested tensor types.
When a weight row is not a multiple of a K-quant's block (256), llama.cpp's quantizer silently
substitutes a 32-block type for that tensor — Q2_K/Q3_K → IQ4_NL, Q4_K → Q5_0, Q5_K → Q5_1,
Q6_K → Q8_0 (``llama-quant.cpp``) — and F16 only when even a block of 32 does not divide the row;
:func:`check_level` turns that into an error instead of a ladder that lies.
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from gguf import LlamaFileType

from ..errors import InputError

# name → llama_ftype (llama.h), by gguf-py's enum: the ladder from the reference down
LEVELS: dict[str, int] = {lv: int(LlamaFileType["ALL_F32" if lv == "F32" else f"MOSTLY_{lv}"])
                          for lv in ("F32", "F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q3_K_M", "Q2_K")}
LADDER = list(LEVELS)
# the tensor types a level's large matrices may use (the _M mixes keep some tensors a step higher)
ALLOWED = {
    "F32": {"F32"}, "F16": {"F16"}, "Q8_0": {"Q8_0"}, "Q6_K": {"Q6_K"},
    "Q5_K_M": {"Q5_K", "Q6_K"}, "Q4_K_M": {"Q4_K", "Q5_K", "Q6_K"}, "Q3_K_M": {"Q3_K", "Q4_K", "Q5_K", "Q6_K"},
    "Q2_K": {"Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"},
    # an i-quant (2.3 bits per weight): llama.cpp makes it only with an importance matrix; its mix keeps the
    # attention value and output matrices at a K-quant
    "IQ2_XS": {"IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"},
}
MAIN = {"F32": "F32", "F16": "F16", "Q8_0": "Q8_0", "Q6_K": "Q6_K", "Q5_K_M": "Q5_K", "Q4_K_M": "Q4_K",
        "Q3_K_M": "Q3_K", "Q2_K": "Q2_K", "IQ2_XS": "IQ2_XS"}
IMATRIX_ONLY = ("IQ2_XS",)  # levels llama-quantize makes only with an importance matrix (llamatools.quantize)


class LevelMismatch(InputError):
    pass


def tensor_types(path: str | Path) -> dict[str, str]:
    """Tensor name → GGML type name, read from the GGUF header."""
    from gguf import GGUFReader

    r = GGUFReader(str(path))
    return {t.name: t.tensor_type.name for t in r.tensors}


def weight_types(path: str | Path) -> Counter:
    """How many 2-D weight matrices of each type (norms and other vectors stay F32 in every level)."""
    from gguf import GGUFReader

    r = GGUFReader(str(path))
    return Counter(t.tensor_type.name for t in r.tensors if len(t.shape) == 2 or (len(t.shape) > 1 and t.shape[1] > 1))


def type_map(files: dict[str, str | Path]) -> dict[str, dict[str, str]]:
    """The per-tensor view of a ladder: weight matrix → {level: GGML type}, in the files' tensor order (norms and
    other vectors, F32 in every level, left out) — where each level's mix keeps a tensor a step higher."""
    from gguf import GGUFReader

    out: dict[str, dict[str, str]] = {}
    for level, path in files.items():
        for t in GGUFReader(str(path)).tensors:
            if len(t.shape) > 1 and t.shape[1] > 1:
                out.setdefault(t.name, {})[level] = t.tensor_type.name
    return out


def bits_of(type_name: str) -> float:
    """Bits per weight of a GGML type (its block's bytes × 8 / weights per block: Q4_K 4.5, IQ2_XS 2.31)."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    block, size = GGML_QUANT_SIZES[GGMLQuantizationType[type_name]]
    return size * 8 / block


def check_level(path: str | Path, level: str) -> Counter:
    """Raise :class:`LevelMismatch` unless every weight matrix has a type of ``level`` (and its
    main type is present)."""
    types = weight_types(path)
    bad = {t: n for t, n in types.items() if t not in ALLOWED[level]}
    if bad or MAIN[level] not in types:
        raise LevelMismatch(f"{path}: asked for {level} but the weight matrices are {dict(types)} — llama.cpp fell "
                            f"back for {dict(bad) or 'all'} (to a 32-block type such as Q5_0/Q8_0/IQ4_NL, or F16: "
                            f"rows must be a multiple of 256 for K-quants)",
                            zh=f"{path}：要求量化为 {level}，但权重矩阵的类型是 {dict(types)}——llama.cpp 对 "
                               f"{dict(bad) or '全部'} 做了回退（退到 Q5_0/Q8_0/IQ4_NL 这类 32 元素分块的类型，或 F16："
                               f"K-quant 要求行长是 256 的倍数）")
    return types


def reference_level(path: str | Path) -> str:
    """The level a GGUF file is, from its ``general.file_type`` (``MOSTLY_Q8_0`` → ``Q8_0``, ``ALL_F32`` → ``F32``);
    without one, its weights' most common type."""
    from gguf import GGUFReader, LlamaFileType

    r = GGUFReader(str(path))
    f = r.fields.get("general.file_type")
    if f is not None:
        try:
            name = LlamaFileType(int(f.parts[f.data[0]][0])).name
            return name.split("_", 1)[1] if name.startswith(("MOSTLY_", "ALL_")) else name
        except ValueError:
            pass
    return weight_types(path).most_common(1)[0][0]


FLOAT_LEVELS = ("F32", "F16", "BF16")


def quantize(src: str | Path, dst: str | Path, level: str, *, nthread: int | None = None,
             allow_requantize: bool = False) -> Path:
    """Quantize the F32/F16 GGUF ``src`` to ``level`` at ``dst`` (written to a temp name, then renamed).
    ``allow_requantize``: ``src`` is itself quantized (a brought Q8_0 file): llama.cpp dequantizes it first, and
    the two roundings add up.

    Without an importance matrix: a level quantized with one goes through llama.cpp's own
    ``llama-quantize --imatrix`` (:func:`puyu_lab.deploy.llamatools.quantize`)."""
    import ctypes

    import llama_cpp

    from ..models.gguf import quiet

    quiet()
    if level not in LEVELS:
        raise InputError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}",
                         zh=f"没有 {level!r} 这个量化档位；可选：{', '.join(LEVELS)}")
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise InputError(f"{src}: no such GGUF file — convert the model first",
                         zh=f"{src}：GGUF 文件不存在——请先转换模型")
    tmp = dst.with_name(dst.name + ".partial")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = LEVELS[level]
    params.nthread = nthread or (os.cpu_count() or 1)
    params.allow_requantize = allow_requantize
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
    if rc != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise InputError(f"llama.cpp could not quantize {src} to {level} (code {rc}); is it a valid GGUF?",
                         zh=f"llama.cpp 无法把 {src} 量化为 {level}（返回码 {rc}）；它是合法的 GGUF 文件吗？")
    try:
        check_level(tmp, level)
    except LevelMismatch:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, dst)
    return dst

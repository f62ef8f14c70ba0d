"""llama.cpp through llama-cpp-python: quiet logs, loading with clear errors, exact F32 KV cache."""
from __future__ import annotations

import ctypes
from pathlib import Path

from ..errors import InputError

_LOG_CB = None
GGML_TYPE_F32 = 0


def quiet() -> None:
    """Silence llama.cpp's log lines (loader tables, graph stats) for this process."""
    global _LOG_CB
    import llama_cpp

    if _LOG_CB is None:
        _LOG_CB = llama_cpp.llama_log_callback(lambda level, text, user: None)
        llama_cpp.llama_log_set(_LOG_CB, ctypes.c_void_p(0))


def check_gguf(path: str | Path) -> Path:
    """A readable GGUF file, or one clear error (missing, truncated, not GGUF)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such GGUF file — run the conversion step first")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise InputError(f"{path}: not a GGUF file (it starts with {magic!r}, not b'GGUF') — convert the model again")
    try:
        from gguf import GGUFReader

        r = GGUFReader(str(path))
        size = path.stat().st_size
        end = max((int(t.data_offset) + int(t.n_bytes) for t in r.tensors), default=0)
        if end > size:
            raise ValueError(f"tensor data runs to byte {end} but the file has {size}")
    except Exception as e:  # gguf raises plain ValueError / IndexError / struct errors on damage
        raise InputError(f"{path}: the GGUF file is truncated or corrupt ({e}) — convert / quantize it again") from None
    return path


def load(path: str | Path, *, n_ctx: int = 512, logits_all: bool = False, n_threads: int | None = None, **kw):
    """A ``llama_cpp.Llama`` with an F32 KV cache (the default F16 cache alone moves logits by ~1e-3)."""
    import os

    from llama_cpp import Llama

    quiet()
    path = check_gguf(path)
    return Llama(str(path), n_ctx=n_ctx, n_batch=n_ctx, logits_all=logits_all, verbose=False,
                 n_threads=n_threads or min(4, os.cpu_count() or 1), type_k=GGML_TYPE_F32, type_v=GGML_TYPE_F32, **kw)


def last_logits(llm):
    """The logits of the last evaluated position, whether or not the model keeps all of them
    (``llm.scores`` is only filled with ``logits_all=True``)."""
    import llama_cpp
    import numpy as np

    ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).astype(np.float64)

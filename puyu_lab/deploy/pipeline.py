"""The deploy stage's artifacts: ``gguf/<model>`` (the ladder of GGUF files) and ``quant/<model>``
(its measurements). ``<model>`` is ``sft`` or ``base`` — the deploy lab works on either."""
from __future__ import annotations

import json
import time
from typing import Callable

import numpy as np

from ..events import Emitter, Event
from ..artifacts import gguf_name, ladder_files, load_quant_results, quant_name, short  # noqa: F401
from ..workspace import Artifact, Workspace, stage_entry
from .converter import convert
from .quantize import LADDER, check_level, quantize, weight_types

QUICK_LEVELS = LADDER


IMATRIX_LEVELS = ("Q4_K_M", "Q3_K_M", "Q2_K")  # the low levels an importance matrix helps
IMATRIX_SUFFIX = "+imatrix"


def imatrix_text(ws: Workspace, tok, skip_tokens: int, n_tokens: int) -> str:
    """Held-out corpus text for the importance matrix, *after* the first ``skip_tokens`` tokens that the
    ladder is measured on (:func:`eval_ids` reads from the start): the levels are not scored on the text
    their matrix was computed from."""
    from ..artifacts import load_corpus

    seen, parts, taken = 0, [], 0
    for t in load_corpus(ws, "heldout")["text"]:
        n = len(tok(t, add_special_tokens=False)["input_ids"]) + 1
        if seen >= skip_tokens:
            parts.append(t)
            taken += n
            if taken >= n_tokens:
                break
        seen += n
    return "\n".join(parts)


@stage_entry("deploy")
def build_ladder(ws: Workspace, model: str = "model/sft", levels: list[str] | None = None, *,
                 imatrix: bool = False, imatrix_tokens: int = 4096, skip_tokens: int = 2048, n_ctx: int = 256,
                 on_event: Callable[[Event], None] | None = None) -> Artifact:
    """Convert ``model`` to F32 GGUF with llama.cpp's converter, then quantize it down the ladder.

    ``imatrix``: also an importance matrix of the F32 file on held-out text (``llama-imatrix``, after the
    ``skip_tokens`` the ladder is measured on) and each of :data:`IMATRIX_LEVELS` quantized with it
    (``llama-quantize --imatrix``) — ``imatrix.json`` lists them beside ``ladder.json``."""
    em = Emitter("deploy", on_event)
    src = ws.get(model)
    levels = [lv for lv in (levels or QUICK_LEVELS) if lv != "F32"]
    t0 = time.perf_counter()
    with ws.write(gguf_name(model), kind="gguf", stage="deploy", parents=[src],
                  params={"levels": ["F32", *levels], "imatrix": imatrix}) as w:
        em.emit("progress", step="convert", done=0, total=len(levels) + 1)
        ref = convert(src.path, w.path / "F32.gguf", "f32")
        files = {"F32": {"file": "F32.gguf", "size": ref.stat().st_size, "types": dict(weight_types(ref))}}
        for i, lv in enumerate(levels, 1):
            em.emit("progress", step="quantize", level=lv, done=i, total=len(levels) + 1)
            p = quantize(ref, w.path / f"{lv}.gguf", lv)
            files[lv] = {"file": p.name, "size": p.stat().st_size, "types": dict(check_level(p, lv))}
        (w.path / "ladder.json").write_text(json.dumps(files, indent=1), encoding="utf-8")
        if imatrix:
            em.emit("progress", step="imatrix", done=len(levels), total=len(levels) + 1)
            imat = _imatrix_levels(ws, src, ref, w.path, [lv for lv in IMATRIX_LEVELS if lv in levels],
                                   imatrix_tokens=imatrix_tokens, skip_tokens=skip_tokens, n_ctx=n_ctx)
            (w.path / "imatrix.json").write_text(json.dumps(imat, indent=1), encoding="utf-8")
            w.metrics["imatrix_levels"] = list(imat)
        w.metrics.update({"levels": list(files), "seconds": round(time.perf_counter() - t0, 1),
                          **{f"size_mb_{lv}": round(f["size"] / 2**20, 2) for lv, f in files.items()}})
    em.emit("done", step="ladder")
    return ws.get(gguf_name(model))


def _imatrix_levels(ws, src, ref, folder, levels, *, imatrix_tokens, skip_tokens, n_ctx) -> dict:
    from ..models.tokenizer import load_tokenizer
    from . import llamatools

    tok = load_tokenizer(src.path)
    text = folder / "imatrix_text.txt"
    text.write_text(imatrix_text(ws, tok, skip_tokens, imatrix_tokens), encoding="utf-8")
    mat = llamatools.imatrix(ref, text, folder / "imatrix.gguf", n_ctx=n_ctx)
    out = {}
    for lv in levels:
        p = llamatools.quantize(ref, folder / f"{lv}-imatrix.gguf", lv, imatrix_file=mat)
        out[lv + IMATRIX_SUFFIX] = {"file": p.name, "size": p.stat().st_size, "types": dict(check_level(p, lv)),
                                    "level": lv}
    return out


def eval_ids(ws: Workspace, tok, n_tokens: int = 2048) -> list[int]:
    """Held-out text of ``corpus/clean`` (documents joined by EOS, as in pretraining), after BOS when the
    tokenizer has one (Qwen2's has none)."""
    from ..artifacts import load_corpus

    ids: list[int] = [tok.bos_token_id] if tok.bos_token_id is not None else []
    for t in load_corpus(ws, "heldout")["text"]:
        ids += tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        if len(ids) >= n_tokens:
            break
    return ids[:n_tokens]


@stage_entry("deploy")
def measure(ws: Workspace, model: str = "model/sft", *, n_tokens: int = 2048, n_ctx: int = 256,
            decode_tokens: int = 64, transformers: tuple[str, ...] | None = None,
            on_event: Callable[[Event], None] | None = None) -> Artifact:
    """Measure the ladder and the transformers-side rows (fp32, bitsandbytes int8 / nf4, torch
    dynamic int8) on held-out text → ``quant/<model>``."""
    from ..models.tokenizer import load_tokenizer
    from .measure import HF_VARIANTS, measure_ladder

    gg = ws.get(gguf_name(model))
    src = ws.get(model)
    tok = load_tokenizer(src.path)
    ids = eval_ids(ws, tok, n_tokens)
    n_params = src.metrics.get("parameters")
    files: dict = dict(ladder_files(ws, model, imatrix=True))
    for v in (HF_VARIANTS if transformers is None else transformers):
        files[v] = f"hf:{v}:{src.path}"
    results, detail = measure_ladder(files, ids, n_ctx=n_ctx, decode_tokens=decode_tokens, n_params=n_params,
                                     bos=tok.bos_token_id, on_event=on_event)
    with ws.write(quant_name(model), kind="measurements", stage="deploy", parents=[gg, src],
                  params={"n_tokens": len(ids), "n_ctx": n_ctx, "reference": "F32"}) as w:
        (w.path / "results.json").write_text(json.dumps([r.to_dict() for r in results], indent=1), encoding="utf-8")
        np.savez_compressed(w.path / "per_token.npz", targets=detail["targets"],
                            **{f"kl_{lv}": v for lv, v in detail["kl"].items()})
        w.metrics.update({r.level: {"size_mb": round(r.size_mb, 2), "ppl": round(r.ppl, 3), "kl": round(r.kl_mean, 5),
                                    "top1": round(r.top1, 4), "decode_tps": round(r.decode_tps, 1)} for r in results})
    return ws.get(quant_name(model))


load_results = load_quant_results  # the deploy lab's name for it

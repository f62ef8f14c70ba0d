"""The deploy stage's artifacts: ``gguf/<model>`` (the ladder of GGUF files) and ``quant/<model>``
(its measurements). ``<model>`` is the chain's ``sft`` or ``base``, or a model the learner brings by its path: a
local Hugging Face directory (converted by llama.cpp's converter) or a GGUF file (its own level is the reference;
the ladder is quantized from it)."""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..events import Emitter, Event
from ..artifacts import brought, gguf_name, ladder_files, load_quant_results, quant_name, short  # noqa: F401
from ..workspace import Artifact, Workspace
from .converter import convert
from .quantize import (FLOAT_LEVELS, IMATRIX_ONLY, LADDER, check_level, quantize, reference_level,  # noqa: F401
                       weight_types)

IMATRIX_LEVELS = ("Q4_K_M", "Q3_K_M", "Q2_K")  # the low levels an importance matrix helps
TUNED_STAGES = ("finetune", "preference")  # models trained on sft/data: the held-out tasks (task_items) are theirs


@dataclass
class Source:
    """What the deploy stage starts from: the chain's model artifact, or a brought directory / GGUF file."""
    path: Path
    artifact: Artifact | None = None
    kind: str = "hf"  # "hf" (a model directory) or "gguf" (a file)

    @property
    def parents(self) -> list:
        return [self.artifact] if self.artifact is not None else []

    def tokenizer(self):
        """The model's tokenizer: transformers' for a directory, llama.cpp's own for a GGUF file."""
        if self.kind == "gguf":
            from ..models.gguf import GGUFTokenizer

            return GGUFTokenizer(self.path)
        from ..models.tokenizer import load_tokenizer

        return load_tokenizer(self.path)


def source(ws: Workspace, model: str) -> Source:
    """``model`` as the deploy stage reads it: an artifact name (``model/sft``), or the path of a local HF model
    directory or a ``.gguf`` file (:func:`puyu_lab.artifacts.brought`)."""
    p = brought(model)
    if p is None:
        art = ws.get(model)
        return Source(art.path, art)
    if p.suffix == ".gguf":
        from ..models.gguf import check_gguf

        return Source(check_gguf(p), kind="gguf")
    return Source(p)


def parameters(src: Source, reference: Path) -> int:
    """The model's parameter count: the artifact's own figure, else the reference GGUF's tensors."""
    if src.artifact is not None and src.artifact.metrics.get("parameters"):
        return int(src.artifact.metrics["parameters"])
    from gguf import GGUFReader

    return sum(int(t.n_elements) for t in GGUFReader(str(reference)).tensors)
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


def build_ladder(ws: Workspace, model: str = "model/sft", levels: list[str] | None = None, *,
                 imatrix: bool = False, imatrix_tokens: int = 4096, skip_tokens: int = 2048, n_ctx: int = 256,
                 on_event: Callable[[Event], None] | None = None) -> Artifact:
    """Convert ``model`` to F32 GGUF with llama.cpp's converter, then quantize it down the ladder.

    ``imatrix``: also an importance matrix of the F32 file on held-out text (``llama-imatrix``, after the
    ``skip_tokens`` the ladder is measured on) and each of :data:`IMATRIX_LEVELS` quantized with it
    (``llama-quantize --imatrix``), with the i-quant :data:`~.quantize.IMATRIX_ONLY` levels that exist only with
    one — ``imatrix.json`` lists them beside ``ladder.json``."""
    ws = ws.for_stage("deploy")  # reads only what stages.py declares for the stage
    em = Emitter("deploy", on_event)
    src = source(ws, model)
    # the reference: F32 from the converter, or a brought GGUF file's own level (llama.cpp dequantizes a quantized
    # one before quantizing it again: levels above it would only add its error, so they are left out)
    ref_level = reference_level(src.path) if src.kind == "gguf" else "F32"
    levels = [lv for lv in (levels or LADDER) if lv not in ("F32", ref_level)
              and (ref_level in FLOAT_LEVELS or lv not in FLOAT_LEVELS)]
    t0 = time.perf_counter()
    params = {"levels": [ref_level, *levels], "imatrix": imatrix}
    if src.artifact is None:
        params["source"] = str(src.path)
    with ws.write(gguf_name(model), kind="gguf", stage="deploy", parents=src.parents, params=params) as w:
        em.emit("progress", step="convert", done=0, total=len(levels) + 1)
        if src.kind == "gguf":  # a hard link when it can be (no copy of a multi-GB file), else a copy
            ref = w.path / f"{ref_level}.gguf"
            try:
                os.link(src.path, ref)
            except OSError:
                shutil.copyfile(src.path, ref)
        else:
            ref = convert(src.path, w.path / "F32.gguf", "f32")
        files = {ref_level: {"file": ref.name, "size": ref.stat().st_size, "types": dict(weight_types(ref))}}
        for i, lv in enumerate(levels, 1):
            em.emit("progress", step="quantize", level=lv, done=i, total=len(levels) + 1)
            p = quantize(ref, w.path / f"{lv}.gguf", lv, allow_requantize=ref_level not in FLOAT_LEVELS)
            files[lv] = {"file": p.name, "size": p.stat().st_size, "types": dict(check_level(p, lv))}
        (w.path / "ladder.json").write_text(json.dumps(files, indent=1), encoding="utf-8")
        if imatrix:
            em.emit("progress", step="imatrix", done=len(levels), total=len(levels) + 1)
            low = [lv for lv in IMATRIX_LEVELS if lv in levels] + list(IMATRIX_ONLY)
            imat = _imatrix_levels(ws, src, ref, w.path, low, imatrix_tokens=imatrix_tokens, skip_tokens=skip_tokens,
                                   n_ctx=n_ctx)
            (w.path / "imatrix.json").write_text(json.dumps(imat, indent=1), encoding="utf-8")
            w.metrics["imatrix_levels"] = list(imat)
        w.metrics.update({"levels": list(files), "seconds": round(time.perf_counter() - t0, 1),
                          **{f"size_mb_{lv}": round(f["size"] / 2**20, 2) for lv, f in files.items()}})
    em.emit("done", step="ladder")
    return ws.get(gguf_name(model))


def _imatrix_levels(ws, src, ref, folder, levels, *, imatrix_tokens, skip_tokens, n_ctx) -> dict:
    from . import llamatools

    tok = src.tokenizer()
    text = folder / "imatrix_text.txt"
    text.write_text(imatrix_text(ws, tok, skip_tokens, imatrix_tokens), encoding="utf-8")
    mat = llamatools.imatrix(ref, text, folder / "imatrix.gguf", n_ctx=n_ctx)
    out = {}
    for lv in levels:
        p = llamatools.quantize(ref, folder / f"{lv}-imatrix.gguf", lv, imatrix_file=mat,
                                allow_requantize=reference_level(ref) not in FLOAT_LEVELS)
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


def chat_conversations(ws: Workspace, reference: str | Path, n: int = 24,
                       max_new_tokens: int = 48) -> list[tuple[list[int], int]]:
    """Text of the kind the model serves: held-out prompts that need no tool (sft/data's ``notool_heldout`` —
    self-cognition and chit-chat paraphrases never trained on), each with the ``reference`` GGUF's own greedy
    reply, as ``(ids, start)`` (the reply is ``ids[start:]``). Empty for a model without a chat template or a
    workspace without sft/data."""
    from ..artifacts import load_sft_data
    from ..models.gguf import GGUFModel
    from ..workspace import MissingArtifact

    try:
        prompts = [r["prompt"] for r in load_sft_data(ws, "notool_heldout")][:n]
    except MissingArtifact:
        return []
    convs = []
    with GGUFModel(reference) as m:
        if not m.has_chat_template:
            return []
        for p in prompts:
            msgs = [{"role": "user", "content": p}]
            _, ids = m.prompt_ids(msgs)
            g = m.generate(msgs, max_new_tokens=max_new_tokens, keep_special=True)
            if g.tokens:
                convs.append((list(ids) + list(g.tokens), len(ids)))
    return convs


def task_items(ws: Workspace, n: int = 16) -> list[dict]:
    """Held-out tasks every GGUF level answers (greedy, through llama.cpp), so the trade-off view shows what a level
    still *does*, not only how far its logits moved: ``n`` self-cognition paraphrases (the reply names the
    assistant), ``n`` reviews (the reply starts with 正面 / 负面, balanced), and ``2n`` questions asked with the tools
    offered — arithmetic (calls ``calculator``), dates (``add_days``) and questions that need none (calls nothing).
    All from the fine-tune data's held-out parts and corpus/clean's held-out reviews: none was trained on. Empty
    for a workspace without sft/data. :func:`measure` asks them of the chain's tuned models only (a brought model
    has another name and no such tools)."""
    import itertools

    from ..artifacts import load_corpus, load_sft_data
    from ..contracts.protocol import tool_prompt
    from ..contracts.tasks import (ARITHMETIC_HELDOUT, ARITHMETIC_QUESTION, DATE_HELDOUT, DATE_QUESTION,
                                   NOTOOL_HELDOUT, SELFCOG_HELDOUT, SENTIMENT_ANSWER, SENTIMENT_MAX_CHARS,
                                   SENTIMENT_PROMPT)
    from ..models.template import ACTION_END
    from ..workspace import MissingArtifact

    try:
        selfcog = load_sft_data(ws, SELFCOG_HELDOUT)
        arith, dates = load_sft_data(ws, ARITHMETIC_HELDOUT), load_sft_data(ws, DATE_HELDOUT)
        notool = load_sft_data(ws, NOTOOL_HELDOUT)
    except MissingArtifact:
        return []
    items = [{"task": "selfcog", "messages": [{"role": "user", "content": h["prompt"]}], "answer": h["expect"],
              "match": "contains", "max_new_tokens": 24} for h in selfcog[:n]]
    held = [r for r in load_corpus(ws, "heldout").to_list() if r.get("label") in SENTIMENT_ANSWER]
    by = [[r for r in held if r["label"] == lab] for lab in SENTIMENT_ANSWER]
    for r in [r for pair in zip(*by) for r in pair][:n]:
        items.append({"task": "sentiment", "answer": SENTIMENT_ANSWER[r["label"]], "match": "prefix",
                      "messages": [{"role": "user", "content": SENTIMENT_PROMPT.format(
                          text=r["text"].strip()[:SENTIMENT_MAX_CHARS])}], "max_new_tokens": 4})
    asks = [(ARITHMETIC_QUESTION.format(e=t["expression"]), "calculator") for t in arith[:n // 2 + n % 2]]
    asks += [(DATE_QUESTION.format(date=t["date"], days=t["days"]), "add_days") for t in dates[:n // 2]]
    kinds = [[h for h in notool if h.get("kind") == k] for k in ("self", "dialog")]
    asks += [(h["prompt"], "none") for h in [h for pair in itertools.zip_longest(*kinds) for h in pair if h][:n]]
    items += [{"task": "tool_choice", "messages": tool_prompt(q), "answer": a, "match": "tool", "stop": [ACTION_END],
               "max_new_tokens": 24} for q, a in asks]  # a call names its tool within ~16 tokens
    return items


def measure(ws: Workspace, model: str = "model/sft", *, n_tokens: int = 2048, n_ctx: int = 256,
            decode_tokens: int = 64, transformers: tuple[str, ...] | None = None, chat: bool = True,
            tasks: bool = True, tasks_per_kind: int = 16, on_event: Callable[[Event], None] | None = None) -> Artifact:
    """Measure the ladder and the transformers-side rows (fp32, bitsandbytes int8 / nf4, torch
    dynamic int8) on held-out text → ``quant/<model>``; with ``chat`` (a chat model) also on the F32 level's own
    replies to held-out prompts (:func:`chat_conversations`: the ``*_chat`` columns); with ``tasks``, each GGUF level's
    answers to held-out tasks (:func:`task_items` with ``n = tasks_per_kind``: ``task_acc`` and ``task_by``)."""
    from .measure import measure_ladder
    from .workers import HF_VARIANTS

    ws = ws.for_stage("deploy")  # reads only what stages.py declares for the stage
    gg = ws.get(gguf_name(model))
    src = source(ws, model)
    tok = src.tokenizer()
    ids = eval_ids(ws, tok, n_tokens)
    files: dict = dict(ladder_files(ws, model, imatrix=True))
    reference = next(iter(files))
    n_params = parameters(src, files[reference])
    if src.kind == "hf":  # the transformers rows need the model directory
        for v in (HF_VARIANTS if transformers is None else transformers):
            files[v] = f"hf:{v}:{src.path}"
    convs = chat_conversations(ws, files[reference]) if chat else []
    # the held-out tasks are the chain's own (its assistant's name, its tool protocol): for models fine-tuned on sft/data
    items = task_items(ws, tasks_per_kind) if tasks and src.artifact is not None and src.artifact.stage in TUNED_STAGES else []
    results, detail = measure_ladder(files, ids, n_ctx=n_ctx, decode_tokens=decode_tokens, n_params=n_params,
                                     bos=tok.bos_token_id, chat=convs, tasks=items, on_event=on_event)
    with ws.write(quant_name(model), kind="measurements", stage="deploy", parents=[gg, *src.parents],
                  params={"n_tokens": len(ids), "n_ctx": n_ctx, "reference": reference, "tasks_per_kind": tasks_per_kind}) as w:
        (w.path / "results.json").write_text(json.dumps([r.to_dict() for r in results], indent=1), encoding="utf-8")
        (w.path / "tasks.json").write_text(json.dumps(items, ensure_ascii=False, indent=1), encoding="utf-8")
        np.savez_compressed(w.path / "per_token.npz", targets=detail["targets"],
                            **{f"kl_{lv}": v for lv, v in detail["kl"].items()})
        w.metrics["threads_sweep"] = detail.get("threads_sweep", [])  # llama-bench generation at 1 … n threads
        w.metrics["chat"] = {"conversations": len(convs), "reply_tokens": sum(len(c[0]) - c[1] for c in convs)}
        w.metrics["tasks"] = {k: sum(it["task"] == k for it in items) for k in dict.fromkeys(it["task"] for it in items)}
        w.metrics.update({r.level: r.key_figures() for r in results})
    return ws.get(quant_name(model))


def kl_by_tool(ws: Workspace, models: tuple[str, ...] = ("model/base", "model/sft"),
               levels: tuple[str, ...] = ("Q8_0", "Q4_K_M", "Q2_K"), *, n_tokens: int = 2048, n_ctx: int = 256,
               on_event: Callable[[Event], None] | None = None) -> list[dict]:
    """The ladders of several models side by side, measured by llama.cpp's own ``llama-perplexity
    --kl-divergence`` (equal to :func:`measure`'s figures: ``tests/deploy/test_llama_tools.py``) on the same
    held-out text — one row per model and level: PPL, KL mean / p99 / max, same top token. Each model's ladder
    (``gguf/<model>``) is built first when the workspace lacks it (those levels only, no importance matrix)."""
    import tempfile

    from . import llamatools

    ws = ws.for_stage("deploy")  # reads only what stages.py declares for the stage
    em = Emitter("deploy", on_event)
    rows = []
    with tempfile.TemporaryDirectory() as td:
        for model in models:
            try:
                files = ladder_files(ws, model)
            except FileNotFoundError:
                files = {}
            if not all(lv in files for lv in levels):
                build_ladder(ws, model, list(levels), imatrix=False, on_event=on_event)
                files = ladder_files(ws, model)
            src = source(ws, model)
            tok = src.tokenizer()
            text = Path(td) / f"{short(model)}.txt"  # the same documents for every model (each its own tokens)
            text.write_text(imatrix_text(ws, tok, 0, n_tokens), encoding="utf-8")
            ref, base = next(iter(files)), Path(td) / f"{short(model)}.kld"
            em.emit("progress", step="llama-perplexity", model=model, level=ref)
            ref_ppl = llamatools.perplexity(files[ref], text, n_ctx=n_ctx, kld_base=base).get("ppl")
            for lv in levels:
                em.emit("progress", step="llama-perplexity", model=model, level=lv)
                r = llamatools.perplexity(files[lv], text, n_ctx=n_ctx, kld_base=base, kld=True)
                rows.append({"model": model, "level": lv, "ppl": r.get("ppl"), "ppl_reference": ref_ppl,
                             "kl_mean": r["kl_mean"], "kl_p99": r.get("kl_p99"), "kl_max": r.get("kl_max"),
                             "same_top": r.get("same_top")})
    return rows


load_results = load_quant_results  # the deploy lab's name for it

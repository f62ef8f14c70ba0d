"""The artifacts that pass between stages: their names, and one typed reader per kind.

A stage reads another stage's output only through these readers (or ``ws.get`` of a name listed
here), never through the producing stage's modules. Each stage lists the artifacts it takes from other
stages in its ``needs`` (:data:`puyu_lab.stages.STAGES`); its engines read through ``ws.for_stage(key)``,
whose ``get`` raises :class:`~puyu_lab.workspace.UndeclaredRead` for a name its ``needs`` does not list.

    corpus/clean      data      → a datasets.DatasetDict (train / heldout)       load_corpus
    tokenizer/spm     pretrain  → a tokenizer directory                          tokenizer_dir
    model/base        pretrain  → a transformers model directory                 model_dir
    sft/data          finetune  → conversations (train) and held-out parts       load_sft_data
    model/sft         finetune  → a transformers model directory                 model_dir
    pref/data         preference → preference pairs (train / heldout)            load_pref_pairs
    model/dpo         preference → a transformers model directory (model/orpo too) model_dir
    gguf/<model>      deploy    → the GGUF ladder (level → file)                 ladder_files
    quant/<model>     deploy    → measured levels + per-token KL                 load_quant_results
    eval/<run>        eval      → a leaderboard (lm-eval-style JSON per model)   load_eval
    agent/eval        agent     → held-out tasks with vs without tools           load_agent_eval
    rag/index         rag       → chunks, BM25, the dense encoder and vectors    load_rag_index
    rag/eval          rag       → questions with ranks, refusal curve, answers   load_rag_eval
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from .errors import InputError
from .workspace import Workspace

CORPUS = "corpus/clean"
TOKENIZER = "tokenizer/spm"
BASE = "model/base"
SFT_DATA = "sft/data"
SFT_MODEL = "model/sft"
ADAPTER = "adapter/sft"
AGENT_EVAL = "agent/eval"
PREF_DATA = "pref/data"
DPO_MODEL = "model/dpo"
RAG_INDEX = "rag/index"
RAG_EVAL = "rag/eval"

SFT_PARTS = ("train", "selfcog_heldout", "arithmetic_heldout", "date_heldout", "notool_heldout")


def brought(model: str) -> Path | None:
    """A model the learner brings by its path — a local HF model directory (with ``config.json``) or a ``.gguf``
    file — or None for an artifact name (``model/sft``). A path is absolute, starts with ``.`` or ``~``, or
    ends in ``.gguf``, so an artifact name never reads as one."""
    if not (model.endswith(".gguf") or model.startswith(("/", ".", "~"))):
        return None
    p = Path(model).expanduser()
    if p.suffix == ".gguf" and p.is_file():
        return p.resolve()
    if p.is_dir() and (p / "config.json").is_file():
        return p.resolve()
    from .errors import MissingInput

    raise MissingInput(f"{model}: neither a GGUF file nor a model directory with a config.json — give the path "
                       "of a Hugging Face checkpoint directory or of a .gguf file, or an artifact such as model/sft",
                       zh=f"{model}：既不是 GGUF 文件，也不是含 config.json 的模型目录——请给出 Hugging Face 检查点目录"
                          "或 .gguf 文件的路径，或者 model/sft 这样的产物名")


def short(model: str) -> str:
    """``model/sft`` → ``sft`` (the suffix the deploy artifacts carry); a brought model → its file or directory
    name (``/models/Qwen2-0.5B`` → ``Qwen2-0.5B``)."""
    p = brought(model)
    if p is not None:
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", p.stem if p.suffix == ".gguf" else p.name).strip("-.") or "model"
    return model.split("/", 1)[1] if "/" in model else model


def gguf_name(model: str = SFT_MODEL) -> str:
    return f"gguf/{short(model)}"


def quant_name(model: str = SFT_MODEL) -> str:
    return f"quant/{short(model)}"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_corpus(ws: Workspace, split: str = "train", name: str = CORPUS):
    """The cleaned corpus split (``train`` or ``heldout``) as a ``datasets.Dataset``."""
    import datasets

    return datasets.load_from_disk(str(ws.get(name).file("dataset")))[split]


def tokenizer_dir(ws: Workspace, name: str = TOKENIZER) -> Path:
    return ws.get(name).path


def model_dir(ws: Workspace, name: str) -> Path:
    """A model artifact's directory (``model/base``, ``model/sft``): transformers files + tokenizer."""
    return ws.get(name).path


def load_sft_data(ws: Workspace, part: str = "train") -> list[dict]:
    """A part of ``sft/data``: ``train`` (conversations), ``selfcog_heldout`` (paraphrases never
    trained on), ``arithmetic_heldout`` and ``date_heldout`` (tool tasks never trained on),
    ``notool_heldout`` (questions that need no tool, never trained on)."""
    if part not in SFT_PARTS:
        raise InputError(f"sft/data has no part {part!r}: use one of {', '.join(SFT_PARTS)}",
                         zh=f"sft/data 里没有 {part!r} 这一部分：可选 {', '.join(SFT_PARTS)}")
    return _jsonl(ws.get(SFT_DATA).path / f"{part}.jsonl")


def load_pref_pairs(ws: Workspace, part: str = "heldout") -> list[dict]:
    """A part of ``pref/data`` (``train`` or ``heldout``): pairs in trl's conversational format
    (``prompt`` messages, one-message ``chosen`` / ``rejected``), each with its ``source``."""
    if part not in ("train", "heldout"):
        raise InputError(f"{PREF_DATA} has parts 'train' and 'heldout', not {part!r}",
                         zh=f"{PREF_DATA} 只有 'train' 和 'heldout' 两部分，没有 {part!r}")
    return _jsonl(ws.get(PREF_DATA).path / f"{part}.jsonl")


def ladder_files(ws: Workspace, model: str = SFT_MODEL, imatrix: bool = False) -> dict[str, Path]:
    """The GGUF ladder of ``model``: level → file; with ``imatrix``, the levels quantized with an importance
    matrix too (``Q2_K+imatrix`` …), when the ladder has them."""
    art = ws.get(gguf_name(model))
    info = json.loads((art.path / "ladder.json").read_text(encoding="utf-8"))
    extra = art.path / "imatrix.json"
    if imatrix and extra.is_file():
        info.update(json.loads(extra.read_text(encoding="utf-8")))
    return {lv: art.path / f["file"] for lv, f in info.items()}


def load_quant_results(ws: Workspace, model: str = SFT_MODEL) -> tuple[list[dict], dict]:
    """The measured levels (one row each) and the detail: the per-token KL (targets, KL per level) and the
    held-out task items the levels answered (``tasks``; each row's ``replies`` are in their order)."""
    import numpy as np

    art = ws.get(quant_name(model))
    rows = json.loads((art.path / "results.json").read_text(encoding="utf-8"))
    z = np.load(art.path / "per_token.npz")
    tasks = art.path / "tasks.json"
    return rows, {"targets": z["targets"], "kl": {k[3:]: z[k] for k in z.files if k.startswith("kl_")},
                  "tasks": json.loads(tasks.read_text(encoding="utf-8")) if tasks.is_file() else []}


def load_agent_eval(ws: Workspace, name: str = AGENT_EVAL) -> dict:
    """``metrics`` and per-task ``rows`` of the agent's held-out tasks (arithmetic, dates, no tool)."""
    art = ws.get(name)
    rows = _jsonl(art.path / "rows.jsonl") if (art.path / "rows.jsonl").is_file() else []
    return {"metrics": dict(art.metrics), "rows": rows}


def load_eval(ws: Workspace, name: str = "eval/chain") -> dict:
    """An evaluation run: ``metrics`` (model → task → main metric), ``results`` (model → lm-eval-style
    JSON) and ``samples`` (one row per model, task and document)."""
    art = ws.get(name)
    results = {p.stem.replace("__", "/"): json.loads(p.read_text(encoding="utf-8"))
               for p in sorted((art.path / "results").glob("*.json"))}
    return {"metrics": dict(art.metrics), "results": results, "samples": _jsonl(art.path / "samples.jsonl")}


def load_rag_index(ws: Workspace, name: str = RAG_INDEX) -> dict:
    """``rag/index``: ``chunks`` (id, doc, source, text), ``vectors`` (one unit vector per chunk),
    ``info`` (fusion weight, depth) and ``path`` (its ``bm25/`` and ``encoder/`` folders)."""
    import numpy as np

    art = ws.get(name)
    return {"chunks": _jsonl(art.file("chunks.jsonl")), "vectors": np.load(art.file("vectors.npy")),
            "info": json.loads(art.file("index.json").read_text(encoding="utf-8")), "path": art.path}


def load_rag_eval(ws: Workspace, name: str = RAG_EVAL) -> dict:
    """``rag/eval``: ``metrics``, one row per question (``rows``: split, answerable, ranks per mode,
    relevance, the reader's answers) and the test half's refusal ``curve``."""
    art = ws.get(name)
    return {"metrics": dict(art.metrics), "rows": _jsonl(art.file("questions.jsonl")),
            "curve": json.loads(art.file("curve.json").read_text(encoding="utf-8"))}

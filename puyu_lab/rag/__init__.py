"""RAG stage (HuixiangDou / LlamaIndex): retrieval over the learner's own corpus, a calibrated refusal
threshold, grounded answers.

Engines only (no widgets): ``chunking`` (sentence-aware chunks), ``questions`` (cloze questions with
known answers, and unanswerable ones), ``index`` (BM25, the dense encoder, fusion; :class:`Retriever`),
``encoder`` (contrastive training from the base model), ``evaluate`` (hit@k, MRR, the refusal curve),
``reader`` (answers from the passages), ``entry`` (``run`` → ``rag/index`` and ``rag/eval``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import exports

_EXPORTS = {"RAGConfig": "config", "run": "entry", "load_retriever": "entry"}
__all__ = list(_EXPORTS)
__getattr__ = exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # editors and type checkers see the names (go to definition); at run time they load lazily
    from .config import RAGConfig
    from .entry import load_retriever, run

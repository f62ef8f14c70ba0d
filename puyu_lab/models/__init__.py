"""The one inference layer: the chat format, and one interface over transformers, llama.cpp GGUF
and OpenAI-compatible endpoints (generate — streaming and stoppable — and, where the backend has
logits, lm-eval's log-likelihoods). Every stage and panel that runs a model goes through here.

    template.py   the InternLM2 chat format (Jinja chat_template, tool calls, training masks)
    tokenizer.py  reading / writing a tokenizer directory
    base.py       Generation, Stream, Model, and the decode loop of the local backends (one sequence, or
                  many in lock-step: generate_batch)
    constraints.py  constrained decoding: the Constraint a decode step applies, the vocabulary as text
    scoring.py    log-likelihoods as lm-eval computes them
    hf.py         HFModel (transformers)
    gguf.py       GGUFModel (llama.cpp), and loading a GGUF file with clear errors
    openai.py     OpenAIModel (any /v1/chat/completions endpoint)
    conversation.py  a chat history with streaming, stoppable replies (the chat panel's state)
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import exports
from .base import (
    BatchedLocalModel,
    Generation,
    LocalModel,
    Model,
    Stream,
    cut_at_stops,
    log_softmax,
    softmax,
)

__all__ = ["BatchedLocalModel", "Generation", "LocalModel", "Model", "Stream", "cut_at_stops", "log_softmax", "softmax",
           "HFModel", "GGUFModel", "OpenAIModel", "Conversation", "load_model"]

# the backends (torch, llama.cpp) import on first use
_EXPORTS = {"HFModel": "hf", "GGUFModel": "gguf", "OpenAIModel": "openai", "Conversation": "conversation"}
__getattr__ = exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # editors and type checkers see the names (go to definition); at run time they load lazily
    from .conversation import Conversation
    from .gguf import GGUFModel
    from .hf import HFModel
    from .openai import OpenAIModel


def load_model(source, name: str | None = None, *, ws=None, **kw) -> Model:
    """A model from what a learner has: a workspace artifact (``"model/sft"``), a model directory,
    a ``.gguf`` file, or an ``http(s)://…/v1`` endpoint."""
    from pathlib import Path

    s = str(source)
    if s.startswith(("http://", "https://")):
        from .openai import OpenAIModel
        return OpenAIModel(s, name=name, **kw)
    if s.endswith(".gguf"):
        from .gguf import GGUFModel
        return GGUFModel(s, name, **kw)
    from .hf import HFModel
    if not Path(s).is_dir() and ws is None:
        from ..errors import MissingInput

        raise MissingInput(f"{s}: not a model directory, .gguf file or http(s) endpoint",
                           zh=f"{s}：既不是模型目录，也不是 .gguf 文件或 http(s) 服务地址")
    return HFModel.load(s, name, ws=ws, **kw)

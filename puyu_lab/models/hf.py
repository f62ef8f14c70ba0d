"""A transformers causal LM and its tokenizer: generation through the shared decode loop (one
forward step per token over the KV cache), and lm-eval's log-likelihoods.

The chat template decides the prompt; a tokenizer without one gets the InternLM2 template
(:mod:`puyu_lab.models.template`), which every model of the chain is trained with.
"""
from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np

from .base import BatchedLocalModel
from .scoring import Scorer
from .template import CHAT_TEMPLATE, IM_END, chat_ids, render
from .tokenizer import load_tokenizer


def stop_ids(tok) -> list[int]:
    """End of sequence and ``<|im_end|>`` (when the vocabulary has it)."""
    ids = [tok.eos_token_id]
    im_end = tok.convert_tokens_to_ids(IM_END)
    if im_end is not None and im_end != tok.unk_token_id:
        ids.append(im_end)
    return ids


class HFModel(BatchedLocalModel, Scorer):
    def __init__(self, model, tok, name: str = "model", *, model_id: str = "", max_length: int | None = None,
                 batch_size: int = 1):
        self.own_template = bool(tok.chat_template)  # a base model's tokenizer has none
        if not tok.chat_template:  # chat still works (the chat panel shows base vs SFT in the same format)
            tok.chat_template = CHAT_TEMPLATE
        self.model, self.tok, self.name = model, tok, name
        self.model_id = model_id or name
        self.max_length = max_length or getattr(model.config, "max_position_embeddings", 2048)
        self.batch_size = batch_size
        self._init_cache()
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft wrapper
        params = inspect.signature(inner.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"  # transformers 5.x renamed it
        self._past = None
        self._was_training = False

    can_score = True

    @classmethod
    def load(cls, source, name: str | None = None, *, ws=None, dtype=None, trust_remote_code: bool = False,
             **kw) -> "HFModel":
        """A model directory, or a model artifact of the workspace ``ws`` (``"model/sft"``);
        ``trust_remote_code`` runs the directory's own modelling code (only for a model you trust)."""
        import torch
        from transformers import AutoModelForCausalLM

        p = Path(source)
        if not p.is_dir() and ws is not None:
            p = ws.get(str(source)).path
        # code a model directory names runs only when asked (transformers would ask on stdin when left unset)
        model = AutoModelForCausalLM.from_pretrained(str(p), dtype=dtype or torch.float32,
                                                     trust_remote_code=trust_remote_code)
        model.eval()
        cfg = p / "config.json"
        ident = kw.pop("model_id", None) or f"hf:{p.resolve()}:{cfg.stat().st_mtime_ns if cfg.exists() else 0}"
        return cls(model, load_tokenizer(p, trust_remote_code=trust_remote_code), name or (str(source) if ws is not None else p.name), model_id=ident, **kw)

    @property
    def has_chat_template(self) -> bool:
        """Whether the model came with a chat format (evaluation wraps prompts only then, as for a GGUF)."""
        return self.own_template

    # ---- prompts and text ----
    def prompt_ids(self, inp):
        if isinstance(inp, list):
            return render(self.tok, inp, add_generation_prompt=True), chat_ids(self.tok, inp)
        return inp, self.encode(inp)

    def render(self, messages: list[dict]) -> str:
        return render(self.tok, messages, add_generation_prompt=True)

    def stop_token_ids(self):
        return set(stop_ids(self.tok))

    def detokenize(self, ids, keep_special=False):
        return self.tok.decode(ids, skip_special_tokens=not keep_special)

    def piece(self, token):
        return self.tok.convert_ids_to_tokens(token)

    def vocab_size(self):
        return len(self.tok)

    def token_id(self, text):
        i = self.tok.convert_tokens_to_ids(text)
        return None if i is None or i == self.tok.unk_token_id else int(i)

    # ---- the decode loop's steps ----
    def _run(self, ids, **inputs) -> np.ndarray:
        """One forward of the token ids ``ids`` (``[batch, n]``) over the cache: each row's last logits."""
        import torch

        with torch.no_grad():
            res = self.model(input_ids=ids, use_cache=True, **inputs, **{self._cache_kw: self._past})
        self._past = getattr(res, self._cache_kw, None)
        return res.logits[:, -1].float().cpu().numpy().astype(np.float64)

    def _fresh(self) -> None:
        """Before a generation: evaluation mode (restored by ``_end``), an empty cache."""
        self._was_training = self.model.training
        self.model.eval()
        self._past = None

    def _begin(self, ids):
        import torch

        self._fresh()
        return self._run(torch.tensor([ids], device=self.model.device))[0]

    def _step(self, token):
        import torch

        return self._run(torch.tensor([[token]], device=self.model.device))[0]

    # ---- several sequences in lock-step (Model.generate_batch) ----
    def _begin_batch(self, seqs):
        """Left-padded prompts with their attention mask, and positions that start at 0 at each row's first real
        token (as ``model.generate`` does for a left-padded batch)."""
        import torch

        self._fresh()
        n = max(len(s) for s in seqs)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        ids = torch.tensor([[pad] * (n - len(s)) + list(s) for s in seqs], device=self.model.device)
        self._mask = torch.tensor([[0] * (n - len(s)) + [1] * len(s) for s in seqs], device=self.model.device)
        pos = (self._mask.cumsum(-1) - 1).clamp(min=0)
        self._pos = pos[:, -1:]
        return self._run(ids, attention_mask=self._mask, position_ids=pos)

    def _step_batch(self, tokens):
        import torch

        self._mask = torch.cat([self._mask, self._mask.new_ones((len(tokens), 1))], dim=1)
        self._pos = self._pos + 1
        return self._run(torch.tensor([[t] for t in tokens], device=self.model.device), attention_mask=self._mask,
                         position_ids=self._pos)

    def _end(self):
        self._past = None
        self._mask = self._pos = None
        if self._was_training:
            self.model.train()
            self._was_training = False

    # ---- lm-eval's tokenization and scoring ----
    def encode(self, s: str, add_special_tokens: bool | None = None) -> list[int]:
        kw = {} if add_special_tokens is None else {"add_special_tokens": add_special_tokens}
        bos = self.tok.bos_token
        if add_special_tokens is None and bos and s.startswith(bos):
            kw = {"add_special_tokens": False}
        return self.tok.encode(s, **kw)

    @property
    def prefix_token_id(self) -> int:
        return self.tok.bos_token_id if self.tok.bos_token_id is not None else self.tok.eos_token_id

    def _score_batch(self, batch):
        import torch
        import torch.nn.functional as F

        inps, meta = [], []
        for c, k in batch:
            inp = (c + k)[-(self.max_length + 1):][:-1]
            inps.append(inp)
            meta.append((len(inp), k))
        n = max(len(x) for x in inps)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        t = torch.tensor([x + [pad] * (n - len(x)) for x in inps], device=self.model.device)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                logp = F.log_softmax(self.model(t).logits.float(), dim=-1).cpu()
        finally:
            if was_training:
                self.model.train()
        out = []
        for row, (inplen, k) in zip(logp, meta):
            sel = row[inplen - len(k): inplen]
            kt = torch.tensor(k)
            greedy = bool((sel.argmax(-1) == kt).all())
            out.append((float(sel.gather(1, kt.unsqueeze(-1)).sum()), greedy))
        return out

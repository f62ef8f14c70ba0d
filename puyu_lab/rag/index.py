"""The retrieval index: BM25 (bm25s), a dense encoder made from the learner's base model, and their
fusion by relative score (Weaviate's ``relativeScoreFusion``, LlamaIndex's ``relative_score`` mode).
Reciprocal rank fusion (RRF) was measured first: with BM25 near-perfect on these questions and the
tiny dense encoder weak, RRF's flat 1/(60 + rank) let the dense list reorder BM25's sure hits, and the
hybrid found fewer answers than BM25 alone (the figures: README, the RAG lab); score fusion keeps a
confident BM25 hit and lets the dense side decide where BM25's scores are close.

The dense encoder is the base model's own token embeddings and first ``layers`` transformer layers,
mean-pooled and projected, trained contrastively in :mod:`puyu_lab.rag.encoder`. It is written here
because no offline sentence encoder exists for a tokenizer the learner trained an hour ago;
sentence-transformers would wrap the same torch module without adding anything we use.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ..contracts.retrieval import search_tokens



_CLOZE = re.compile(r"^填空：|_{2,}")


def dense_text(text: str) -> str:
    """What the dense encoder reads of a text: a cloze question without its "填空：" and blank (words
    every question shares pull every question's mean-pooled vector the same way)."""
    return _CLOZE.sub(" ", text).strip() or text


class SparseIndex:
    """BM25 over chunks; terms from :func:`~puyu_lab.contracts.retrieval.search_tokens`."""

    def __init__(self, texts: list[str]):
        import bm25s

        self.n = len(texts)
        self.bm25 = bm25s.BM25()
        self.bm25.index([search_tokens(t) or ["∅"] for t in texts], show_progress=False)

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        terms = search_tokens(query) or ["∅"]
        k = min(k, self.n)
        idx, scores = self.bm25.retrieve([terms], k=k, show_progress=False)
        return idx[0].astype(np.int64), scores[0].astype(np.float32)

    def save(self, path: Path) -> None:
        self.bm25.save(str(path))

    @classmethod
    def load(cls, path: Path, n: int) -> "SparseIndex":
        import bm25s

        self = cls.__new__(cls)
        self.n, self.bm25 = n, bm25s.BM25.load(str(path))
        return self


def build_encoder(base_config: dict, layers: int, dim: int):
    """The dense encoder's torch module: a Llama-shaped model with ``layers`` layers + a projection."""
    import torch
    from transformers import AutoConfig, AutoModel

    cfg = AutoConfig.for_model(**{**base_config, "num_hidden_layers": layers})

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = AutoModel.from_config(cfg)
            self.proj = torch.nn.Linear(cfg.hidden_size, dim, bias=False)
            # SIF token weights a / (a + p(token)) (Arora et al. 2017): rare tokens count more in the mean
            self.register_buffer("token_weight", torch.ones(cfg.vocab_size))

        def forward(self, ids, mask):
            h = self.body(input_ids=ids, attention_mask=mask).last_hidden_state
            m = (mask.to(h.dtype) * self.token_weight[ids]).unsqueeze(-1)
            v = self.proj((h * m).sum(1) / m.sum(1).clamp(min=1))
            return torch.nn.functional.normalize(v, dim=-1)

    return Encoder()


class DenseEncoder:
    """Texts → unit vectors with the trained encoder (batched, no gradients)."""

    def __init__(self, module, tok, max_tokens: int):
        self.module, self.tok, self.max_tokens = module.eval(), tok, max_tokens

    def batch(self, texts: list[str]):
        import torch

        enc = self.tok(texts, add_special_tokens=False, truncation=True, max_length=self.max_tokens)["input_ids"]
        n = max(1, max(len(e) for e in enc))
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        ids = torch.tensor([e + [pad] * (n - len(e)) for e in enc])
        mask = torch.tensor([[1] * len(e) + [0] * (n - len(e)) for e in enc])
        return ids, mask

    def encode(self, texts: list[str], batch_size: int = 64, stop=None) -> np.ndarray:
        import torch

        texts = [dense_text(t) for t in texts]
        out = []
        order = np.argsort([len(t) for t in texts])  # similar lengths together: less padding
        with torch.inference_mode():
            for b in range(0, len(texts), batch_size):
                if stop is not None:
                    stop.check()
                part = [texts[i] for i in order[b:b + batch_size]]
                out.append(self.module(*self.batch(part)).float().numpy())
        vec = np.concatenate(out) if out else np.zeros((0, self.module.proj.out_features), np.float32)
        res = np.empty_like(vec)
        res[order] = vec
        return res

    def save(self, path: Path, meta: dict) -> None:
        from safetensors.torch import save_file

        path.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.module.state_dict().items()}, str(path / "encoder.safetensors"))
        (path / "encoder.json").write_text(json.dumps({**meta, "max_tokens": self.max_tokens}, indent=1), encoding="utf-8")
        self.tok.save_pretrained(str(path / "tokenizer"))

    @classmethod
    def load(cls, path: Path) -> "DenseEncoder":
        from safetensors.torch import load_file

        from ..models.tokenizer import load_tokenizer

        meta = json.loads((path / "encoder.json").read_text(encoding="utf-8"))
        module = build_encoder(meta["base_config"], meta["layers"], meta["dim"])
        module.load_state_dict(load_file(str(path / "encoder.safetensors")))
        return cls(module, load_tokenizer(path / "tokenizer"), meta["max_tokens"])


class Retriever:
    """Sparse, dense and hybrid search over the same chunks."""

    MODES = ("sparse", "dense", "hybrid")

    def __init__(self, chunks: list[dict], sparse: SparseIndex, encoder: DenseEncoder, vectors: np.ndarray,
                 alpha: float = 0.8, depth: int = 50):
        self.chunks, self.sparse, self.encoder, self.vectors = chunks, sparse, encoder, vectors
        self.alpha, self.depth = alpha, depth  # the fusion's weight of BM25; candidates per retriever

    def dense_search(self, qvec: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        sims = self.vectors @ qvec
        k = min(k, len(sims))
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top], kind="stable")]
        return top.astype(np.int64), sims[top].astype(np.float32)

    def candidates(self, query: str, qvec: np.ndarray | None = None) -> dict:
        """Each retriever's top ``depth`` (indices, scores) for ``query``; BM25's zero scores dropped."""
        if qvec is None:
            qvec = self.encoder.encode([query])[0]
        si, ss = self.sparse.search(query, self.depth)
        return {"sparse": (si[ss > 0], ss[ss > 0]), "dense": self.dense_search(qvec, self.depth)}

    def rank(self, cand: dict, k: int = 10, alpha: float | None = None) -> dict:
        """Each mode's top ``k`` as ``[(chunk index, score), …]`` from :meth:`candidates`, and
        ``relevance`` — BM25's top score, which the refusal threshold reads."""
        a = self.alpha if alpha is None else alpha
        (si, ss), (di, ds) = cand["sparse"], cand["dense"]
        return {"sparse": [(int(i), float(s)) for i, s in zip(si[:k], ss[:k])],
                "dense": [(int(i), float(s)) for i, s in zip(di[:k], ds[:k])],
                "hybrid": relative_fusion((si, ss), (di, ds), a, k),
                "relevance": float(ss[0]) if len(ss) else 0.0}

    def search(self, query: str, k: int = 5, mode: str = "hybrid") -> list[dict]:
        """The top ``k`` chunks of one mode, each with its text and score."""
        if mode not in self.MODES:
            from ..errors import InputError

            raise InputError(f"mode must be one of {', '.join(self.MODES)}, not {mode!r}",
                             zh=f"mode 只能是 {', '.join(self.MODES)} 之一，而不是 {mode!r}")
        hits = self.rank(self.candidates(query), k)[mode]
        return [{**self.chunks[i], "score": round(s, 4)} for i, s in hits]


class DirectoryEncoder(DenseEncoder):
    """A local embedding-model directory (BGE, bce-embedding … as HuixiangDou uses): mean pooling of its
    last hidden state, normalised; used as it is (the gpu profile's option), never trained here."""

    def __init__(self, path: str, max_tokens: int = 512):
        import torch
        from transformers import AutoModel

        from ..models.tokenizer import load_tokenizer

        body = AutoModel.from_pretrained(path, dtype=torch.float32, trust_remote_code=False)
        dim = body.config.hidden_size

        class Pool(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.body = body
                self.proj = torch.nn.Identity()
                self.proj.out_features = dim

            def forward(self, ids, mask):
                h = self.body(input_ids=ids, attention_mask=mask).last_hidden_state
                m = mask.unsqueeze(-1).to(h.dtype)
                return torch.nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp(min=1), dim=-1)

        self.path = path
        super().__init__(Pool(), load_tokenizer(path), max_tokens)

    def save(self, path: Path, meta: dict) -> None:
        path.mkdir(parents=True, exist_ok=True)
        (path / "encoder.json").write_text(json.dumps({**meta, "directory": str(Path(self.path).resolve()),
                                                       "max_tokens": self.max_tokens}, indent=1), encoding="utf-8")


def load_encoder(path: Path) -> DenseEncoder:
    meta = json.loads((path / "encoder.json").read_text(encoding="utf-8"))
    if meta.get("directory"):
        return DirectoryEncoder(meta["directory"], meta["max_tokens"])
    return DenseEncoder.load(path)


def relative_fusion(sparse: tuple[np.ndarray, np.ndarray], dense: tuple[np.ndarray, np.ndarray], alpha: float,
                    k: int) -> list[tuple[int, float]]:
    """Relative-score fusion: each list's scores min-max normalised over its own candidates, then
    ``alpha · sparse + (1 − alpha) · dense`` (0 for a list that did not return the chunk)."""
    def norm(idx, sc):
        if not len(idx):
            return {}
        lo, hi = float(np.min(sc)), float(np.max(sc))
        return {int(i): (float(s) - lo) / (hi - lo) if hi > lo else 1.0 for i, s in zip(idx, sc)}

    s, d = norm(*sparse), norm(*dense)
    fused = {i: alpha * s.get(i, 0.0) + (1 - alpha) * d.get(i, 0.0) for i in set(s) | set(d)}
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]

"""The RAG stage's config: chunking, the dense encoder's training, fusion, questions, refusal and
reading, sized per profile."""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..profiles import as_profile


@dataclass
class RAGConfig:
    chunk_chars: int = 200  # at most this many characters of whole sentences per chunk
    # the dense encoder: the base model's embeddings and first `encoder_layers` layers, trained contrastively
    base: str = "model/base"
    encoder: str | None = None  # or a local embedding-model directory (gpu profile): used as it is, not trained
    # 0: the embeddings alone (quick: a transformer layer multiplied the encoder's training time and was no better;
    # the figures: README, the RAG lab)
    encoder_layers: int = 0
    encoder_dim: int = 128
    encoder_steps: int = 600
    encoder_batch: int = 64
    encoder_lr: float = 2e-3
    temperature: float = 0.05
    max_tokens: int = 128  # per chunk, for the encoder
    # fusion: relative-score fusion of BM25 and dense (Weaviate's relativeScoreFusion, LlamaIndex's
    # "relative_score"): alpha · minmax(BM25) + (1 − alpha) · minmax(cosine); alpha chosen on the calibration half
    alphas: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)
    depth: int = 50  # candidates from each retriever before fusion
    # questions: cloze questions on quantities of held-out news; unanswerable ones from news left out of the index
    n_questions: int = 120  # of each kind (answerable, unanswerable) at most
    withheld_docs: int = 50  # held-out news documents left out of the index
    per_doc: int = 2  # questions per document at most (each from a different chunk)
    left_chars: int = 8
    right_chars: int = 3
    # reading: the SFT model answers from the top `read_k` passages
    reader: str = "model/sft"
    # the top passage alone: three read worse (more distractors, a prompt beyond the quick model's 256-token context;
    # the figures: README, the RAG lab)
    read_k: int = 1
    n_read: int = 80  # held-out answerable questions answered with and without retrieval
    # the shipped course assistant (puyu_lab/course_model) reads the same questions beside the learner's reader
    # (None: when the package carries it)
    course_reader: bool | None = None
    max_new_tokens: int = 24
    seed: int = 0
    progress_bar: bool = True

    @classmethod
    def for_profile(cls, profile=None, **changes) -> "RAGConfig":
        """The profile's sizes (a name, a :class:`~puyu_lab.profiles.Profile` or ``None`` for the
        default), with ``changes`` on top."""
        p = as_profile(profile)
        if p.name == "quick":
            cfg = cls()
        elif p.name == "gpu":
            cfg = cls(encoder=getattr(p, "embedding_model", None), encoder_steps=1500, n_questions=300,
                      withheld_docs=120, n_read=150, read_k=3)
        else:
            cfg = cls(encoder_steps=1500, n_questions=300, withheld_docs=120, n_read=150)
        if "alphas" in changes:
            changes["alphas"] = tuple(changes["alphas"])
        return replace(cfg, **changes)

"""Answers grounded in retrieved passages, HuixiangDou-style: refuse below the relevance threshold,
otherwise answer from the passages and show where the answer came from.

The reader is the learner's SFT model. A model must *copy* from its context to answer from a
passage, and the quick profile's 5 M-parameter model cannot (its copying probe shows almost no gain:
see lab 08); fine-tuning it on reading-comprehension conversations built from the corpus did not
teach it either (it still missed almost every held-out question: the figures are in the README's RAG
lab section). So the grounded reader is *extractive*, as the first open-domain QA systems were (DrQA): the candidate answers are
the quantities in the retrieved passages, and the model chooses among them by its own likelihood of
the completed sentence after the passages — the way lm-eval scores a multiple-choice question. The
free-form replies (with and without the passages) are measured beside it, so the lab shows what
retrieval gives and what the model itself still lacks.
"""
from __future__ import annotations

from .questions import quantities

SYSTEM = "根据下面的资料回答问题。\n资料：\n{passages}"
REFUSAL = "资料中没有相关内容。"


def passages_block(passages: list[dict]) -> str:
    return "\n".join(f"[{i + 1}] {p['text']}" for i, p in enumerate(passages))


def messages(question: dict, passages: list[dict] | None) -> list[dict]:
    msgs = [{"role": "system", "content": SYSTEM.format(passages=passages_block(passages))}] if passages else []
    return msgs + [{"role": "user", "content": question["question"]}]


def candidates(passages: list[dict]) -> list[dict]:
    """Every distinct quantity in the passages, with the passage and span where it first occurs."""
    seen, out = set(), []
    for k, p in enumerate(passages):
        for m in quantities(p["text"]):
            if m.group(0) not in seen:
                seen.add(m.group(0))
                out.append({"text": m.group(0), "passage": k, "start": m.start(), "end": m.end()})
    return out


def extractive(model, question: dict, passages: list[dict]) -> dict:
    """The candidate the model finds most likely in the blank, after the passages and the question."""
    cands = candidates(passages)
    if not cands:
        return {"answer": "", "reply": REFUSAL, "candidates": 0, "source": None}
    ctx = model.render(messages(question, passages)) + question["left"]
    scores = model.loglikelihood([(ctx, c["text"] + question["right"]) for c in cands])
    best = max(range(len(cands)), key=lambda i: scores[i][0])
    c = cands[best]
    return {"answer": c["text"], "reply": question["left"] + c["text"] + question["right"], "candidates": len(cands),
            "source": {"passage": c["passage"], "start": c["start"], "end": c["end"]},
            "logprob": round(float(scores[best][0]), 3)}


def free_all(model, asks: list[tuple[dict, list[dict] | None]], max_new_tokens: int = 24, stop_flag=None) -> list[dict]:
    """The model's own reply (greedy) to each ``(question, passages or None)`` — with or without the passages in
    its prompt — decoded together (``Model.generate_batch``)."""
    gens = model.generate_batch([messages(q, ps) for q, ps in asks], max_new_tokens=max_new_tokens,
                                stop_flag=stop_flag)
    return [{"reply": g.text.strip()} for g in gens]


def correct(answer: str, reply: str) -> bool:
    """The answer span is contained in the reply (the SQuAD-style "contains" measure)."""
    return bool(answer) and answer in reply

"""Reading-comprehension conversations for the course assistant's SFT: answer a cloze from a passage.

The RAG lab's grounded reader gets the top retrieved passage(s) in its system prompt and a cloze on a
quantity ("填空：<left>____<right>"); the answer is in the passage, so a reader that can copy from its
context completes the sentence with it. These conversations teach that form on the same rule
(:func:`puyu_lab.rag.questions.cloze`, the lab's own prompt :func:`puyu_lab.rag.reader.messages`), built
from **reviews only**: the lab asks about news, so no question it asks, and no news passage, is ever
trained on — what the assistant shows there is reading, not recall.
"""
from __future__ import annotations

import random


def reading_conversations(docs: list[dict], n: int, *, seed: int = 0, sources=("reviews-zh",),
                          distractor_share: float = 0.3, chunk_chars: int = 200) -> list[dict]:
    """``n`` conversations ``{"messages": [...]}`` (OpenAI format): the gold passage, with a second, unrelated
    passage before or after it in ``distractor_share`` of them, a cloze, and the completed sentence."""
    from ..rag.chunking import chunk_docs
    from ..rag.questions import cloze
    from ..rag.reader import messages

    rng = random.Random(seed)
    chunks = [c for c in chunk_docs([d for d in docs if d.get("source") in sources], chunk_chars)]
    if not chunks:
        raise ValueError(f"no documents from {', '.join(sources)} to build reading conversations from")
    order = list(range(len(chunks)))
    rng.shuffle(order)
    out = []
    for i in order:
        q = cloze(chunks[i], rng, left_chars=8, right_chars=3)
        if q is None:
            continue
        passages = [chunks[i]]
        if rng.random() < distractor_share:
            other = chunks[rng.randrange(len(chunks))]
            if other["doc"] != chunks[i]["doc"]:
                passages.insert(rng.randrange(2), other)
        msgs = messages(q, passages) + [{"role": "assistant", "content": q["left"] + q["answer"] + q["right"]}]
        out.append({"messages": msgs})
        if len(out) == n:
            break
    return out

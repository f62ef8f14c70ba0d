"""Reading-comprehension conversations for the course assistant's SFT: answer a cloze from a passage.

The RAG lab's grounded reader gets the top retrieved passage(s) in its system prompt and a cloze on a
quantity ("填空：<left>____<right>"); the answer is in the passage, so a reader that can copy from its
context completes the sentence with it. These conversations teach that form on the same rule
(:func:`puyu_lab.rag.questions.cloze`, the lab's own prompt :func:`puyu_lab.rag.reader.messages`), from
the course corpus's **train split** only — news and reviews. The lab asks about news of the *held-out*
split, and the split is by a stable hash of each document's id (:func:`puyu_lab.data.pipeline.is_heldout`,
the same 5 % in every profile), so no document the lab asks about, and no question it asks, is ever
trained on: what the assistant shows there is reading, not recall.

Why news too: built from reviews alone, 85 % of the answers were ASCII digits ("等了15分钟"), while the
news the lab reads writes full-width digits and Chinese numerals ("１９９７年", "十五大"). The first course
assistant copied the sentence around the blank and then wrote a near miss in the blank ("留下６００元钱"
for ５００元; "２６年" for ２５年) — the form was learnt, the copying of that kind of number was not.
"""
from __future__ import annotations

import random


def reading_conversations(docs: list[dict], n: int, *, seed: int = 0,
                          mix: tuple[tuple[str, float], ...] = (("reviews-zh", 1.0),),
                          distractor_share: float = 0.3, chunk_chars: int = 200) -> list[dict]:
    """``n`` conversations ``{"messages": [...], "source": ...}`` (OpenAI format), each source's share of them
    given by ``mix``: the gold passage, with a second, unrelated passage of the same source before or after it in
    ``distractor_share`` of them, a cloze, and the completed sentence."""
    from ..rag.chunking import chunk_docs

    total = sum(w for _, w in mix)
    counts = [round(n * w / total) for _, w in mix]
    counts[-1] = n - sum(counts[:-1])
    rng = random.Random(seed)
    out = []
    for (source, _), k in zip(mix, counts):
        chunks = chunk_docs([d for d in docs if d.get("source") == source], chunk_chars)
        if not chunks:
            raise ValueError(f"no documents from {source} to build reading conversations from")
        got = _conversations(chunks, k, rng, distractor_share)
        if len(got) < k:
            raise ValueError(f"{source} gave {len(got)} reading conversations of the {k} asked for: lower "
                             "reading_examples or that source's share")
        out += [{**c, "source": source} for c in got]
    rng.shuffle(out)
    return out


def _conversations(chunks: list[dict], n: int, rng: random.Random, distractor_share: float) -> list[dict]:
    from ..rag.questions import cloze
    from ..rag.reader import messages

    order = list(range(len(chunks)))
    rng.shuffle(order)
    out = []
    for i in order:
        if len(out) == n:
            break
        q = cloze(chunks[i], rng, left_chars=8, right_chars=3)
        if q is None:
            continue
        passages = [chunks[i]]
        if rng.random() < distractor_share:
            other = chunks[rng.randrange(len(chunks))]
            if other["doc"] != chunks[i]["doc"]:
                passages.insert(rng.randrange(2), other)
        msgs = messages(q, passages) + [{"role": "assistant", "content": q["left"] + q["answer"] + q["right"]}]
        out.append({"messages": msgs, "doc": chunks[i]["doc"]})
    return out

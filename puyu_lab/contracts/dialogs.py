"""Real dialogs from ``chatterbot-corpus`` (it ships inside the installed package): the fine-tune
stage trains on some, the eval stage asks others. The over-fitting probes never appear in them."""
from __future__ import annotations

import random

from ..paths import package_dir

# unrelated prompts a fine-tuned assistant must not answer with its self-introduction
CONTROL_PROMPTS = ["今天天气怎么样？", "你最喜欢什么书?", "What is AI?", "判断这条评论的情感是正面还是负面：\n房间很干净，服务也好。"]
CHATTERBOT_SKIP = {"ai.yml", "botprofile.yml"}  # they give the bot another identity


def chatterbot_dialogs(languages=("chinese", "english"), limit: dict | int | None = None, seed: int = 0) -> list[dict]:
    """Real dialogs from ``chatterbot-corpus``: turns alternate user / assistant. ``limit``: at most
    this many (or a dict language → at most, with ``zh``/``en`` keys)."""
    import yaml

    root = package_dir("chatterbot_corpus") / "data"
    out = []
    for lang in languages:
        for f in sorted((root / lang).glob("*.yml")):
            if f.name in CHATTERBOT_SKIP:
                continue
            doc = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
            for conv in doc.get("conversations") or []:
                turns = [str(t).strip() for t in conv if isinstance(t, (str, int, float)) and str(t).strip()]
                if turns and turns[0] in CONTROL_PROMPTS:
                    continue  # the over-fitting probes stay unseen
                if len(turns) % 2:
                    turns = turns[:-1]
                if len(turns) < 2:
                    continue
                msgs = [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)]
                out.append({"kind": "dialog", "lang": "zh" if lang == "chinese" else "en", "source": f.name,
                            "messages": msgs})
    random.Random(seed).shuffle(out)
    if isinstance(limit, dict):
        keep, seen = [], {}
        for d in out:
            cap = limit.get(d["lang"])
            if cap is None or seen.get(d["lang"], 0) < cap:
                keep.append(d)
                seen[d["lang"]] = seen.get(d["lang"], 0) + 1
        return keep
    return out[:limit] if limit else out

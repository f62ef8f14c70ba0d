"""The pair mixture: ``pref/data`` built from ``sft/data`` and ``corpus/clean`` (identity, sentiment,
tool and no-tool pairs, plus a custom file), with training and held-out parts that share no prompt."""
from __future__ import annotations

import json
import re
from dataclasses import asdict

from ..artifacts import CORPUS, PREF_DATA, SFT_DATA, load_corpus, load_sft_data
from ..contracts.dialogs import chatterbot_dialogs
from ..errors import InputError
from ..workspace import Artifact, Workspace
from .config import PrefConfig
from .pairs import (
    heldout_notool_pairs,
    heldout_tool_pairs,
    identity_pairs,
    notool_pairs_from_conversations,
    load_custom_pairs,
    prompt_key,
    sentiment_pairs,
    split_custom,
    tool_pairs_from_conversations,
)

_CJK = re.compile(r"[\u4e00-\u9fff]")


def _lang(text: str) -> str:
    return "zh" if _CJK.search(text) else "en"


def build_pairs(ws: Workspace, cfg: PrefConfig) -> tuple[dict, list]:
    """The pair mixture from ``sft/data`` and ``corpus/clean``: ``{"train": […], "heldout": […]}`` and
    the custom file's bad lines."""
    s = cfg.pairs
    train_convs = load_sft_data(ws, "train")
    selfs = [c["messages"] for c in train_convs if c.get("kind") == "self"]
    answers: dict[str, str] = {}
    questions: dict[str, str] = {}
    for m in selfs:
        q, a = m[0]["content"], m[1]["content"]
        answers.setdefault(_lang(q), a)
        questions.setdefault(q, _lang(q))
    if set(answers) != {"zh", "en"}:
        raise InputError(f"{SFT_DATA} has no self-cognition conversations in both Chinese and English: rebuild it "
                         "in the fine-tune lab (03_finetune.ipynb) with the built-in mixture",
                         zh=f"{SFT_DATA} 中没有同时覆盖中文和英文的自我认知对话：请在微调实验（03_finetune.ipynb）中"
                            "用内置的数据混合重新生成")
    held_self = load_sft_data(ws, "selfcog_heldout")
    train = identity_pairs([(lang, q) for q, lang in questions.items()], answers, s.identity_per_prompt, s.seed)
    heldout = identity_pairs([(h.get("lang") or _lang(h["prompt"]), h["prompt"]) for h in held_self], answers,
                             1, s.seed + 1)
    train += sentiment_pairs(load_corpus(ws, "train").to_list(), s.sentiment, s.seed)
    heldout += sentiment_pairs(load_corpus(ws, "heldout").to_list(), s.heldout_sentiment, s.seed + 1)
    tool_convs = [c for c in train_convs if c.get("kind") in ("tool", "date")]
    train += tool_pairs_from_conversations(tool_convs, s.tool, s.seed)
    heldout += heldout_tool_pairs(load_sft_data(ws, "arithmetic_heldout"), load_sft_data(ws, "date_heldout"),
                                  s.heldout_tool, s.seed)
    notool_convs = [c for c in train_convs if c.get("kind") == "notool"]
    train += notool_pairs_from_conversations(notool_convs, s.notool, s.seed)
    # held out: the self-cognition paraphrases and the chit-chat openings sft/data kept apart, with
    # the answers the chain knows for them (its own introduction; the dialog's real reply)
    replies = {d["messages"][0]["content"]: d["messages"][1]["content"] for d in chatterbot_dialogs()}
    qa = []
    for h in load_sft_data(ws, "notool_heldout"):
        if h.get("kind") == "self":
            qa.append((h["prompt"], answers[_lang(h["prompt"])]))
        elif h.get("kind") == "dialog" and h["prompt"] in replies:
            qa.append((h["prompt"], replies[h["prompt"]]))
    heldout += heldout_notool_pairs(qa, s.seed + 2)
    bad: list = []
    if cfg.custom_pairs:
        custom, bad = load_custom_pairs(cfg.custom_pairs)
        ctrain, cheld = split_custom(custom, s.custom_heldout_fraction, s.seed)
        train += ctrain
        heldout += cheld
    seen = {prompt_key(p) for p in train}
    leaked = [p for p in heldout if prompt_key(p) in seen]
    heldout = [p for p in heldout if prompt_key(p) not in seen]  # a prompt trained on is never held out
    import random

    random.Random(s.seed).shuffle(train)
    return {"train": train, "heldout": heldout, "dropped_heldout": len(leaked)}, bad


def prepare_pairs(ws: Workspace, cfg: PrefConfig | None = None) -> Artifact:
    """Build the pair mixture → ``pref/data`` (``train.jsonl``, ``heldout.jsonl``, per-source counts)."""
    ws = ws.for_stage("preference")  # reads only what stages.py declares for the stage
    cfg = cfg or PrefConfig.for_profile()
    mix, bad = build_pairs(ws, cfg)
    parents = [ws.get(SFT_DATA), ws.get(CORPUS)]
    counts = {}
    for part in ("train", "heldout"):
        for p in mix[part]:
            counts[f"{part}_{p['source']}"] = counts.get(f"{part}_{p['source']}", 0) + 1
    with ws.write(PREF_DATA, kind="dataset", stage="preference", parents=parents, params=pair_params(cfg)) as w:
        for part in ("train", "heldout"):
            with open(w.path / f"{part}.jsonl", "w", encoding="utf-8") as f:
                for p in mix[part]:
                    f.write(json.dumps(p, ensure_ascii=False) + "\n")
        if bad:
            (w.path / "custom_errors.txt").write_text(
                "".join(f"{cfg.custom_pairs}:{b.line}: {b.reason}\n" for b in bad), encoding="utf-8")
        w.metrics.update({"train": len(mix["train"]), "heldout": len(mix["heldout"]), **dict(sorted(counts.items())),
                          "custom_rejected": len(bad), "heldout_dropped_shared_prompt": mix["dropped_heldout"]})
    return ws.get(PREF_DATA)


def pair_params(cfg: PrefConfig) -> dict:
    """What ``pref/data`` is built from besides its parents: the mixture's sizes and the custom file
    (its path and a hash of its bytes, so an edited file is read again)."""
    digest = None
    if cfg.custom_pairs:
        import hashlib
        from pathlib import Path

        f = Path(cfg.custom_pairs)
        digest = hashlib.sha256(f.read_bytes()).hexdigest() if f.is_file() else None
    return {"pairs": asdict(cfg.pairs), "custom_pairs": cfg.custom_pairs, "custom_sha256": digest}


def pairs_current(ws: Workspace, cfg: PrefConfig) -> Artifact | None:
    """``pref/data`` when it was built from ``cfg``'s mixture and today's ``sft/data`` and ``corpus/clean``;
    ``None`` when it must be (re)built."""
    if not ws.exists(PREF_DATA):
        return None
    art = ws.get(PREF_DATA)
    if ws.is_stale(art) or any(art.params.get(k) != v for k, v in pair_params(cfg).items()):
        return None
    return art

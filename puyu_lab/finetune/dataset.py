"""The ``sft/data`` artifact and what training reads from it: the encoded conversations (loss on
assistant tokens only), a leak-free eval split (whole conversations, by content), the collator."""
from __future__ import annotations

import json
import random
from dataclasses import asdict

from ..artifacts import SFT_DATA
from ..errors import InputError
from ..models.template import IGNORE, encode_chat
from ..workspace import Artifact, Workspace
from .config import SFTConfig
from .data import build_mixture, load_custom


def prepare_data(ws: Workspace, cfg: SFTConfig | None = None, *, corpus: str = "corpus/clean") -> Artifact:
    """Build the SFT mixture from the learner's settings and ``corpus/clean`` → ``sft/data``."""
    from ..artifacts import load_corpus

    ws = ws.for_stage("finetune")  # reads only what stages.py declares for the stage
    cfg = cfg or SFTConfig()
    src = ws.get(corpus)
    reviews = [r for r in load_corpus(ws, "train", corpus).to_list() if r.get("label")]
    custom, bad = ([], [])
    if cfg.custom_data:
        custom, bad = load_custom(cfg.custom_data)
    mix = build_mixture(cfg.data, reviews, custom)
    kinds: dict[str, int] = {}
    for ex in mix["train"]:
        kinds[ex["kind"]] = kinds.get(ex["kind"], 0) + 1
    with ws.write(SFT_DATA, kind="dataset", stage="finetune", parents=[src],
                  params={"data": asdict(cfg.data), "custom_data": cfg.custom_data}) as w:
        for name, rows in mix.items():
            with open(w.path / f"{name}.jsonl", "w", encoding="utf-8") as f:
                for r in rows:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
        if bad:
            (w.path / "custom_errors.txt").write_text(
                "".join(f"{cfg.custom_data}:{b.line}: {b.reason}\n" for b in bad), encoding="utf-8")
        w.metrics.update({"train": len(mix["train"]), **{f"train_{k}": v for k, v in sorted(kinds.items())},
                          "selfcog_heldout": len(mix["selfcog_heldout"]),
                          "arithmetic_heldout": len(mix["arithmetic_heldout"]),
                          "date_heldout": len(mix["date_heldout"]), "notool_heldout": len(mix["notool_heldout"]),
                          "custom_rejected": len(bad),
                          "assistant_name": cfg.data.assistant_name})
    return ws.get(SFT_DATA)


class Collator:
    """Pad a batch to its longest sequence (rounded up to a multiple of ``multiple`` when given: see
    :attr:`puyu_lab.numerics.NumericPath.pad_multiple`); padding is never trained."""

    def __init__(self, pad_id: int, multiple: int | None = None):
        self.pad_id = pad_id
        self.multiple = multiple

    def __call__(self, batch):
        import torch

        n = max(len(b["input_ids"]) for b in batch)
        if self.multiple:
            n = -(-n // self.multiple) * self.multiple
        ids = torch.full((len(batch), n), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), n), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(batch), n), dtype=torch.long)
        for i, b in enumerate(batch):
            k = len(b["input_ids"])
            ids[i, :k] = torch.tensor(b["input_ids"])
            labels[i, :k] = torch.tensor(b["labels"])
            mask[i, :k] = 1
        # the model shifts labels itself: labels[t] is predicted from ids[:t]
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def conversation_key(messages: list[dict]) -> str:
    """A conversation's normalised text (roles, names, contents with whitespace collapsed and case
    folded): two conversations with the same key are the same example."""
    return json.dumps([("environment" if m.get("role") == "tool" else m.get("role"), m.get("name") or "",
                        " ".join(str(m.get("content", "")).split()).casefold()) for m in messages],
                      ensure_ascii=False)


def encode_all(tok, convs: list[dict], max_length: int, keys_out: list | None = None) -> tuple[list[dict], dict]:
    """Encode conversations; one longer than ``max_length`` loses whole turns from its end (so every
    trained assistant turn still ends in ``<|im_end|>``), never half a turn. ``keys_out`` (a list)
    receives each kept row's :func:`conversation_key`."""
    rows, truncated, untrained = [], 0, 0
    for c in convs:
        msgs = list(c["messages"])
        e = encode_chat(tok, msgs, max_length)
        if e.truncated:
            truncated += 1
            while e.truncated and len(msgs) > 2:
                msgs = msgs[:-1]
                while msgs and msgs[-1]["role"] != "assistant":
                    msgs = msgs[:-1]
                e = encode_chat(tok, msgs, max_length) if msgs else e
        if e.truncated or not any(x != IGNORE for x in e.labels):
            untrained += 1
            continue
        rows.append({"input_ids": e.input_ids, "labels": e.labels})
        if keys_out is not None:
            keys_out.append(conversation_key(c["messages"]))
    return rows, {"conversations": len(convs), "truncated": truncated, "dropped_untrained": untrained}


def split_eval(rows: list[dict], keys: list[str], eval_fraction: float, seed: int) -> tuple[list, list, dict]:
    """Held-out rows by *unique conversation*: repeated examples (self-cognition is repeated
    ``data.self_repeat`` times) land on one side only, so the held-out loss never measures a
    conversation the model trained on. The eval side holds one copy of each of its conversations;
    every copy of them leaves the training side. At least one conversation is always left to train on."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    unique = len(set(keys))
    if unique < 2:
        raise InputError(f"only {unique} distinct SFT conversation(s) left after encoding ({len(rows)} rows): "
                         "fine-tuning needs at least 2 — one to train on and one held out for the loss; add data "
                         "(custom_data, or the built-in mixture's settings in cfg.data)",
                         zh=f"编码后只剩 {unique} 段不同的 SFT 对话（共 {len(rows)} 行）：微调至少需要 2 段——"
                            "一段用来训练，一段留出来算损失；请补充数据（custom_data，或 cfg.data 中内置数据混合的设置）")
    n_eval = max(8, int(unique * eval_fraction))
    note = None
    if n_eval > unique - 1:
        n_eval = unique - 1
        note = (f"only {unique} distinct conversations: {n_eval} held out for the loss, 1 left to train on — "
                "add data for a meaningful held-out loss")
    eval_keys: set[str] = set()
    eval_rows = []
    for i in order:
        if len(eval_keys) == n_eval:
            break
        if keys[i] not in eval_keys:
            eval_keys.add(keys[i])
            eval_rows.append(rows[i])
    train_rows = [rows[i] for i in order if keys[i] not in eval_keys]
    info = {"eval_conversations": len(eval_rows), "train_unique_conversations": unique - len(eval_rows),
            "eval_copies_dropped": sum(k in eval_keys for k in keys) - len(eval_rows)}
    if note:
        info["note"] = note
    return train_rows, eval_rows, info

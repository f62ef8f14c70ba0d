"""Generation and scoring in the model layer, side by side in one run, on a quick-preset model pretrained here:

- greedy decoding of 40 chat prompts (the agent and eval labs' shape): one prompt at a time through the shared
  decode loop, ``generate_batch`` (all rows in lock-step), and transformers' own batched ``model.generate``
  (left-padded, greedy) as the field's peer — tokens/s and whether the tokens agree;
- GGUF multiple-choice scoring: a fresh context per request vs the scoring context that keeps a shared prefix.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path


def main() -> str:
    import torch

    from puyu_lab.data.pipeline import load_corpus
    from puyu_lab.deploy.converter import convert
    from puyu_lab.models import GGUFModel, HFModel
    from puyu_lab.models.template import install_template
    from puyu_lab.models.tokenizer import load_tokenizer, save_tokenizer
    from puyu_lab.workspace import Workspace
    from common import tiny_base

    lines = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        ws = Workspace(d / "ws")
        cfg = tiny_base(ws, 60)
        src = ws.get("model/base").path
        texts = [r["text"] for r in load_corpus(ws, "train").to_list()[:200]]
        prompts = [t[:12 + (i * 7) % 40] for i, t in enumerate(texts[:40])]
        msgs = [[{"role": "user", "content": p}] for p in prompts]
        m = HFModel.load(src)
        new = 32

        def timed(fn):
            t = time.perf_counter()
            out = fn()
            return out, time.perf_counter() - t

        one, s_one = timed(lambda: [m.generate(x, max_new_tokens=new, ignore_eos=True) for x in msgs])
        rows = [("decode loop, one prompt at a time", s_one, 1.0, "—")]
        for bs in (8, 40):
            got, s = timed(lambda: m.generate_batch(msgs, max_new_tokens=new, ignore_eos=True, batch_size=bs))
            same = sum(a.tokens == b.tokens for a, b in zip(one, got))
            rows.append((f"generate_batch, batch {bs}", s, s_one / s, f"{same}/{len(msgs)}"))
        tok = m.tok
        tok.padding_side = "left"
        ids = [m.prompt_ids(x)[1] for x in msgs]
        n = max(map(len, ids))
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        inp = torch.tensor([[pad] * (n - len(i)) + i for i in ids])
        mask = torch.tensor([[0] * (n - len(i)) + [1] * len(i) for i in ids])
        with torch.no_grad():
            ref, s_hf = timed(lambda: m.model.generate(input_ids=inp, attention_mask=mask, max_new_tokens=new,
                                                       min_new_tokens=new, do_sample=False, pad_token_id=pad))
        same = sum(ref[i, n:].tolist() == one[i].tokens for i in range(len(msgs)))
        rows.append(("transformers model.generate, batch 40", s_hf, s_one / s_hf, f"{same}/{len(msgs)}"))
        total = len(msgs) * new
        lines.append(f"greedy decoding: {len(msgs)} chat prompts × {new} tokens, quick preset "
                     f"({sum(p.numel() for p in m.model.parameters()) / 1e6:.1f} M parameters), "
                     f"torch {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads")
        lines.append(f"{'':40s} {'tokens/s':>9s} {'× one':>7s} {'same tokens as one at a time':>30s}")
        for name, s, x, same in rows:
            lines.append(f"{name:40s} {total / s:9.0f} {x:7.1f} {same:>30s}")

        # GGUF multiple-choice scoring: a shared context per question
        chat = d / "chat"
        import shutil
        shutil.copytree(src, chat)
        t = load_tokenizer(chat)
        install_template(t)
        save_tokenizer(t, chat)
        gguf = convert(chat, d / "m.gguf")
        reviews = [r for r in load_corpus(ws, "train").to_list() if r.get("label")][:60]
        reqs = [(f"评论：{r['text'][:120]}\n情感：", c) for r in reviews for c in ("正面", "负面", "中性", "不知道")]
        g = GGUFModel(gguf, max_length=255)
        shared, s_shared = timed(lambda: g.loglikelihood(reqs))
        fresh = []
        s_fresh = 0.0
        for r in reqs:
            g._scored = []  # the next request starts from an empty cache
            out, s = timed(lambda: g._score_batch([g.encode_pair(*r)]))
            fresh += out
            s_fresh += s
        g.close()
        diff = max(abs(a[0] - b[0]) for a, b in zip(shared, fresh))
        lines.append("")
        lines.append(f"GGUF (F32) multiple-choice scoring: {len(reviews)} questions × 4 choices")
        lines.append(f"{'fresh context per request':40s} {len(reqs) / s_fresh:9.0f} requests/s")
        lines.append(f"{'shared prefix kept (scoring order)':40s} {len(reqs) / s_shared:9.0f} requests/s "
                     f"({s_fresh / s_shared:.1f}×; max |Δ log-likelihood| {diff:.1e})")
    return "\n".join(lines)

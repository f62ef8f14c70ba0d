"""Chat-template inspector: a formatted conversation token by token, coloured by loss mask.

Green tokens are trained (the assistant's words and its closing ``<|im_end|>``), grey ones are
context. Under the tokens: the checks of :func:`puyu_lab.finetune.template.check_endings` — an
assistant turn that does not end in a trained ``<|im_end|>`` is the usual cause of endless
generations.
"""
from __future__ import annotations

import html

from ..finetune.template import encode_chat
from ..i18n import t
from .base import HTMLView, esc


def inspect_chat(tok, messages: list[dict], max_length: int | None = None) -> HTMLView:
    enc = encode_chat(tok, messages, max_length)
    special = set(tok.all_special_ids)
    spans = []
    for tid, lab in zip(enc.input_ids, enc.labels):
        piece = tok.convert_ids_to_tokens(tid)
        shown = html.escape(piece.replace("▁", " ")).replace("\n", "↵<br>")
        style = "background:#d5f5dd;" if lab != -100 else "background:#f1f3f4;color:#5f6368;"
        if tid in special or piece.startswith("<|"):
            style += "font-weight:700;"
        spans.append(f"<span title='id {tid}' style='{style}border-radius:3px;margin:1px;padding:0 1px'>{shown}</span>")
    n_trained = sum(x != -100 for x in enc.labels)
    checks = "".join(f"<li class='bad'>{esc(p)}</li>" for p in enc.problems) or \
        f"<li class='ok'>{esc(t('template_ok'))}</li>"
    body = (f"<h4>{esc(t('inspector'))}</h4>"
            f"<div class='dim'>{len(enc.input_ids)} tokens · {n_trained} {esc(t('trained'))} · "
            f"<span style='background:#d5f5dd'>&nbsp;{esc(t('trained'))}&nbsp;</span> "
            f"<span style='background:#f1f3f4'>&nbsp;{esc(t('context'))}&nbsp;</span></div>"
            f"<div style='font-family:monospace;line-height:1.9;max-width:900px'>{''.join(spans)}</div>"
            f"<ul>{checks}</ul>")
    text = f"{len(enc.input_ids)} tokens, {n_trained} trained; problems: {enc.problems or 'none'}"
    view = HTMLView(body, text)
    view.encoded = enc
    return view

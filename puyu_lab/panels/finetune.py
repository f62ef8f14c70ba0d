"""Chat-template inspector: a formatted conversation token by token, coloured by loss mask.

Green tokens are trained (the assistant's words and its closing ``<|im_end|>``), grey ones are
context. Under the tokens: the checks of :func:`puyu_lab.models.template.check_endings` — an
assistant turn that does not end in a trained ``<|im_end|>`` is the usual cause of endless
generations.
"""
from __future__ import annotations

from ..i18n import t
from ..models.template import encode_chat
from ..tokenspans import spans_html
from .base import HTMLView, esc


def inspect_chat(tok, messages: list[dict], max_length: int | None = None) -> HTMLView:
    enc = encode_chat(tok, messages, max_length)
    special = set(tok.all_special_ids)

    def style(i: int, tid: int) -> str:
        css = "background:#d5f5dd;" if enc.labels[i] != -100 else "background:#f1f3f4;color:#5f6368;"
        bold = tid in special or tok.convert_ids_to_tokens(tid).startswith("<|")
        return css + ("font-weight:700;" if bold else "") + "border-radius:3px;margin:1px;"

    tokens = spans_html(tok, enc.input_ids, style=style, title=lambda i, tid: f"id {tid}", pieces=True)
    n_trained = sum(x != -100 for x in enc.labels)
    checks = "".join(f"<li class='bad'>{esc(p)}</li>" for p in enc.problems) or \
        f"<li class='ok'>{esc(t('template_ok'))}</li>"
    body = (f"<h4>{esc(t('inspector'))}</h4>"
            f"<div class='dim'>{len(enc.input_ids)} tokens · {n_trained} {esc(t('trained'))} · "
            f"<span style='background:#d5f5dd'>&nbsp;{esc(t('trained'))}&nbsp;</span> "
            f"<span style='background:#f1f3f4'>&nbsp;{esc(t('context'))}&nbsp;</span></div>"
            f"{tokens}"
            f"<ul>{checks}</ul>")
    text = f"{len(enc.input_ids)} tokens, {n_trained} trained; problems: {enc.problems or 'none'}"
    view = HTMLView(body, text)
    view.encoded = enc
    return view

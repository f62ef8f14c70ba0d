"""One renderer for text shown token by token (the tokenizer view, the chat-template inspector, the
quantization KL heatmap): each token a ``<span>`` with its own background and a tooltip."""
from __future__ import annotations

import html
from typing import Callable, Sequence

CYCLE = ["#fde2e4", "#e2f0cb", "#cde7f0", "#fff1c1", "#e4d9f5", "#d7f2e3"]


def token_text(tok, tid: int, *, pieces: bool = False) -> str:
    """What a token shows: its decoded text (byte-fallback pieces as ``<0x..>``), or with ``pieces``
    its vocabulary entry with ``▁`` as a space."""
    piece = tok.convert_ids_to_tokens(int(tid))
    if pieces or piece.startswith("<0x"):
        return piece.replace("▁", " ")
    return tok.decode([int(tid)])


def spans_html(tok, ids: Sequence[int], *, style: Callable[[int, int], str] | None = None,
               title: Callable[[int, int], str] | None = None, pieces: bool = False,
               line_height: float = 1.9) -> str:
    """``ids`` as coloured spans. ``style(i, id)`` gives a token's CSS (default: a cycle of pastel
    backgrounds), ``title(i, id)`` its tooltip (default: id and vocabulary entry). Newlines show as ↵."""
    out = []
    for i, tid in enumerate(ids):
        tid = int(tid)
        shown = html.escape(token_text(tok, tid, pieces=pieces)).replace("\n", "↵<br>" if pieces else "↵")
        css = style(i, tid) if style else f"background:{CYCLE[i % len(CYCLE)]};border-right:1px solid #fff;"
        tip = title(i, tid) if title else f"{tid} {tok.convert_ids_to_tokens(tid)}"
        out.append(f"<span title='{html.escape(tip)}' style='{css}padding:1px 0'>{shown}</span>")
    return f"<div style='font-family:monospace;line-height:{line_height};max-width:900px'>{''.join(out)}</div>"

"""ChatPanel — streaming chat with one or more models side by side (base vs SFT, same prompt).

Each column is a :class:`puyu_lab.models.Conversation` with one model (:mod:`puyu_lab.models`): a
transformers model, and — from the deploy lab on — a llama.cpp GGUF or an OpenAI-compatible server.
Generation runs in a worker thread and streams into the columns at ≤ 5 Hz; Stop ends the generation
itself (the model's stop flag), not only the drawing.
"""
from __future__ import annotations

import html
from typing import Any

import ipywidgets as W

from ..events import StopFlag
from ..i18n import t
from ..models.conversation import Conversation
from .base import CSS, PALETTE, Throttle, error_html, esc, run_in_thread


class ChatPanel:
    def __init__(self, backends: dict[str, Any] | list, max_new_tokens: int = 64, temperature: float = 0.0,
                 system: str | None = None):
        if isinstance(backends, list):
            backends = {getattr(b, "name", f"model {i + 1}"): b for i, b in enumerate(backends)}
        self.backends = dict(backends)
        self.system = system
        self.conversations = {k: Conversation(b, system) for k, b in self.backends.items()}
        self.thread = None
        self.error: BaseException | None = None  # what the last send raised, kept (and shown)
        self.stop_flag = StopFlag()
        self._draw = Throttle(self._redraw)
        self.prompt = W.Textarea(placeholder=t("chat_placeholder"), layout=W.Layout(width="60%", height="56px"))
        self.send_btn = W.Button(description=t("send"), button_style="primary", icon="paper-plane")
        self.stop_btn = W.Button(description=t("stop"), button_style="danger", icon="stop", disabled=True)
        self.clear_btn = W.Button(description=t("clear"), icon="eraser")
        self.max_tokens = W.IntSlider(value=max_new_tokens, min=8, max=512, step=8, description=t("max_tokens"))
        self.temperature = W.FloatSlider(value=temperature, min=0.0, max=1.5, step=0.1, description=t("temperature"))
        self.send_btn.on_click(lambda _: self.send(self.prompt.value))
        self.stop_btn.on_click(lambda _: self.request_stop())
        self.clear_btn.on_click(lambda _: self.clear())
        self.columns = {k: W.HTML(layout=W.Layout(width=f"{100 // max(1, len(self.backends)) - 1}%"))
                        for k in self.backends}
        self.error_line = W.HTML()
        self.ui = W.VBox([
            W.HTML(CSS + f"<div class='puyu'><h4>{esc(t('chat_title'))}</h4></div>"),
            W.HBox(list(self.columns.values())),
            self.error_line,
            W.HBox([self.prompt, W.VBox([self.send_btn, self.stop_btn, self.clear_btn])]),
            W.HBox([self.max_tokens, self.temperature]),
        ])
        self._redraw()

    def _ipython_display_(self):
        from IPython.display import display

        display(self.ui)

    # ---- drawing ------------------------------------------------------------------------------
    def _redraw(self) -> None:
        for i, (name, col) in enumerate(self.columns.items()):
            colour = PALETTE[i % len(PALETTE)]
            conv = self.conversations[name]
            turns = []
            for m in conv.history:
                who = "🧑" if m["role"] == "user" else "🤖"
                turns.append(f"<div style='margin:3px 0'><b>{who}</b> {html.escape(m['content'])}</div>")
            if conv.partial is not None:
                turns.append(f"<div style='margin:3px 0'><b>🤖</b> {html.escape(conv.partial)}▌</div>")
            col.value = (f"<div class='puyu' style='border:1px solid #ddd;border-top:3px solid {colour};"
                         f"padding:6px;min-height:80px;white-space:pre-wrap'><b>{esc(name)}</b>{''.join(turns)}</div>")

    # ---- control ------------------------------------------------------------------------------
    @property
    def history(self) -> dict[str, list[dict]]:
        return {k: c.history for k, c in self.conversations.items()}

    def _run(self, prompt: str) -> dict[str, str]:
        answers = {}
        for name, conv in self.conversations.items():
            answers[name] = conv.ask(prompt, max_new_tokens=self.max_tokens.value,
                                     temperature=self.temperature.value, stop_flag=self.stop_flag,
                                     on_piece=lambda _: self._draw())
            self._draw()
            if self.stop_flag.is_set():
                break
        return answers

    def send(self, prompt: str, wait: bool = False):
        """Ask every model ``prompt`` (streams into the columns). With ``wait`` return the answers."""
        prompt = (prompt or "").strip()
        if not prompt or (self.thread is not None and self.thread.is_alive()):
            return None
        self.prompt.value = ""
        self.stop_flag.clear()
        self.error, self.error_line.value = None, ""
        self.send_btn.disabled, self.stop_btn.disabled = True, False
        box: dict[str, Any] = {}

        def done(result, error):
            box["result"], box["error"] = result, error
            self.error = error
            if error is not None:
                self.error_line.value = error_html(error)
            self.send_btn.disabled, self.stop_btn.disabled = False, True
            self._draw.flush()

        self.thread = run_in_thread(lambda: self._run(prompt), on_done=done, name="puyu-chat")
        if wait:
            self.thread.join()
            if box.get("error") is not None:
                raise box["error"]
            return box.get("result")
        return None

    def ask(self, prompt: str) -> dict[str, str]:
        """Send and wait: the answers by model (for scripts and self-checks)."""
        return self.send(prompt, wait=True)

    def request_stop(self) -> None:
        self.stop_flag.set()

    def clear(self) -> None:
        for c in self.conversations.values():
            c.clear()
        self._redraw()

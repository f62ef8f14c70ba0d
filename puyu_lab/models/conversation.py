"""A conversation with one model: its history and streaming replies (the chat panel draws it)."""
from __future__ import annotations

from typing import Callable

from .base import Model


class Conversation:
    def __init__(self, model: Model, system: str | None = None):
        self.model, self.system = model, system
        self.history: list[dict] = []
        self.partial: str | None = None  # the reply being generated, None between replies

    @property
    def messages(self) -> list[dict]:
        sys = [{"role": "system", "content": self.system}] if self.system else []
        return sys + self.history

    def ask(self, prompt: str, *, max_new_tokens: int = 64, temperature: float = 0.0, stop_flag=None,
            on_piece: Callable[[str], None] | None = None) -> str:
        """Add the user's turn, stream the reply into ``partial`` (and ``on_piece``), keep it.

        A set ``stop_flag`` ends the generation at the next token; what was generated is kept."""
        self.history.append({"role": "user", "content": prompt})
        self.partial = ""
        stream = self.model.generate(self.messages, max_new_tokens=max_new_tokens, temperature=temperature,
                                     stop_flag=stop_flag, stream=True)
        try:
            for piece in stream:
                self.partial += piece
                if on_piece:
                    on_piece(piece)
        finally:
            stream.close()
            answer, self.partial = self.partial.strip(), None
            self.history.append({"role": "assistant", "content": answer})
        return answer

    def clear(self) -> None:
        self.history, self.partial = [], None

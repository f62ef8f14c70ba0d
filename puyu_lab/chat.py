"""Chat with a model: one small interface, several backends.

``HFChat`` wraps a transformers causal LM and its tokenizer (the chat template decides the
prompt); ``reply`` returns the whole answer, ``stream`` yields it piece by piece. The deploy lab
adds llama.cpp and OpenAI-compatible backends with the same two methods.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator, Protocol

from .finetune.template import CHAT_TEMPLATE, IM_END, chat_ids


class ChatBackend(Protocol):
    name: str

    def reply(self, messages: list[dict], max_new_tokens: int = 64, temperature: float = 0.0) -> str: ...

    def stream(self, messages: list[dict], max_new_tokens: int = 64, temperature: float = 0.0) -> Iterator[str]: ...


def stop_ids(tok) -> list[int]:
    ids = [tok.eos_token_id]
    im_end = tok.convert_tokens_to_ids(IM_END)
    if im_end is not None and im_end != tok.unk_token_id:
        ids.append(im_end)
    return ids


class HFChat:
    def __init__(self, model, tok, name: str = "model"):
        if not tok.chat_template:
            tok.chat_template = CHAT_TEMPLATE
        self.model, self.tok, self.name = model, tok, name

    @classmethod
    def load(cls, ws, name_or_path: str) -> "HFChat":
        """A model artifact of the workspace (``model/sft``) or a model directory."""
        from transformers import AutoModelForCausalLM

        from .pretrain.tokenizer import load_tokenizer

        p = Path(name_or_path)
        path = p if p.is_dir() else ws.get(name_or_path).path
        model = AutoModelForCausalLM.from_pretrained(str(path))
        model.eval()
        return cls(model, load_tokenizer(path), name=str(name_or_path))

    def generate_kwargs(self, messages, max_new_tokens, temperature):
        """``model.generate`` arguments for a reply to ``messages`` (the chat template's prompt, stop ids)."""
        import torch

        ids = torch.tensor([chat_ids(self.tok, messages)], device=self.model.device)
        kw = dict(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                  eos_token_id=stop_ids(self.tok), pad_token_id=self.tok.eos_token_id)
        if temperature and temperature > 0:
            kw.update(do_sample=True, temperature=temperature, top_k=40)
        else:
            kw.update(do_sample=False)
        return kw

    def reply(self, messages: list[dict], max_new_tokens: int = 64, temperature: float = 0.0) -> str:
        import torch

        kw = self.generate_kwargs(messages, max_new_tokens, temperature)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                out = self.model.generate(**kw)
        finally:
            if was_training:
                self.model.train()
        return self.tok.decode(out[0, kw["input_ids"].shape[1]:], skip_special_tokens=True).strip()

    def stream(self, messages: list[dict], max_new_tokens: int = 64, temperature: float = 0.0) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(self.tok, skip_prompt=True, skip_special_tokens=True)
        kw = self.generate_kwargs(messages, max_new_tokens, temperature)

        def run():
            with torch.no_grad():
                self.model.generate(**kw, streamer=streamer)

        th = threading.Thread(target=run, daemon=True, name="puyu-chat")
        th.start()
        yield from streamer
        th.join()


class LlamaCppChat:
    """A GGUF file through llama.cpp; the chat template comes from the GGUF's metadata (the
    tokenizer's ``chat_template``, carried over by the converter)."""

    def __init__(self, path, name: str | None = None, n_ctx: int = 512):
        from .deploy.llama import load

        self.path = Path(path)
        self.name = name or self.path.stem
        self.llm = load(self.path, n_ctx=n_ctx)
        self.template = self.llm.metadata.get("tokenizer.chat_template")

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        import jinja2

        if not self.template:
            raise ValueError(f"{self.path} carries no chat template (a base model?): use complete()")
        tpl = jinja2.Environment(loader=jinja2.BaseLoader()).from_string(self.template)
        bos = self.llm.detokenize([self.llm.token_bos()], special=True).decode("utf-8")
        eos = self.llm.detokenize([self.llm.token_eos()], special=True).decode("utf-8")
        text = tpl.render(messages=messages, add_generation_prompt=True, bos_token=bos, eos_token=eos)
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def stop_tokens(self) -> set[int]:
        """End of sequence and ``<|im_end|>`` (when the vocabulary has it as one token)."""
        stops = {self.llm.token_eos()}
        end = self.llm.tokenize(IM_END.encode(), add_bos=False, special=True)
        if len(end) == 1:
            stops.add(end[0])
        return stops

    def _gen(self, ids: list[int], max_new_tokens: int, temperature: float) -> Iterator[str]:
        import numpy as np

        from .deploy.llama import last_logits

        stops = self.stop_tokens()
        self.llm.reset()
        self.llm.eval(ids)
        rng = np.random.default_rng(0)
        out: list[int] = []
        shown = ""
        for _ in range(max_new_tokens):
            logits = last_logits(self.llm)
            if temperature and temperature > 0:
                p = np.exp((logits - logits.max()) / temperature)
                nxt = int(rng.choice(len(p), p=p / p.sum()))
            else:
                nxt = int(np.argmax(logits))
            if nxt in stops:
                break
            out.append(nxt)
            text = self.llm.detokenize(out).decode("utf-8", errors="ignore")
            if len(text) > len(shown):
                yield text[len(shown):]
                shown = text
            self.llm.eval([nxt])

    def stream(self, messages: list[dict], max_new_tokens: int = 64, temperature: float = 0.0) -> Iterator[str]:
        yield from self._gen(self.prompt_ids(messages), max_new_tokens, temperature)

    def reply(self, messages: list[dict], max_new_tokens: int = 64, temperature: float = 0.0) -> str:
        return "".join(self.stream(messages, max_new_tokens, temperature)).strip()

    def complete(self, prompt: str, max_new_tokens: int = 32) -> str:
        """Greedy continuation of plain text (base and chat models alike)."""
        ids = self.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        return "".join(self._gen(ids, max_new_tokens, 0.0))

    def close(self) -> None:
        self.llm.close()

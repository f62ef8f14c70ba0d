"""The InternLM2 chat format, as a Jinja ``chat_template`` saved with the tokenizer.

    <s><|im_start|>system
    You are …<|im_end|>
    <|im_start|>user
    Who are you?<|im_end|>
    <|im_start|>assistant
    I am …<|im_end|>

A message may carry a ``name`` (InternLM2 writes the tool list as ``system name=<|plugin|>`` and a
tool's result as ``environment name=<|plugin|>``). A tool call is part of the assistant's text:
``<|action_start|><|plugin|>\\n{"name": …, "parameters": {…}}<|action_end|>\\n``. The template uses
no filters (no ``tojson``), so transformers and llama.cpp render it identically.

Training masks everything but the assistant's words and its closing ``<|im_end|>`` — the token
that teaches the model to stop. :func:`encode_chat` finds those tokens from character offsets of
the rendered text, so the ids are exactly what ``apply_chat_template`` gives.
"""
from __future__ import annotations

from dataclasses import dataclass, field

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
ACTION_START, ACTION_END, PLUGIN, INTERPRETER = "<|action_start|>", "<|action_end|>", "<|plugin|>", "<|interpreter|>"
ROLES = ("system", "user", "assistant", "environment")
IGNORE = -100

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] }}"
    "{% if message['name'] is defined and message['name'] %}{{ ' name=' + message['name'] }}{% endif %}"
    "{{ '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def tool_call(name: str, parameters: dict) -> str:
    """The assistant text of one InternLM2 plugin call."""
    import json

    return f"{ACTION_START}{PLUGIN}\n" + json.dumps({"name": name, "parameters": parameters}, ensure_ascii=False) + \
        f"{ACTION_END}\n"


def install_template(tok) -> None:
    """Give a tokenizer the chat template (saved with it by ``save_pretrained``)."""
    tok.chat_template = CHAT_TEMPLATE


def render(tok, messages: list[dict], add_generation_prompt: bool = False) -> str:
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt,
                                   chat_template=tok.chat_template or CHAT_TEMPLATE)


def chat_ids(tok, messages: list[dict], add_generation_prompt: bool = True) -> list[int]:
    """The prompt ids for generation (the template already writes ``<s>``)."""
    return tok(render(tok, messages, add_generation_prompt), add_special_tokens=False)["input_ids"]


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]  # IGNORE where the token is not trained
    offsets: list[tuple[int, int]]
    text: str
    assistant_spans: list[tuple[int, int]]  # character spans of trained text
    truncated: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def trained(self) -> list[bool]:
        return [lab != IGNORE for lab in self.labels]


def assistant_spans(tok, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the character spans of each assistant turn's content + ``<|im_end|>``.

    Rendering grows message by message (the template is a plain concatenation), so the span of
    message *i* is the difference between the renderings of ``messages[:i]`` and ``messages[:i+1]``."""
    text = render(tok, messages)
    spans = []
    prev = 0
    for i, m in enumerate(messages):
        upto = render(tok, messages[: i + 1])
        if not text.startswith(upto):
            raise ValueError("the chat template does not render messages as a prefix-growing sequence")
        if m["role"] == "assistant":
            header = upto.index("\n", upto.index(IM_START, prev)) + 1  # after '<|im_start|>assistant\n'
            k = upto.rfind(IM_END, header)  # a template that forgets it: the whole turn, and the check says so
            end = k + len(IM_END) if k >= 0 else len(upto)
            spans.append((header, end))
        prev = len(upto)
    return text, spans


def encode_chat(tok, messages: list[dict], max_length: int | None = None) -> Encoded:
    """Token ids and labels (loss on assistant tokens only) for one conversation."""
    text, spans = assistant_spans(tok, messages)
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
    labels = []
    for tid, (s, e) in zip(ids, offsets):
        inside = any(a <= s and e <= b and e > s for a, b in spans)
        labels.append(tid if inside else IGNORE)
    truncated = max_length is not None and len(ids) > max_length
    if truncated:
        ids, labels, offsets = ids[:max_length], labels[:max_length], offsets[:max_length]
    out = Encoded(ids, labels, offsets, text, spans, truncated)
    out.problems = check_endings(tok, out)
    return out


def check_endings(tok, enc: Encoded) -> list[str]:
    """Every trained assistant turn must end in ``<|im_end|>`` (trained): without it the model never
    learns to stop and generates endlessly — the classic SFT bug."""
    end_id = tok.convert_tokens_to_ids(IM_END)
    problems = []
    for k, (a, b) in enumerate(enc.assistant_spans):
        idx = [i for i, (s, e) in enumerate(enc.offsets) if a <= s and e <= b and e > s]
        if not idx:
            problems.append(f"assistant turn {k + 1} was cut off by max_length: it is not trained at all")
            continue
        last = idx[-1]
        if enc.input_ids[last] != end_id:
            why = "cut off by max_length" if enc.truncated else "the template does not close it"
            problems.append(f"assistant turn {k + 1} does not end in {IM_END} ({why}): the model will not learn to stop")
        elif enc.labels[last] != end_id:
            problems.append(f"assistant turn {k + 1}: its {IM_END} is not trained, so the model will not learn to stop")
    if not any(lab != IGNORE for lab in enc.labels):
        problems.append("no token is trained in this conversation (no assistant turn survives)")
    return problems

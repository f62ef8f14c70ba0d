"""Constrained tool calls: a grammar built from the registry's JSON schemas, for the InternLM2 protocol.

    agent = Agent(model, registry, constrained=True)       # or by hand:
    c = ToolCallConstraint(model, registry)
    model.generate(messages, keep_special=True, constraint=c)

The reply stays free text — the model may answer without calling — until it chooses
``<|action_start|>``. From there the constraint allows exactly one call:

    <|action_start|> <|plugin|> "\\n" {"name": <a tool name>, "parameters": <valid for that tool>} <|action_end|>

then only an end token (``<|im_end|>`` / ``</s>``). Outside a call the tokens that only make sense
inside one (``<|plugin|>``, ``<|interpreter|>``, ``<|action_end|>``) and ``<|im_start|>`` are
masked, so a free-form reply never becomes a half call. A prompt that already ends in
``<|action_start|>`` (a forced call) starts in the call.

What the library does: **lm-format-enforcer** (``lmformatenforcer``, MIT) turns a JSON schema into a
character-level parser (``JsonSchemaParser``: objects with their properties, required keys in order,
``const`` / ``enum`` strings, numbers, arrays, ``anyOf``, string lengths) and, with a prefix tree of
the vocabulary (``TokenEnforcerTokenizerData``), finds every token whose characters the parser can
accept at each step (``TokenEnforcer.get_allowed_tokens``). Its "end" token is set to
``<|action_end|>``: the call can only close where the JSON is complete.

What is written here, and why:

* the call schema — ``anyOf`` one object per tool, ``{"name": {"const": tool}, "parameters": the
  tool's schema}``, fields in the order the fine-tune data writes them. Strings without a
  ``maxLength`` get one (``max_string``), so an untrained model that never closes its string is
  still made to finish the call inside its token budget (lm-format-enforcer bounds arrays and
  whitespace by itself, not strings);
* the protocol around the JSON: the special tokens are single tokens of the chat format, not text a
  JSON parser sees, so a small state machine (free → after ``<|action_start|>`` → JSON → done)
  decides when the JSON parser runs;
* the token table, through the backend's own detokenizer
  (:func:`puyu_lab.models.constraints.token_texts`), so one constraint class serves transformers and
  llama.cpp through the shared decode loop. lm-format-enforcer's own integrations are per runtime
  (a transformers ``prefix_allowed_tokens_fn``, a llama-cpp-python ``LogitsProcessor``) and each
  wraps that runtime's generate; this project has one decode loop of its own, so it uses the
  library's core (parser + token enforcer) directly.

llama.cpp's own JSON-schema → GBNF grammar (``LlamaGrammar.from_json_schema``) was the other
candidate: its sampler needs a llama.cpp vocabulary, so it would constrain the GGUF backend only,
not transformers, and not through the shared loop.
"""
from __future__ import annotations

import copy
from typing import Sequence

import numpy as np

from ..models.constraints import Constraint, token_texts
from ..models.template import ACTION_END, ACTION_START, IM_START, INTERPRETER, PLUGIN
from .tools import ToolRegistry

MAX_STRING = 32  # characters of a string parameter whose schema sets no maxLength
MAX_WHITESPACE = 1  # consecutive whitespace characters inside the call's JSON

FREE, PLUGIN_NEXT, JSON, DONE = "free", "plugin", "json", "done"


def call_schema(tools: ToolRegistry, max_string: int | None = MAX_STRING) -> dict:
    """The JSON schema of one InternLM2 plugin call's body to any tool of ``tools``."""
    options = []
    for t in tools:
        params = copy.deepcopy(t.parameters) or {"type": "object", "properties": {}}
        params.setdefault("properties", {})
        if max_string:
            for p in params["properties"].values():
                if p.get("type") == "string" and "maxLength" not in p and "enum" not in p:
                    p["maxLength"] = max_string
        options.append({"type": "object", "properties": {"name": {"type": "string", "const": t.name},
                                                          "parameters": params},
                        "required": ["name", "parameters"]})
    if not options:
        raise ValueError("no tools: there is no call to constrain")
    return options[0] if len(options) == 1 else {"anyOf": options}


class _Vocab:
    """What lm-format-enforcer needs of a model's vocabulary, built once per model."""

    def __init__(self, model):
        from lmformatenforcer import TokenEnforcerTokenizerData

        self.n = model.vocab_size()
        texts = token_texts(model)
        self.ids = {s: model.token_id(s) for s in (ACTION_START, ACTION_END, PLUGIN, INTERPRETER, IM_START)}
        for s in (ACTION_START, ACTION_END, PLUGIN):
            if self.ids[s] is None:
                raise ValueError(f"the vocabulary has no {s} token: a constrained InternLM2 call needs it")
        self.stops = sorted(i for i in model.stop_token_ids() if i < self.n)
        regular = [(i, t, True) for i, t in enumerate(texts) if t is not None]
        self.data = TokenEnforcerTokenizerData(regular, lambda ids: model.detokenize(list(ids)),
                                               self.ids[ACTION_END], False, self.n)
        free = np.ones(self.n, dtype=bool)
        for s in (PLUGIN, INTERPRETER, ACTION_END, IM_START):
            if self.ids[s] is not None:
                free[self.ids[s]] = False
        self.free = free


_VOCABS: dict = {}


def _vocab(model) -> _Vocab:
    key = (id(model), getattr(model, "model_id", None))
    if key not in _VOCABS:
        _VOCABS.clear()  # one model at a time is the common case; the table is ~1 s to rebuild
        _VOCABS[key] = _Vocab(model)
    return _VOCABS[key]


class ToolCallConstraint(Constraint):
    """Free text, or exactly one schema-valid call to a tool of ``tools`` (InternLM2 plugin format)."""

    def __init__(self, model, tools: ToolRegistry, *, max_string: int | None = MAX_STRING,
                 max_whitespace: int = MAX_WHITESPACE):
        self.tools = tools
        self.schema = call_schema(tools, max_string)
        self.vocab = _vocab(model)
        self.max_whitespace = max_whitespace
        self.forced = False
        self._enforcer = None

    # ---- one generation ----
    def start(self, prompt_ids: Sequence[int]) -> None:
        self.forced = bool(prompt_ids) and prompt_ids[-1] == self.vocab.ids[ACTION_START]
        self._enforcer = None

    def state(self, ids: Sequence[int]) -> tuple[str, int]:
        """The protocol state after the generated ``ids``, and where the call's JSON starts."""
        v = self.vocab.ids
        ids = list(ids)
        if v[ACTION_END] in ids:
            return DONE, -1
        opened = len(ids) - 1 - ids[::-1].index(v[ACTION_START]) if v[ACTION_START] in ids else (
            -1 if self.forced else None)
        if opened is None:
            return FREE, -1
        if opened == len(ids) - 1:
            return PLUGIN_NEXT, -1
        return JSON, opened + 2  # after <|action_start|><|plugin|>

    def allowed(self, ids):
        st, at = self.state(ids)
        if st == FREE:
            return self.vocab.free
        if st == PLUGIN_NEXT:
            return [self.vocab.ids[PLUGIN]]
        if st == DONE:
            return self.vocab.stops
        allowed = self.enforcer().get_allowed_tokens([self.vocab.ids[PLUGIN]] + list(ids[at:])).allowed_tokens
        return allowed

    def enforcer(self):
        if self._enforcer is None:
            from lmformatenforcer import CharacterLevelParserConfig, JsonSchemaParser, TokenEnforcer
            from lmformatenforcer.characterlevelparser import SequenceParser, StringParser

            cfg = CharacterLevelParserConfig(alphabet=self.vocab.data.tokenizer_alphabet,
                                             max_consecutive_whitespaces=self.max_whitespace,
                                             force_json_field_order=True)
            parser = SequenceParser([StringParser("\n"), JsonSchemaParser(self.schema, cfg)])
            # TokenEnforcer gives the parser it is handed a default config; the parsers inside the
            # sequence keep theirs (this whitespace limit, fields in order)
            self._enforcer = TokenEnforcer(self.vocab.data, parser)
        return self._enforcer

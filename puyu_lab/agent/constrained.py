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
  tool's schema}``, fields in the order the fine-tune data writes them. A tool's ``patterns``
  (parameter → regex, e.g. the calculator's arithmetic expression, an ISO date) go in as JSON-schema
  ``pattern`` (lm-format-enforcer's regex parser): the prompt still shows the plain schema, so the
  model's context stays short. Other strings without a ``maxLength`` get one (``max_string``), so
  an untrained model that never closes its string is still made to finish the call inside its
  token budget (lm-format-enforcer bounds arrays and whitespace by itself, not strings);
* closing inside the token budget: the loop tells the constraint ``max_new_tokens``; when the tokens
  left only just cover the shortest way to finish the JSON (found by a depth-first walk of the
  library's parser, closing characters first), only tokens that spell that ending are allowed, so
  a call that was opened always closes; ``<|action_start|>`` is not offered when even the shortest
  call no longer fits;
* the protocol around the JSON: the special tokens are single tokens of the chat format, not text a
  JSON parser sees, so a small state machine (free → after ``<|action_start|>`` → JSON → done)
  decides when the JSON parser runs;
* two rules lm-format-enforcer 0.11 does not enforce (:func:`strict_json` wraps its parser): no
  ``}`` right after a comma (it lets an object close after a trailing comma once its required keys
  are there: ``{"date": "…", }``) and no exponent in a number (it lets integers take one, so
  ``"days": 33E919`` parsed as infinity). Both were found by the random-logits test once the
  protocol-aware tokenizer had pieces like ``▁"add_days",``; a call never needs either;
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
# the shortest ending tries these characters first: closers before digits, or a pattern that lets a
# number grow (the calculator's expression) sends the depth-first walk down an endless run of '0's
_FIRST = '"}]:,)0'


def shortest_ending(parser, limit: int = 400) -> str | None:
    """The shortest-looking text that completes ``parser`` (a lm-format-enforcer CharacterLevelParser):
    depth first, closing characters before anything else, whitespace last."""
    def rank(c: str) -> tuple:
        return (0, _FIRST.index(c)) if c in _FIRST else ((2, c) if c.isspace() else (1, c))

    def walk(p, depth):
        if p.can_end():
            return ""
        if depth >= limit:
            return None
        for c in sorted(set(p.get_allowed_characters()), key=rank)[:4]:
            try:
                rest = walk(p.add_character(c), depth + 1)
            except Exception:  # the parser refused the character after all
                continue
            if rest is not None:
                return c + rest
        return None

    return walk(parser, 0)


_STRICT = None


def strict_json(inner):
    """``inner`` (a lm-format-enforcer character parser) with two JSON rules added: no ``}`` / ``]``
    right after a comma, no exponent after a digit (outside strings)."""
    global _STRICT
    if _STRICT is None:
        from lmformatenforcer import CharacterLevelParser

        class StrictJSON(CharacterLevelParser):
            """Tracks only what the two rules need: inside a string (and after a backslash there), and
            the last character outside strings that was not whitespace."""

            def __init__(self, inner, in_string=False, escaped=False, last=""):
                super().__init__(getattr(inner, "_config", None))
                self.inner, self.in_string, self.escaped, self.last = inner, in_string, escaped, last

            def add_character(self, c: str):
                in_string, escaped, last = self.in_string, self.escaped, self.last
                if in_string:
                    if escaped:
                        escaped = False
                    elif c == "\\":
                        escaped = True
                    elif c == '"':
                        in_string, last = False, '"'
                elif c == '"':
                    in_string = True
                elif not c.isspace():
                    last = c
                return StrictJSON(self.inner.add_character(c), in_string, escaped, last)

            def get_allowed_characters(self) -> str:
                allowed = self.inner.get_allowed_characters()
                if self.in_string:
                    return allowed
                if self.last == ",":
                    return allowed.replace("}", "").replace("]", "")
                if self.last.isdigit() or self.last == ".":
                    return allowed.replace("e", "").replace("E", "")
                return allowed

            def can_end(self) -> bool:
                return self.inner.can_end()

            def shortcut_key(self):
                # inside a free-text string the rules add nothing (the closing quote is explored
                # character by character, through add_character)
                return self.inner.shortcut_key() if self.in_string else None

            def cache_key(self):
                key = self.inner.cache_key()
                return None if key is None else (key, self.in_string, self.last == ",")

        _STRICT = StrictJSON
    return _STRICT(inner)


def call_schema(tools: ToolRegistry, max_string: int | None = MAX_STRING) -> dict:
    """The JSON schema of one InternLM2 plugin call's body to any tool of ``tools``."""
    options = []
    for t in tools:
        params = copy.deepcopy(t.parameters) or {"type": "object", "properties": {}}
        params.setdefault("properties", {})
        for key, pattern in getattr(t, "patterns", {}).items():
            if key not in params["properties"]:
                from ..errors import InputError

                raise InputError(f"tool {t.name}: a pattern for {key!r}, which is not one of its parameters "
                                 f"({', '.join(params['properties']) or 'none'})",
                                 zh=f"工具 {t.name}：为 {key!r} 设了 pattern，但它不是这个工具的参数"
                                    f"（参数有：{', '.join(params['properties']) or '无'}）")
            params["properties"][key]["pattern"] = pattern
        if max_string:
            for p in params["properties"].values():
                if (p.get("type") == "string" and "maxLength" not in p and "enum" not in p
                        and "pattern" not in p):  # a pattern bounds the string itself (and excludes a length)
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
        # a control character may not stand raw in a JSON string, and lm-format-enforcer's string cache only
        # filters newlines: tokens with any other one (a tab, byte pieces like <0x1A>) take no part in a call
        regular = [(i, t, True) for i, t in enumerate(texts)
                   if t is not None and not any(ord(ch) < 32 and ch not in "\n\r" for ch in t)]
        self.data = TokenEnforcerTokenizerData(regular, lambda ids: model.detokenize(list(ids)),
                                               self.ids[ACTION_END], False, self.n)
        free = np.ones(self.n, dtype=bool)
        for s in (PLUGIN, INTERPRETER, ACTION_END, IM_START):
            if self.ids[s] is not None:
                free[self.ids[s]] = False
        self.free = free
        self.texts = [(i, t) for i, t in enumerate(texts) if t is not None]


_VOCABS: dict = {}


def _vocab(model) -> _Vocab:
    key = (id(model), getattr(model, "model_id", None))
    if key not in _VOCABS:
        _VOCABS.clear()  # one model at a time is the common case; rebuilding walks the whole vocabulary
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
        # OpenAI's tool_choice="required": this generation must open with a call (set per turn by the agent)
        self.required = False
        self._enforcer = None
        self.budget: int | None = None
        # how much an optional key can add to the shortest ending in one step (closing starts that early)
        optional = [k for t in tools for k in t.parameters.get("properties", {})
                    if k not in t.parameters.get("required", [])]
        self.slack = 2 + max((len(k) + 6 for k in optional), default=0)
        self.min_call = len(shortest_ending(self._parser()) or "") + 2  # + <|plugin|> and <|action_end|>
        # the longest of the tools' shortest calls: an ending is searched for only that close to the budget
        self.max_call = max(len(shortest_ending(self._parser(call_schema(tools.subset(t.name), max_string))) or "")
                            for t in tools) + 2

    # ---- one generation ----
    def start(self, prompt_ids: Sequence[int], max_new_tokens: int | None = None) -> None:
        self.forced = bool(prompt_ids) and prompt_ids[-1] == self.vocab.ids[ACTION_START]
        self._enforcer = None
        self.budget = max_new_tokens

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
        left = None if self.budget is None else self.budget - len(ids)  # tokens left, this one included
        if st == FREE:
            if self.required and not ids:  # a required call opens at once (no thought before it)
                return [self.vocab.ids[ACTION_START]]
            if left is not None and left < 1 + self.min_call + self.slack:
                free = self.vocab.free.copy()
                free[self.vocab.ids[ACTION_START]] = False  # a call could no longer close
                return free
            return self.vocab.free
        if st == PLUGIN_NEXT:
            return [self.vocab.ids[PLUGIN]]
        if st == DONE:
            return self.vocab.stops
        seq = tuple([self.vocab.ids[PLUGIN]] + list(ids[at:]))
        allowed = self.enforcer().get_allowed_tokens(list(seq)).allowed_tokens
        if left is not None and left <= self.max_call + 2 * self.slack:
            ending = shortest_ending(self._enforcer.prefix_states[seq].parser)
            # one token per character at worst, then <|action_end|>; slack for an optional key opened next
            if ending is not None and left <= len(ending) + 1 + self.slack:
                if ending == "":
                    return [self.vocab.ids[ACTION_END]]
                return [i for i, t in self.vocab.texts if ending.startswith(t)]
        return allowed

    def _parser(self, schema: dict | None = None):
        """The character-level parser of the call's body: a newline, then the JSON."""
        from lmformatenforcer import CharacterLevelParserConfig, JsonSchemaParser
        from lmformatenforcer.characterlevelparser import SequenceParser, StringParser

        cfg = CharacterLevelParserConfig(alphabet=self.vocab.data.tokenizer_alphabet,
                                         max_consecutive_whitespaces=self.max_whitespace,
                                         force_json_field_order=True)
        return SequenceParser([StringParser("\n"), strict_json(JsonSchemaParser(schema or self.schema, cfg))])

    def enforcer(self):
        if self._enforcer is None:
            from lmformatenforcer import TokenEnforcer

            parser = self._parser()
            # TokenEnforcer gives the parser it is handed a default config; the parsers inside the
            # sequence keep theirs (this whitespace limit, fields in order)
            self._enforcer = TokenEnforcer(self.vocab.data, parser)
        return self._enforcer

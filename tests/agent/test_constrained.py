"""Constrained tool calls: the decode loop's constraint hook, the JSON-schema grammar of a call
(lm-format-enforcer) on a real sentencepiece tokenizer, and an untrained tiny model whose forced call
always parses and validates through transformers and llama.cpp — and does not without the constraint."""
import json

import numpy as np
import pytest

from puyu_lab.agent.agent import Agent
from puyu_lab.agent.builtin import calculator, default_registry
from puyu_lab.agent.constrained import DONE, FREE, JSON, PLUGIN_NEXT, ToolCallConstraint, call_schema
from puyu_lab.agent.protocols import InternLM2Protocol
from puyu_lab.agent.tools import Tool, ToolRegistry
from puyu_lab.contracts.calculator import EXPRESSION_PATTERN
from puyu_lab.contracts.dates import DATE_PATTERN, parse_date
from puyu_lab.models.constraints import mask_logits, token_texts
from puyu_lab.models.template import ACTION_END, ACTION_START, IM_END, IM_START, PLUGIN
from tests.finetune.conftest import tok  # noqa: F401  (the session's real sentencepiece tokenizer)

PROTO = InternLM2Protocol()


@pytest.fixture
def reg():
    r = default_registry().subset("calculator", "add_days", "days_between")

    @r.tool
    def greet(name: str, times: int = 1, loud: bool = False) -> str:
        """Greet someone.

        name: who to greet
        times: how often
        loud: shout
        """
        return name

    return r


class Vocab:
    """A tokenizer seen the way the decode loop's backends show it (HFModel's methods, no weights)."""

    def __init__(self, tok):
        self.tok = tok

    def vocab_size(self):
        return len(self.tok)

    def detokenize(self, ids, keep_special=False):
        return self.tok.decode(ids, skip_special_tokens=not keep_special)

    def token_id(self, text):
        i = self.tok.convert_tokens_to_ids(text)
        return None if i is None or i == self.tok.unk_token_id else int(i)

    def stop_token_ids(self):
        return {self.tok.eos_token_id, self.tok.convert_tokens_to_ids(IM_END)}


def valid_call(text: str, tools: ToolRegistry) -> bool:
    """Strict: the protocol reads a call without repairing anything, the body is strict JSON, and the
    arguments validate against the tool's schema."""
    p = PROTO.parse(text, tools)
    if p.kind != "call" or p.notes:
        return False
    body = json.loads(text.split(PLUGIN, 1)[1].split(ACTION_END, 1)[0])
    return set(body) == {"name", "parameters"} and tools.get(body["name"]).validate(body["parameters"]) == p.args


def decode(c, v, prompt_ids, logits_fn, budget):
    """Greedy choice under the constraint from given logits (what LocalModel's loop does per step)."""
    stops = v.stop_token_ids()
    c.start(prompt_ids, budget)
    out = []
    for _ in range(budget):
        nxt = int(np.argmax(c.process(out, logits_fn(len(out)))))
        out.append(nxt)
        if nxt in stops:
            break
    return out


def test_token_texts_on_a_real_tokenizer(tok):
    v = Vocab(tok)
    texts = token_texts(v)
    assert len(texts) == len(tok)
    for s in (ACTION_START, ACTION_END, PLUGIN, IM_START, IM_END):
        assert texts[v.token_id(s)] is None  # special tokens build no text
    nl = tok.convert_tokens_to_ids("<0x0A>")
    assert texts[nl] == "\n"  # a byte piece that is a whole character is text
    assert texts[tok.convert_tokens_to_ids("<0xE4>")] is None  # a lone byte of a Chinese character is not
    pieces = tok.convert_ids_to_tokens(list(range(len(tok))))
    plain = [i for i, p in enumerate(pieces) if not p.startswith("<") and texts[i] is not None]
    assert len(plain) > 2000
    assert all(texts[i] == pieces[i].replace("▁", " ") for i in plain)  # spaces (▁) survive, even leading ones


def test_call_schema_is_the_tools_schemas(reg):
    s = call_schema(reg)
    assert [o["properties"]["name"]["const"] for o in s["anyOf"]] == ["calculator", "add_days", "days_between",
                                                                       "greet"]
    calc = s["anyOf"][0]["properties"]["parameters"]
    # the calculator's expression is bounded by its pattern (no length next to it: lm-format-enforcer
    # refuses both); a string without a pattern gets the length bound
    assert calc["properties"]["expression"] == {"type": "string", "pattern": EXPRESSION_PATTERN}
    assert s["anyOf"][1]["properties"]["parameters"]["properties"]["date"]["pattern"] == DATE_PATTERN
    greet = s["anyOf"][3]["properties"]["parameters"]["properties"]
    assert all(p.get("maxLength") == 32 for p in greet.values() if p.get("type") == "string")
    assert calculator.parameters["properties"]["expression"] == {"type": "string"}  # the tool's own is untouched
    assert call_schema(reg.subset("calculator"))["required"] == ["name", "parameters"]
    wrong = ToolRegistry()
    wrong.add(Tool("calc2", "", calculator.parameters, calculator.fn, patterns={"expr": "1"}))
    with pytest.raises(ValueError, match="not one of its parameters"):
        call_schema(wrong)


def test_patterns_accept_what_the_tools_accept():
    """The expression pattern admits every training and held-out expression the fine-tune data writes
    (and each is one the calculator computes); it refuses unbalanced brackets. The date pattern admits
    ISO dates and refuses impossible months and days."""
    import re

    from puyu_lab.contracts.calculator import calculate
    from puyu_lab.finetune.data import arithmetic_tasks

    for t in arithmetic_tasks(300, 5):
        assert re.fullmatch(EXPRESSION_PATTERN, t["expression"]), t
        assert calculate(t["expression"]) == t["result"]
    for e in ("(20+114", "20+)", "2**3", "", "1 + 2", "012*3", "1+2+3+4+5+6+7"):
        assert not re.fullmatch(EXPRESSION_PATTERN, e), e
    for e in ("-3*(2+(4-1))/7", "1.5*2"):
        assert re.fullmatch(EXPRESSION_PATTERN, e)
        calculate(e)
    for d in ("2024-05-01", "1999-12-31", "2023-02-28"):
        assert re.fullmatch(DATE_PATTERN, d)
    for d in ("2024-13-01", "2024-02-30", "0999-01-01", "2024-04-31", "2024-5-1"):
        assert not re.fullmatch(DATE_PATTERN, d), d


def test_random_logits_still_give_a_valid_call(tok, reg):
    """Whatever the model prefers (random logits, 30 seeds), a forced call parses and validates."""
    v = Vocab(tok)
    c = ToolCallConstraint(v, reg)
    prompt = [1, v.token_id(ACTION_START)]
    tools_seen = set()
    for seed in range(30):
        rng = np.random.default_rng(seed)
        out = decode(c, v, prompt, lambda _: rng.normal(size=len(tok)) * 5, budget=96)
        text = ACTION_START + v.detokenize(out, keep_special=True)
        assert valid_call(text, reg), text
        assert c.state(out)[0] == DONE
        call = PROTO.parse(text, reg)
        # the patterns: the calculator computes what the call says, add_days reads its date (the
        # number of days has no range under lm-format-enforcer, which enforces no minimum / maximum)
        if call.tool == "calculator":  # a well-formed expression: it computes, or divides by zero
            r = reg.call(call.tool, call.args)
            assert r.ok or "division by zero" in r.value, (text, r.value)
        if call.tool == "add_days":
            parse_date(call.args["date"])
        tools_seen.add(call.tool)
    assert len(tools_seen) >= 3  # every tool is reachable, not only the first


@pytest.mark.parametrize("budget,digits", [(70, False), (64, False), (70, True), (64, True)])
def test_a_call_closes_inside_a_tight_budget(tok, reg, budget, digits):
    v = Vocab(tok)
    c = ToolCallConstraint(v, reg.subset("calculator"))
    rng = np.random.default_rng(1)
    prompt = [1, v.token_id(ACTION_START)]
    # a model that never wants to close its string (the quote is its least likely token) — or, with
    # `digits`, one that wants its expression to grow digit after digit and never close a bracket (the
    # quick model wrote '(20+11114…'; the expression pattern lets a number grow without end)
    texts = token_texts(v)
    quote = [i for i, t in enumerate(texts) if t and any(ch in t for ch in '")')]
    digit = [i for i, t in enumerate(texts) if t and t.strip() and t.strip().isdigit()]
    bracket = [i for i, t in enumerate(texts) if t and t.strip() == "("]

    def logits(_):
        x = rng.normal(size=len(tok))
        x[quote] = -50
        if digits:
            x[digit] = 50
            x[bracket] = 60  # opens a bracket wherever one may stand
        return x

    out = decode(c, v, prompt, logits, budget)
    assert len(out) <= budget
    text = ACTION_START + v.detokenize(out, keep_special=True)
    assert valid_call(text, reg)
    r = reg.call("calculator", PROTO.parse(text, reg).args)
    assert r.ok or "division by zero" in r.value, (text, r.value)


def test_free_text_and_the_states(tok, reg):
    v = Vocab(tok)
    c = ToolCallConstraint(v, reg)
    ids = {s: v.token_id(s) for s in (ACTION_START, ACTION_END, PLUGIN, IM_START)}
    c.start([1, 2, 3], 96)
    mask = np.asarray(c.allowed([]))
    assert mask.dtype == bool and mask[ids[ACTION_START]] and mask[v.token_id("a")]
    assert not mask[ids[PLUGIN]] and not mask[ids[ACTION_END]] and not mask[ids[IM_START]]
    x, y = v.token_id("a"), 200  # ordinary tokens
    assert c.state([x, y]) == (FREE, -1)
    assert c.state([x, ids[ACTION_START]])[0] == PLUGIN_NEXT
    assert list(c.allowed([x, ids[ACTION_START]])) == [ids[PLUGIN]]
    assert c.state([x, ids[ACTION_START], ids[PLUGIN]]) == (JSON, 3)
    assert set(c.allowed([x, ids[ACTION_START], ids[PLUGIN], y, ids[ACTION_END]])) == v.stop_token_ids()
    # near the end of the budget no call is started (it could not close)
    c.start([1], c.min_call + 2)
    assert not np.asarray(c.allowed([]))[ids[ACTION_START]]
    # a prompt that ends in <|action_start|> starts inside the call
    c.start([1, ids[ACTION_START]], 96)
    assert c.state([]) == (PLUGIN_NEXT, -1)


def test_mask_logits():
    x = np.arange(5, dtype=np.float64)
    assert np.isneginf(mask_logits(x, [1, 3, 99])[[0, 2, 4]]).all() and mask_logits(x, [1, 3])[3] == 3
    assert mask_logits(x, None) is x
    assert int(np.argmax(mask_logits(x, np.array([True, False, True, False, False])))) == 2
    with pytest.raises(ValueError, match="no token"):
        mask_logits(x, [])


def test_an_endpoint_refuses_a_constraint():
    from puyu_lab.models.openai import OpenAIModel

    with pytest.raises(ValueError, match="logits"):
        OpenAIModel("http://127.0.0.1:9/v1").generate("hi", constraint=object())
    with pytest.raises(ValueError, match="local model"):
        Agent(OpenAIModel("http://127.0.0.1:9/v1"), default_registry(), protocol="internlm2", constrained=True)


# ---- an untrained tiny model, through transformers and llama.cpp ------------------------------------
QUESTIONS = ["37*41 等于多少？", "请计算 12+30", "2024-05-01 加 10 天是哪天？", "从 2024-01-01 到 2024-10-01 有几天？",
             "88-19 等于多少？", "请计算 (3+4)*5"]


def forced(model, reg, q, constraint):
    _, ids = model.prompt_ids(PROTO.messages(q, reg, []))
    g = model.generate(ids + [model.token_id(ACTION_START)], max_new_tokens=96, keep_special=True,
                       constraint=constraint)
    return ACTION_START + g.text, g


@pytest.mark.slow
def test_untrained_model_calls_validly_only_when_constrained(model_dir, ladder):
    from puyu_lab.models.gguf import GGUFModel
    from puyu_lab.models.hf import HFModel

    reg = default_registry().subset("calculator", "add_days", "days_between")
    texts = {}
    for m in (HFModel.load(model_dir), GGUFModel(ladder["F32"]), GGUFModel(ladder["Q4_K_M"])):
        c = ToolCallConstraint(m, reg)
        for q in QUESTIONS:
            free, _ = forced(m, reg, q, None)
            assert not valid_call(free, reg), free
            text, g = forced(m, reg, q, c)
            assert valid_call(text, reg), text
            assert g.output_tokens <= 96 and g.finish == "eos"
            texts.setdefault(q, []).append(text)
        # the agent: free-form or constrained, and the trace says which
        for constrained in (False, True):
            tr = Agent(m, reg, max_turns=1, constrained=constrained).run(QUESTIONS[0])
            assert tr.constrained is constrained and tr.status in ("answered", "max_turns")
            assert tr.turns[0]["parse"]["kind"] != "error" or not constrained
    # one loop, one constraint: transformers and the F32 GGUF write the same calls
    same = sum(t[0] == t[1] for t in texts.values())
    assert same >= len(QUESTIONS) - 1, texts


@pytest.mark.slow
def test_a_required_call_opens_every_first_turn_and_is_valid(model_dir, ladder):
    """tool_choice="required" (OpenAI's): an untrained model, which would rather answer in text, opens each first
    turn with a schema-valid call, on transformers and llama.cpp alike; later turns are the model's own choice."""
    from puyu_lab.models.gguf import GGUFModel
    from puyu_lab.models.hf import HFModel

    reg = default_registry().subset("calculator", "add_days", "days_between")
    for m in (HFModel.load(model_dir), GGUFModel(ladder["Q4_K_M"])):
        free = [Agent(m, reg, max_turns=1, constrained=True).run(q) for q in QUESTIONS]
        assert sum(t.turns[0]["raw"].startswith(ACTION_START) for t in free) < len(QUESTIONS), \
            "the untrained model must sometimes not call on its own, or the test shows nothing"
        req = [Agent(m, reg, max_turns=2, constrained=True, tool_choice="required").run(q) for q in QUESTIONS]
        for t in req:
            assert t.turns[0]["raw"].startswith(ACTION_START), t.turns[0]["raw"]
            assert t.turns[0]["parse"]["kind"] == "call" and valid_call(t.turns[0]["raw"], reg), t.turns[0]["raw"]
    with pytest.raises(ValueError, match="needs constrained=True"):
        Agent(m, reg, tool_choice="required")
    with pytest.raises(ValueError, match="'auto' or 'required'"):
        Agent(m, reg, constrained=True, tool_choice="any")


def test_strict_json_refuses_a_trailing_comma_and_exponents():
    """Two rules lm-format-enforcer 0.11 lets through (its parser alone accepts both texts below; the
    random-logits test above met each with the protocol-aware tokenizer)."""
    from lmformatenforcer import CharacterLevelParserConfig, JsonSchemaParser

    from puyu_lab.agent.constrained import strict_json

    schema = {"type": "object", "properties": {"date": {"type": "string"}, "days": {"type": "integer"},
                                               "loud": {"type": "boolean"}, "x": {"type": "number"}},
              "required": ["date"]}

    def refused_at(text, strict):
        p = JsonSchemaParser(schema, CharacterLevelParserConfig())
        p = strict_json(p) if strict else p
        for i, ch in enumerate(text):
            if ch not in p.get_allowed_characters():
                return i
            p = p.add_character(ch)
        return None if p.can_end() else len(text)

    for text, at in [('{"date": "a,}", }', 16), ('{"date": "x", "days": 33E919}', 24)]:
        assert refused_at(text, strict=False) is None  # the library alone accepts it
        assert refused_at(text, strict=True) == at, text
    for ok in ['{"date": "a, }\\"e", "days": 12, "loud": true, "x": 1.5}', '{"date": "x" , "loud": false}']:
        assert refused_at(ok, strict=True) is None, ok


@pytest.mark.slow
def test_the_agent_runs_many_questions_together_as_it_runs_each(model_dir):
    """Agent.run_batch decodes every question's turns in one batch (transformers) and gives each the trace its own
    run gives — free-form and constrained (each question its own grammar state), over more than one turn."""
    from puyu_lab.models.hf import HFModel

    reg = default_registry().subset("calculator", "add_days", "days_between")
    m = HFModel.load(model_dir)
    for constrained in (False, True):
        agent = Agent(m, reg, max_turns=2, max_new_tokens=48, constrained=constrained)
        done = []
        together = agent.run_batch(QUESTIONS, on_done=lambda i, tr: done.append(i))
        alone = [agent.run(q) for q in QUESTIONS]
        assert sorted(done) == list(range(len(QUESTIONS)))
        for a, b in zip(alone, together):
            assert (b.question, b.status, b.answer, b.constrained) == (a.question, a.status, a.answer, a.constrained)
            assert [(s["kind"], s.get("text")) for s in b.steps] == [(s["kind"], s.get("text")) for s in a.steps]
            assert [t["raw"] for t in b.turns] == [t["raw"] for t in a.turns]

"""Agent: tool registry, sandbox, both protocols' parsers, the loop, real backends (the trace panel:
tests/panels/test_agent.py)."""
import json
import os
import re
import threading
import time

import pytest

from puyu_lab.agent.agent import Agent, Trace, has_number
from puyu_lab.models import Generation
from puyu_lab.agent.builtin import calculator, default_registry
from puyu_lab.contracts.calculator import CalculatorError, calculate
from puyu_lab.agent.protocols import (BAD_ARGUMENTS, BAD_JSON, NO_ACTION, UNKNOWN_TOOL, InternLM2Protocol,
                                      ReActProtocol)
from puyu_lab.agent.sandbox import (BWRAP_ENV, UNSAFE_ENV, Limits, SandboxUnavailable, isolation_status,
                                    run_python)
from puyu_lab.agent.tools import ToolRegistry

from .helpers import CALL, Scripted, Slow, tools  # noqa: F401 (tools: a fixture)


# ---- registry ------------------------------------------------------------------------------------
def test_decorator_builds_the_schema_the_model_sees(tools):
    s = tools.get("greet").schema
    assert s == {"name": "greet", "description": "Greet someone.",
                 "parameters": {"type": "object", "properties": {
                     "name": {"type": "string", "description": "who to greet"},
                     "times": {"type": "integer", "description": "how often"}}, "required": ["name"]}}
    assert tools.call("greet", {"name": "小浦", "times": "2"}).value == "hello 小浦 hello 小浦"
    # the fine-tune data shows the model exactly this calculator description
    from puyu_lab.contracts.calculator import CALCULATOR_SCHEMA
    from puyu_lab.contracts.dates import ADD_DAYS_SCHEMA
    from puyu_lab.contracts.protocol import TOOL_SCHEMAS
    from puyu_lab.contracts.tasks import TOOL_SYSTEM
    assert calculator.schema == CALCULATOR_SCHEMA and InternLM2Protocol.system_prompt == TOOL_SYSTEM
    # the agent offers the tools in the order (and with the descriptions) the fine-tune data used
    from puyu_lab.agent.evaluate import AGENT_TOOLS
    assert [t.schema for t in default_registry().subset(*AGENT_TOOLS)] == TOOL_SCHEMAS
    assert TOOL_SCHEMAS == [CALCULATOR_SCHEMA, ADD_DAYS_SCHEMA]
    assert json.dumps(CALCULATOR_SCHEMA, ensure_ascii=False) == (
        '{"name": "calculator", "description": "计算算术表达式 (+ - * / 和括号)", "parameters": {"type": "object", '
        '"properties": {"expression": {"type": "string"}}, "required": ["expression"]}}')
    assert tools.call("calculator", {"expression": "12*(3+4)"}).as_text() == '{"result": 84}'
    with pytest.raises(TypeError, match="docstring"):
        ToolRegistry().tool(lambda x: x)


def test_date_and_search_tools(ws):
    reg = default_registry()
    assert reg.call("add_days", {"date": "2024-02-28", "days": 2}).value == {"date": "2024-03-01",
                                                                              "weekday": "星期五 Friday"}
    assert reg.call("days_between", {"start": "2024-01-01", "end": "2024-10-01"}).value == {"days": 274}
    bad = reg.call("add_days", {"date": "May 1", "days": 2})
    assert not bad.ok and "ISO date" in bad.value
    from puyu_lab.agent.builtin import CorpusIndex, search_tokens
    assert search_tokens("北京天气 BM25 test") == ["北", "京", "天", "气", "北京", "京天", "天气", "bm", "25", "test"]
    docs = [{"id": "a", "text": "北京今天下雪，天气很冷。"}, {"id": "b", "text": "上海的房价很高。"},
            {"id": "c", "text": "The weather in Beijing is cold."}]
    idx = CorpusIndex(docs)
    assert idx.search("北京天气", 2)[0]["id"] == "a"
    assert idx.search("cold weather")[0]["id"] == "c"


def test_calculator_rejects_names_attributes_calls_and_huge_powers():
    assert calculate("(46+31)*23") == 1771 and calculate("7/2") == 3.5
    for expr, why in [("x+1", "names"), ("(1).real", "attributes"), ("__import__('os')", "function calls"),
                      ("10**10**10", "exponent"), ("9**64**2", "exponent"), ("1/0", "division by zero")]:
        with pytest.raises(CalculatorError, match=why):
            calculate(expr)


# ---- sandbox -------------------------------------------------------------------------------------
def test_sandbox_runs_code_in_a_private_folder_with_a_scrubbed_environment():
    r = run_python("import os\nprint(sorted(os.environ))\nopen('f.txt', 'w').write('x')\n"
                   "open('/tmp/puyu-escape.txt', 'w').write('x')\nos.getcwd(), os.getuid()")
    assert r.ok, r.output
    env, cwd = r.output.splitlines()
    assert json.loads(env.replace("'", '"')) == ["HOME", "LANG", "PATH", "PWD", "TMPDIR"]  # PWD: set by bwrap
    assert cwd == "('/sandbox', 65534)" and not os.path.exists("/sandbox")  # a tmpfs of its own
    assert not os.path.exists("/tmp/puyu-escape.txt")  # its /tmp is private too


@pytest.mark.parametrize("code,expect", [
    ("while True:\n    pass", "cpu: used more than 1 s of CPU time"),
    ("import time\ntime.sleep(60)", "timeout: still running after 3 s"),
    ("x = bytearray(2 * 1024**3)", "memory: the program needed more than 128 MB"),
    ("blocks = []\nwhile True:\n    blocks.append(bytearray(10**7))", "memory: the program needed more than 128 MB"),
    ("import os\nwhile True:\n    os.fork()", "starting processes is not allowed (os.fork)"),
    ("import subprocess\nsubprocess.run(['sh', '-c', ':(){ :|:& };:'])", "starting processes is not allowed"),
    ("import ctypes\nctypes.CDLL(None).fork()", "loading C libraries is not allowed"),
    ("while True:\n    print('spam' * 1000)", "output: more than 2000 characters printed"),
    ("print('x' * 10**6)", "output: more than 2000 characters printed"),
    ("import socket\nsocket.create_connection(('127.0.0.1', 22))", "network access is not allowed"),
    ("open('/usr/puyu-escape.txt', 'w').write('x')", "writing outside /sandbox and /tmp is not allowed"),
])
def test_sandbox_stops_runaway_code_with_a_clear_observation(code, expect):
    t0 = time.monotonic()
    r = run_python(code, Limits(wall_s=3, cpu_s=1, memory_mb=128, max_output=2000))
    assert time.monotonic() - t0 < 10
    assert not r.ok
    obs = r.observation()
    assert expect in obs, obs
    assert len(obs) < 2200
    assert not os.path.exists("/usr/puyu-escape.txt")


def test_python_tool_is_an_observation_even_when_it_fails(tools):
    assert tools.call("python", {"code": "sum(range(101))"}).value == "5050"
    obs = tools.call("python", {"code": "1/0"}).value
    assert obs.startswith("Traceback") and "ZeroDivisionError" in obs and "<string>" not in obs


# ---- parsers -------------------------------------------------------------------------------------
I2 = InternLM2Protocol()
RE = ReActProtocol()


def test_internlm2_parses_a_call_and_a_final_answer(tools):
    p = I2.parse('我来算一下。<|action_start|><|plugin|>\n{"name": "calculator", "parameters": '
                 '{"expression": "12*7"}}<|action_end|>\n<|im_end|>', tools)
    assert (p.kind, p.thought, p.tool, p.args, p.notes) == ("call", "我来算一下。", "calculator",
                                                            {"expression": "12*7"}, [])
    f = I2.parse("12*7 = 84。<|im_end|>", tools)
    assert (f.kind, f.answer) == ("final", "12*7 = 84。")
    code = I2.parse("<|action_start|><|interpreter|>\n```python\nprint(6*7)\n```<|action_end|>", tools)
    assert (code.kind, code.tool, code.args) == ("call", "python", {"code": "print(6*7)"})


@pytest.mark.parametrize("text,kind,words", [
    ('{"name": "calculator", "parameters": {"expression": "1+"', NO_ACTION, "not marked as one"),
    ('<|plugin|>\n{"nam": 1}<|action_end|>', NO_ACTION, "must start with <|action_start|>"),
    ('<|action_start|><|plugin|>\n{"name": "calculator", "parameters": {"expression": }<|action_end|>', BAD_JSON,
     "not valid JSON (Expecting value at line 1 column"),
    ('<|action_start|><|plugin|>\n<|action_end|>', BAD_JSON, "the call is empty"),
    ('<|action_start|><|plugin|>\n{"name": "calculater", "parameters": {"expression": "1+1"}}<|action_end|>',
     UNKNOWN_TOOL, "there is no tool 'calculater'; the tools are: calculator, python"),
    ('<|action_start|><|plugin|>\n{"name": "Calculator", "parameters": {}}<|action_end|>', UNKNOWN_TOOL,
     "did you mean 'calculator'"),
    ('<|action_start|><|plugin|>\n{"name": "calculator", "parameters": {"expr": "1+1"}}<|action_end|>',
     BAD_ARGUMENTS, "calculator has no parameter 'expr'; its parameters are: expression"),
    ('<|action_start|><|plugin|>\n{"name": "greet", "parameters": {"times": 2}}<|action_end|>', BAD_ARGUMENTS,
     "greet needs the parameter 'name'"),
    ('<|action_start|><|plugin|>\n{"name": "greet", "parameters": {"name": "a", "times": "two"}}<|action_end|>',
     BAD_ARGUMENTS, "parameter 'times' of greet must be an integer"),
])
def test_internlm2_malformed_calls_become_precise_observations(tools, text, kind, words):
    p = I2.parse(text, tools)
    assert p.kind == "error" and p.error_kind == kind, p
    assert words in p.error, p.error
    _said_in_chinese_too(p)


def _said_in_chinese_too(p):
    """A parse error is a Msg: the model reads the English (``error``), a zh learner its Chinese (``error_zh``), which
    the trace keeps too (``to_dict``)."""
    assert p.error_zh != str(p.error) and re.search(r"[\u4e00-\u9fff]", p.error_zh), p.error_zh
    assert " ".join(str(p.error).split()[:3]) not in p.error_zh, p.error_zh  # not the English with Chinese around it
    assert p.to_dict()["error_zh"] == p.error_zh and json.loads(json.dumps(p.to_dict()))["error"] == str(p.error)


def test_internlm2_forgives_what_is_unambiguous(tools):
    p = I2.parse("<|action_start|><|plugin|>\n{'name': 'calculator', 'arguments': {'expression': '2*3'}}", tools)
    assert (p.kind, p.args) == ("call", {"expression": "2*3"})
    assert any("action_end" in n for n in p.notes) and any("single quotes" in n for n in p.notes)
    assert any('"arguments"' in n for n in p.notes)
    # an endpoint that strips special tokens still delivers the call
    s = I2.parse('好的 {"name": "calculator", "parameters": {"expression": "2*3"}}', tools)
    assert s.kind == "call" and "no <|action_start|> token" in s.notes[0]
    bare = I2.parse('<|action_start|><|plugin|>\n{"name": "calculator", "parameters": "2*3"}<|action_end|>', tools)
    assert bare.args == {"expression": "2*3"}
    # a bare object whose name is not a string is text, not a crash (it raised TypeError: unhashable list)
    odd = I2.parse('{"name": ["calculator"], "parameters": {}}', tools)
    assert odd.kind in ("final", "error"), odd


def test_react_parses_a_call_and_a_final_answer(tools):
    p = RE.parse('Thought: I should compute.\nAction: calculator\nAction Input: {"expression": "12*7"}\n'
                 'Observation: 84', tools)
    assert (p.kind, p.thought, p.tool, p.args) == ("call", "I should compute.", "calculator", {"expression": "12*7"})
    assert "ignored an Observation the model wrote itself" in p.notes
    f = RE.parse("Thought: I know it.\nFinal Answer: 84", tools)
    assert (f.kind, f.answer, f.thought) == ("final", "84", "I know it.")
    loose = RE.parse("Action: calculator\nAction Input: 12*7", tools)  # not JSON, one-parameter tool
    assert (loose.kind, loose.args) == ("call", {"expression": "12*7"})


@pytest.mark.parametrize("text,kind,words", [
    ("I think the answer is 84.", NO_ACTION, "neither an Action nor a Final Answer"),
    ("Thought: compute\nAction: calculator", BAD_ARGUMENTS, "Action: calculator has no Action Input line"),
    ('Action: greet\nAction Input: {"name": "a", "times": }', BAD_JSON, "the Action Input is not valid JSON"),
    ('Action: weather\nAction Input: {"city": "北京"}', UNKNOWN_TOOL, "there is no tool 'weather'"),
    ('Action: calculator\nAction Input: {"expression": "1+1", "x": 2}', BAD_ARGUMENTS, "has no parameter 'x'"),
])
def test_react_malformed_calls_become_precise_observations(tools, text, kind, words):
    p = RE.parse(text, tools)
    assert p.kind == "error" and p.error_kind == kind, p
    assert words in p.error, p.error
    _said_in_chinese_too(p)


# ---- the loop (a scripted backend: a unit test of the loop itself) ---------------------------------


def test_agent_loop_runs_the_tool_and_feeds_back_the_observation(tools):
    be = Scripted(['<|action_start|><|plugin|>\n{"name": "calculator", "parameters": {"expression": "37*41"}}'
                   '<|action_end|>\n', "37*41 = 1517。"])
    events = []
    tr = Agent(be, tools.subset("calculator")).run("37*41 等于多少？", on_event=events.append)
    assert tr.status == "answered" and tr.answer == "37*41 = 1517。"
    assert [s["kind"] for s in tr.steps] == ["call", "observation", "final"]
    assert tr.steps[1]["text"] == '{"result": 1517}' and tr.steps[1]["ok"]
    second = be.prompts[1]
    assert second[-1] == {"role": "environment", "name": "<|plugin|>", "content": '{"result": 1517}'}
    assert second[1]["name"] == "<|plugin|>" and json.loads(second[1]["content"])[0]["name"] == "calculator"
    assert [e.kind for e in events] == ["start", "turn", "step", "step", "turn", "step", "done"]
    assert tr.turns[0]["diagnosis"] is None and "expected last step" in tr.turns[1]["diagnosis"]
    assert has_number(tr.answer, 1517, "37*41 等于多少？") and not has_number("37*41", 41, "37*41 等于多少？")


def test_without_isolation_the_python_tool_refuses_and_the_loop_reports_it(tools, monkeypatch):
    monkeypatch.delenv(UNSAFE_ENV, raising=False)
    monkeypatch.setenv(BWRAP_ENV, "/nonexistent/bwrap")  # the test switch: bubblewrap is "not installed"
    available, why = isolation_status()
    assert not available and why.startswith("sandbox unavailable:") and "bubblewrap (bwrap), which was not found" in why
    assert "sudo apt-get install bubblewrap" in why and f"{UNSAFE_ENV}=1" in why
    with pytest.raises(SandboxUnavailable) as e:
        run_python("print(1)")
    assert str(e.value) == why
    be = Scripted(["<|action_start|><|interpreter|>\n```python\nprint(6*7)\n```<|action_end|>\n", "42"])
    tr = Agent(be, tools.subset("python")).run("6*7?")
    assert [s["kind"] for s in tr.steps] == ["call", "observation", "final"]
    assert tr.steps[1]["text"] == f"error: {why}" and tr.steps[1]["ok"] is False
    assert be.prompts[1][-1]["content"] == f"error: {why}"  # the model reads the refusal too
    # a bwrap that cannot run is named, with the same way out
    monkeypatch.setenv(BWRAP_ENV, "/bin/false")
    available, why = isolation_status()
    assert not available and "/bin/false" in why and "is not a working bubblewrap" in why and UNSAFE_ENV in why
    # only the loudly named opt-in runs code without isolation, and it says so
    monkeypatch.setenv(UNSAFE_ENV, "1")
    with pytest.warns(RuntimeWarning, match="WITHOUT operating-system isolation"):
        assert run_python("print(6*7)").output == "42\n"


def test_sandbox_refuses_a_bubblewrap_older_than_0_8(tmp_path, monkeypatch):
    """bwrap < 0.7 has no --size (uncapped tmpfs), < 0.8 no --disable-userns: refused, not silently weaker."""
    import shutil
    monkeypatch.delenv(UNSAFE_ENV, raising=False)
    sh, real = os.path.realpath(shutil.which("sh")), os.path.realpath(shutil.which("bwrap") or "/usr/bin/bwrap")

    def fake(version):  # a bwrap that says it is `version`, and is the real one otherwise
        d = tmp_path / version
        d.mkdir()
        (d / "bwrap").write_text(f'#!{sh}\nif [ "$1" = --version ]; then echo "bubblewrap {version}"; exit 0; fi\n'
                                 f'exec {real} "$@"\n')
        (d / "bwrap").chmod(0o755)
        return str(d / "bwrap")

    monkeypatch.setenv(BWRAP_ENV, fake("0.8.0"))  # the switch itself is honest: as 0.8.0 it sandboxes
    available, why = isolation_status()
    assert available, why
    assert run_python("import os\nos.getuid()").output == "65534\n"
    for old in ("0.6.1", "0.7.0"):
        monkeypatch.setenv(BWRAP_ENV, fake(old))
        available, why = isolation_status()
        assert not available and f"bubblewrap {old}" in why and "too old" in why and ">= 0.8.0" in why, why
        assert "--size" in why and "--disable-userns" in why and BWRAP_ENV in why and f"{UNSAFE_ENV}=1" in why
        with pytest.raises(SandboxUnavailable) as e:
            run_python("print(1)")
        assert str(e.value) == why
    with pytest.warns(RuntimeWarning, match="WITHOUT operating-system isolation"):  # only the loud opt-in runs it
        assert run_python("print(6*7)", Limits(unsafe_unsandboxed=True)).output == "42\n"


def test_sandbox_status_says_whether_a_runs_total_memory_is_capped():
    from puyu_lab.agent.sandbox import _plan
    available, text = isolation_status()
    assert available, text
    plan = _plan()
    assert "no system-call filter" in text and "site-packages folders masked" in text
    if plan.cgroup:
        assert "total memory (processes, shared memory, its files) capped by a cgroup" in text, text
    else:
        assert "NO cap on a run's total memory" in text and plan.no_cgroup in text, text
    assert Limits().nproc == 16 and Limits().total_mb == 256 + 3 * 64


def test_agent_loop_stops_after_max_turns_and_diagnoses(tools):
    be = Scripted(['<|action_start|><|plugin|>\n{"name": "calc", "parameters": {}}<|action_end|>'] * 3)
    tr = Agent(be, tools.subset("calculator"), max_turns=3).run("1+1?")
    assert tr.status == "max_turns" and tr.answer is None
    assert [s["kind"] for s in tr.steps] == ["error", "observation"] * 3
    assert "unknown_tool" in tr.turns[0]["diagnosis"]
    direct = Agent(Scripted(["2"]), tools.subset("calculator")).run("1+1?")
    assert "answered directly" in direct.turns[0]["diagnosis"] and "0.10%" in direct.turns[0]["diagnosis"]


# ---- real backends ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_transformers_and_gguf_backends_see_the_same_prompt(model_dir, ladder, tools):
    from transformers import AutoModelForCausalLM

    from puyu_lab.models import GGUFModel, HFModel
    from puyu_lab.models.tokenizer import load_tokenizer

    hf = HFModel(AutoModelForCausalLM.from_pretrained(str(model_dir)), load_tokenizer(model_dir))
    gg = GGUFModel(ladder["F32"])
    try:
        msgs = InternLM2Protocol().messages("12*7 等于多少？", tools.subset("calculator"), [])
        a = hf.generate(msgs, max_new_tokens=8, watch="<|action_start|>")
        b = gg.generate(msgs, max_new_tokens=8, watch="<|action_start|>")
        assert a.prompt == b.prompt and a.prompt_tokens == b.prompt_tokens
        assert a.text == b.text  # greedy, F32: the same tokens
        assert a.watch_prob == pytest.approx(b.watch_prob, rel=1e-3, abs=1e-6)
        assert [t for t, _ in a.first_token] == [t for t, _ in b.first_token]
        tr = Agent(gg, tools.subset("calculator"), max_turns=2, max_new_tokens=16).run("12*7 等于多少？")
        assert tr.turns and tr.turns[0]["prompt"] == a.prompt
        assert tr.status in ("answered", "max_turns")
    finally:
        gg.close()


@pytest.mark.slow
def test_openai_endpoint_native_tool_calling(ladder, tools):
    """llama.cpp's server with its function-calling chat format, the call forced by tool_choice:
    real ``tool_calls`` come back, the tool runs, its result goes back as a ``tool`` message."""
    from puyu_lab.models import OpenAIModel
    from puyu_lab.deploy.serve import Server

    reg = ToolRegistry()

    @reg.tool
    def ping() -> str:
        """Check that the tools work."""
        return "pong"

    with Server(ladder["Q8_0"], chat_format="chatml-function-calling") as srv:
        be = OpenAIModel(srv.base_url, tool_choice={"type": "function", "function": {"name": "ping"}})
        tr = Agent(be, reg, max_turns=2, max_new_tokens=24).run("ping?")
    assert tr.protocol == "openai"
    assert tr.turns[0]["native_calls"][0]["name"] == "ping"
    assert [s["kind"] for s in tr.steps[:2]] == ["call", "observation"] and tr.steps[1]["text"] == "pong"
    sent = json.loads(tr.turns[1]["prompt"])
    assert sent["tools"][0]["function"]["name"] == "ping"
    assert sent["messages"][-1]["role"] == "tool" and sent["messages"][-1]["content"] == "pong"
    assert sent["messages"][-2]["tool_calls"][0]["function"]["name"] == "ping"


# ---- the trace panel -------------------------------------------------------------------------------


# ---- several native calls in one reply; Stop during a generation; a failing backend -------------------
class ScriptedEndpoint(Scripted):
    """An OpenAI-style endpoint: replies are (text, tool_calls) pairs."""

    name = "scripted-endpoint"
    native_tools = True

    def generate(self, messages, *, max_new_tokens=128, stop=(), watch=None, tools=None, **kw):
        self.prompts.append(messages)
        text, calls = self.replies.pop(0)
        return Generation(text, json.dumps(messages, ensure_ascii=False), 10, 5, 0.01, tool_calls=calls)


def test_every_tool_call_of_an_endpoint_reply_runs_in_order(tools):
    be = ScriptedEndpoint([
        ("", [{"id": "c1", "name": "calculator", "arguments": '{"expression": "2+3"}'},
              {"id": "c2", "name": "calculator", "arguments": {"expression": "6*7"}}]),
        ("2+3 = 5, 6*7 = 42", None)])
    tr = Agent(be, tools.subset("calculator")).run("2+3 and 6*7?")
    assert tr.protocol == "openai" and tr.status == "answered"
    assert [s["kind"] for s in tr.steps] == ["call", "observation", "call", "observation", "final"]
    assert [s.get("args") for s in tr.steps[:4:2]] == [{"expression": "2+3"}, {"expression": "6*7"}]
    assert [s["text"] for s in tr.steps[1:4:2]] == ['{"result": 5}', '{"result": 42}']
    assert "2 tool calls in one reply: each runs, in order" in tr.steps[0]["notes"]
    second = be.prompts[1]
    assert [c["id"] for c in second[-3]["tool_calls"]] == ["c1", "c2"]
    assert [c["function"]["name"] for c in second[-3]["tool_calls"]] == ["calculator", "calculator"]
    assert second[-2:] == [{"role": "tool", "tool_call_id": "c1", "content": '{"result": 5}'},
                           {"role": "tool", "tool_call_id": "c2", "content": '{"result": 42}'}]
    # a bad call among them is reported as its own error and still answered with its own tool message
    be = ScriptedEndpoint([("", [{"id": "a", "name": "calculator", "arguments": '{"expression": "1+1"}'},
                                 {"id": "b", "name": "calculator", "arguments": '{"expression": '}]), ("2", None)])
    tr = Agent(be, tools.subset("calculator")).run("1+1?")
    assert [s["kind"] for s in tr.steps] == ["call", "observation", "error", "observation", "final"]
    msgs = be.prompts[1]
    assert [m["tool_call_id"] for m in msgs[-2:]] == ["a", "b"] and msgs[-1]["content"].startswith("error: ")


def test_stop_during_a_generation_ends_the_run_at_once(tools):
    from puyu_lab.events import StopFlag

    stop = StopFlag()
    be = Slow([CALL, CALL * 20, "2"], delay=0.005)  # the second reply alone would take ~9 s
    seen = []

    def on_event(e):
        seen.append(e.kind)
        if e.kind == "step" and e["step"]["kind"] == "observation":
            threading.Timer(0.2, stop.set).start()  # Stop pressed while the second turn generates

    t0 = time.monotonic()
    tr = Agent(be, tools.subset("calculator"), max_turns=3).run("1+1?", on_event=on_event, stop=stop)
    assert tr.status == "stopped" and time.monotonic() - t0 < 3
    assert len(tr.turns) == 2 and len(tr.turns[1]["raw"]) < len(CALL)
    assert [s["kind"] for s in tr.steps] == ["call", "observation"]  # nothing of the cut reply ran
    assert seen[-1] == "done"


# ---- held-out evaluation (scripted replies: the bookkeeping itself) -------------------------------
def _call(name, params):
    return f'<|action_start|><|plugin|>\n{json.dumps({"name": name, "parameters": params})}<|action_end|>\n'


def test_task_eval_counts_success_direct_answers_and_call_validity(tools):
    from puyu_lab.agent.evaluate import call_validity, suite_eval, task_eval

    calc = tools.subset("calculator", "add_days")
    tasks = [{"expression": "37*41", "result": 1517}, {"expression": "12*7", "result": 84},
             {"expression": "9+8", "result": 17}]
    # every task's agent run first, then the direct answers (each group is decoded together)
    replies = [_call("calculator", {"expression": "37*41"}), "37*41 = 1517。",  # right
               "<|action_start|><|plugin|>\n{\"name\": \"calculator\", <|action_end|>\n", "84。",  # bad JSON
               "结果是 17。",  # no call at all, but the answer is right: not a tool success
               "1517", "85", "16"]  # directly: right, wrong, wrong
    res = task_eval(Agent(Scripted(replies), calc, max_turns=2), "arithmetic", tasks)
    m, rows = res["metrics"], res["rows"]
    assert [r["tool_ok"] for r in rows] == [True, True, True] and [r["called_tool"] for r in rows] == [True, False, False]
    assert [r["direct_ok"] for r in rows] == [True, False, False]
    assert m["with_tools"] == 1.0 and m["called_tool"] == pytest.approx(1 / 3) and m["direct"] == pytest.approx(1 / 3)
    assert (m["calls_attempted"], m["call_valid"]) == (2, 0.5)  # the bad JSON is an invalid attempt
    assert call_validity(res["traces"][1]) == (1, 0) and call_validity(res["traces"][2]) == (0, 0)

    # a failing tool run is an invalid call too; a date answer must state the ISO date
    date_tasks = [{"date": "2024-02-28", "days": 2, "result": "2024-03-01"},
                  {"date": "2024-05-01", "days": 37, "result": "2024-06-07"}]
    replies = [_call("add_days", {"date": "2024-02-28", "days": 2}), "是 2024-03-01，星期五。",
               _call("add_days", {"date": "May 1", "days": 37}), "是 2024-06-08。"]
    d = task_eval(Agent(Scripted(replies), calc, max_turns=2), "date", date_tasks, direct=False)
    assert [r["tool_ok"] for r in d["rows"]] == [True, False] and d["metrics"]["call_valid"] == 0.5
    assert "direct" not in d["metrics"]

    # questions that need no tool: success is an answer without any call
    notool = [{"prompt": "你是谁？"}, {"prompt": "你好"}]
    replies = ["我是阿浦。", _call("calculator", {"expression": "1+1"}), "2"]
    n = task_eval(Agent(Scripted(replies), calc, max_turns=2), "notool", notool)
    assert [r["tool_ok"] for r in n["rows"]] == [True, False] and n["metrics"]["with_tools"] == 0.5
    assert "direct" not in n["metrics"] and "called_tool" not in n["metrics"]

    # the suite prefixes each kind's figures and pools the calls' validity
    replies = [_call("calculator", {"expression": "37*41"}), "1517", "我是阿浦。"]
    s = suite_eval(Agent(Scripted(replies), calc, max_turns=2),
                   {"arithmetic": tasks[:1], "notool": notool[:1]}, direct=False)
    assert s["metrics"]["arithmetic_with_tools"] == 1.0 and s["metrics"]["notool_with_tools"] == 1.0
    assert (s["metrics"]["calls_attempted"], s["metrics"]["call_valid"]) == (1, 1.0)
    with pytest.raises(ValueError, match="use one of arithmetic, date, notool"):
        from puyu_lab.agent.evaluate import heldout_tasks
        heldout_tasks(None, kind="search")


class ScriptedByQuestion(Scripted):
    """Each question's own script of replies, and a ``generate_batch`` that answers a batch's prompts from them
    (the bookkeeping of Agent.run_batch: questions that need different numbers of turns)."""

    can_batch = True

    def __init__(self, scripts):
        self.scripts, self.prompts, self.batches = {q: list(r) for q, r in scripts.items()}, [], []

    def _reply(self, messages, watch=None):
        q = next(m["content"] for m in messages if m["role"] == "user")
        self.prompts.append(messages)
        return Generation(self.scripts[q].pop(0), json.dumps(messages, ensure_ascii=False), 10, 5, 0.01,
                          [("x", 0.9)], 0.001 if watch else None)

    def generate(self, messages, *, watch=None, **kw):
        return self._reply(messages, watch)

    def generate_batch(self, inputs, *, watch=None, constraints=None, **kw):
        self.batches.append(len(inputs))
        return [self._reply(m, watch) for m in inputs]


def test_run_batch_keeps_each_questions_turns_apart(tools):
    calc = tools.subset("calculator")
    scripts = {"37*41 等于多少？": [_call("calculator", {"expression": "37*41"}), "是 1517。"],
               "你是谁？": ["我是阿浦。"],
               "2+2 等于多少？": [_call("calculator", {"expression": "2+"}), _call("calculator", {"expression": "2+2"}),
                                "4"]}
    be = ScriptedByQuestion(scripts)
    done = []
    traces = Agent(be, calc, max_turns=3).run_batch(list(scripts), on_done=lambda i, tr: done.append(i))
    assert be.batches == [3, 2, 1]  # a question leaves the batch when it is answered
    assert done == [1, 0, 2]
    assert [tr.answer for tr in traces] == ["是 1517。", "我是阿浦。", "4"]
    assert [len(tr.turns) for tr in traces] == [2, 1, 3]
    assert [s["kind"] for s in traces[2].steps] == ["call", "observation", "call", "observation", "final"]
    assert traces[2].steps[1]["ok"] is False and traces[2].steps[3]["text"] == '{"result": 4}'
    assert all(not s for s in be.scripts.values())


# ---- what a learner reads in a trace, in Chinese too --------------------------------------------------------------
def _mostly_chinese(text: str) -> bool:
    from puyu_lab.labtext import cjk_share

    return cjk_share(text) >= 0.3


def test_diagnoses_are_written_in_both_languages_and_the_model_reads_no_chinese(tools):
    """diagnose(): each branch has its Chinese (the turn's ``diagnosis_zh``) beside the English (``diagnosis``); a parse
    error's and a failed call's text stays what the model reads (English), with its Chinese as ``text_zh`` on the step
    for the trace: a zh learner reads the parse error and the tool's refusal in Chinese, not the model's English."""
    be = Scripted(['<|action_start|><|plugin|>\n{"name": "calc", "parameters": {}}<|action_end|>',
                   '<|action_start|><|plugin|>\n{"name": "calculator", "parameters": {"expression": "1/0"}}<|action_end|>',
                   "2"])
    tr = Agent(be, tools.subset("calculator")).run("1+1?")
    d0, d1, d2 = tr.turns
    assert "unknown_tool" in d0["diagnosis"] and d0["diagnosis_zh"].startswith("模型想调用工具，但它的回复无法执行（调用了不存在的工具）")
    assert "没有名为 'calc' 的工具" in d0["diagnosis_zh"] and "there is no tool" not in d0["diagnosis_zh"]
    assert d1["diagnosis"] is None and d1["diagnosis_zh"] is None  # a call: nothing to explain
    assert "expected last step" in d2["diagnosis"] and d2["diagnosis_zh"] == "模型看到工具结果后给出了回答：这正是预期中的最后一步。"
    error, obs0, call, obs1, final = tr.steps
    assert error["kind"] == "error" and error["text"].startswith("there is no tool 'calc'")
    assert error["text_zh"] == "调用了不存在的工具：没有名为 'calc' 的工具；可用的工具：calculator"
    assert obs0["text"] == f"error: {error['text']}" and obs0["text_zh"].startswith("错误（调用了不存在的工具）：没有名为")
    assert tr.turns[0]["parse"]["error"] == error["text"] and tr.turns[0]["parse"]["error_zh"] in error["text_zh"]
    # a call the tool refuses: the model reads the English observation, the trace keeps the Chinese beside it
    assert call["kind"] == "call" and obs1["text"] == "error: calculator: division by zero"
    assert obs1["text_zh"] == "错误：计算器：除数不能为零"
    sent = json.dumps(be.prompts, ensure_ascii=False)
    assert obs1["text"] in sent and error["text"] in sent
    assert not any(z in sent for z in ("计算器", "不存在的工具", "错误："))
    # answered directly, at a low probability of the call marker; and no tools at all
    direct = Agent(Scripted(["2"]), tools.subset("calculator")).run("1+1?").turns[0]
    assert "answered directly" in direct["diagnosis"] and "0.10%" in direct["diagnosis"]
    assert direct["diagnosis_zh"].startswith("模型直接回答了") and "0.10%" in direct["diagnosis_zh"]
    assert "模型还没学会" in direct["diagnosis_zh"] and _mostly_chinese(direct["diagnosis_zh"])
    bare = Agent(Scripted(["2"]), ToolRegistry()).run("1+1?").turns[0]
    assert bare["diagnosis_zh"] == "没有提供任何工具，模型只能直接回答。" and bare["diagnosis"].startswith("No tools")
    # a trace saved and loaded keeps both
    assert Trace.from_dict(json.loads(json.dumps(tr.to_dict()))).turns[0]["diagnosis_zh"] == d0["diagnosis_zh"]


def test_tool_errors_and_sandbox_stops_have_their_chinese(tools):
    """The registry's own errors and the sandbox's stop lines: ``as_text()`` (what the model reads) is the English as
    before, ``as_text_zh()`` the same observation in Chinese; what the code printed stays as it is."""
    from puyu_lab.agent.sandbox import RunResult, _output_stop, _total_memory_stop

    cases = [("Calculator", {}, "error: there is no tool 'Calculator' (did you mean",
              "错误：没有名为 'Calculator' 的工具（是不是想用 'calculator'？）"),
             ("calc", {}, "error: there is no tool 'calc'; the tools are: calculator, python",
              "错误：没有名为 'calc' 的工具；可用的工具：calculator、python"),
             ("greet", {"name": "a", "times": "x"}, "error: parameter 'times' of greet must be an integer",
              "错误：greet 的参数 'times' 必须是 整数（integer）"),
             ("greet", {}, "error: greet needs the parameter 'name'", "错误：greet 缺少参数 'name'"),
             ("greet", [1], "error: arguments of greet must be a JSON object", "错误：greet 的参数必须是 JSON 对象"),
             ("calculator", {"expression": "1/0"}, "error: calculator: division by zero", "错误：计算器：除数不能为零"),
             ("calculator", {"expression": "2**100"}, "error: calculator: exponent 100 is larger than 64",
              "错误：计算器：指数 100 超过了上限 64"),
             ("add_days", {"date": "May 1", "days": 3}, "error: date must be an ISO date like 2024-05-01, got 'May 1'",
              "错误：date 必须是 ISO 格式的日期，例如 2024-05-01；收到的是 'May 1'")]
    for name, args, en, zh in cases:
        res = tools.call(name, args)
        assert not res.ok and res.as_text().startswith(en) and res.as_text_zh().startswith(zh), res.as_text_zh()

    @tools.tool
    def boom(x: int) -> int:
        """Fail."""
        raise RuntimeError("kaputt")

    res = tools.call("boom", {"x": 1})
    assert res.as_text() == "error: boom failed: RuntimeError: kaputt" and res.as_text_zh() == "错误：boom 运行出错：RuntimeError: kaputt"
    assert tools.call("greet", {"name": "a"}).as_text_zh() == "hello a"  # a tool's own output: as it is
    # the sandbox: a run stopped by the wall clock, for real; the other endings as the runner words them
    lim = Limits(wall_s=1, max_output=50)
    obs = run_python("print('partial', flush=True)\nimport time\ntime.sleep(60)", lim).observation()
    assert str(obs) == "partial\n[stopped: timeout: still running after 1 s of wall-clock time]"
    assert obs.zh == "partial\n[已停止：超时：运行了 1 秒（墙钟时间）还没有结束]"
    assert tools.call("python", {"code": "pass"}).as_text_zh() == "[没有输出：想看什么，就 print() 出来]"
    for stopped, zh in ((_output_stop(lim), "[已停止：输出：打印了超过 50 个字符]"),
                        (_total_memory_stop(lim), "[已停止：内存：这次运行总共需要超过 448 MB")):
        o = RunResult("", None, stopped, 0.0).observation()
        assert str(o).startswith("[stopped: ") and o.zh.startswith(zh) and _mostly_chinese(o.zh), o.zh
    assert RunResult("", 3, None, 0.0).observation().zh == "[程序退出，退出码 3]"
    assert RunResult("", 3, None, 0.0).observation() == "[exited with code 3]"


@pytest.mark.parametrize("language", ["zh", "en"])
def test_lab_07_prints_turns_from_1_as_the_panel_does(tools, capsys, language):
    """Lab 08's cell after the trace panel prints each turn as the panel's turn bar shows it (counted from 1), and a
    turn's diagnosis in the course language."""
    import puyu_lab as pl

    from ..conftest import ROOT

    cells = json.loads((ROOT / "labs" / "08_agent.ipynb").read_text(encoding="utf-8"))["cells"]
    src = next("".join(c["source"]) for c in cells if c["cell_type"] == "code" and "for t in trace.turns:" in "".join(c["source"]))
    loop = src[src.index("for t in trace.turns:"):]
    be = Scripted(['<|action_start|><|plugin|>\n{"name": "calculator", "parameters": {"expression": "6*7"}}<|action_end|>',
                   "42"])
    trace = Agent(be, tools.subset("calculator")).run("6*7?")
    before = pl.get_language()
    pl.set_language(language)
    try:
        exec(loop, {"pl": pl, "trace": trace})
    finally:
        pl.set_language(before)
    out = capsys.readouterr().out
    if language == "zh":
        assert "第 1 轮：" in out and "第 2 轮：" in out and "第 0 轮" not in out, out
        assert trace.turns[1]["diagnosis_zh"] in out and trace.turns[1]["diagnosis"] not in out
    else:
        assert "turn 1:" in out and "turn 2:" in out and "turn 0" not in out, out
        assert trace.turns[1]["diagnosis"] in out

"""The agent's trace panel (puyu_lab/panels/agent.py): a recorded trace and a live one, its Stop button, a run
that fails (scripted backends: tests/agent/helpers.py)."""
from ..asyncutil import run_coroutine
import asyncio
import json
import time

import pytest

from puyu_lab.agent.agent import Agent, Trace

from ..agent.helpers import CALL, Scripted, Slow, tools  # noqa: F401 (tools: a fixture)


def test_trace_panel_renders_a_recorded_trace_and_streams_a_live_one(tools, tmp_path):
    from puyu_lab.panels.agent import STATIC, AgentTracePanel

    be = Scripted(["我来算。<|action_start|><|plugin|>\n{\"name\": \"calculator\", \"parameters\": "
                   "{\"expression\": \"6*7\"}}<|action_end|>\n", "6*7 = 42。"])
    tr = Agent(be, tools.subset("calculator")).run("6*7 等于多少？")
    path = tr.save(tmp_path / "trace.json")
    panel = AgentTracePanel(path)  # a recorded trace
    assert [s["kind"] for s in panel.steps] == ["thought", "call", "observation", "final"]
    assert panel.steps[1]["args"] == {"expression": "6*7"} and panel.steps[2]["text"] == '{"result": 42}'
    assert panel.status == "answered" and panel.question == "6*7 等于多少？"
    assert len(panel.turns) == 2 and "<|im_start|>" not in panel.turns[0]["prompt"]  # scripted: JSON prompt
    assert panel.turns[0]["parse"]["kind"] == "call" and panel.turns[1]["diagnosis"]
    assert panel.labels["why_no_tool"] == "为什么没有调用工具？ Why was no tool called?"
    # live: events stream into the same state
    live = AgentTracePanel()
    be2 = Scripted(["42"])
    th = live.run(Agent(be2, tools.subset("calculator")), "6*7?")
    th.join(10)
    live._push.flush()
    assert [s["kind"] for s in live.steps] == ["final"] and live.status == "answered"
    assert "answered directly" in live.turns[0]["diagnosis"]
    js = (STATIC / "agent_trace.js").read_text()
    assert "export default" in js and "http" not in js  # local ESM, nothing from a CDN
    assert Trace.load(path).to_dict() == json.loads(json.dumps(tr.to_dict()))


def test_trace_panel_is_live_stops_on_its_button_and_shows_a_failing_run(tools):
    from puyu_lab.panels.agent import AgentTracePanel

    panel = AgentTracePanel()
    th = panel.run(Agent(Slow([CALL] * 4, delay=0.01), tools.subset("calculator"), max_turns=4), "1+1?")
    assert panel.status == "running" and panel.question == "1+1?" and th.is_alive()
    deadline = time.monotonic() + 10
    while not panel.steps and time.monotonic() < deadline:
        time.sleep(0.02)
    assert panel.steps and th.is_alive()  # a step is drawn while the run goes on
    panel.stop_requested = True  # what the Stop button sets
    tr = panel.wait(timeout=5)
    assert tr.status == "stopped" and panel.status == "stopped" and len(tr.turns) < 4
    assert panel.error is None and panel.error_text == ""
    panel.run(Agent(Slow(["42"], delay=0.01), tools.subset("calculator")), "6*7?")
    assert run_coroutine(panel.wait_async(timeout=5)).answer == "42"  # what the lab's waiting cell awaits

    class Broken(Scripted):
        def generate(self, *a, **kw):
            raise ConnectionError("the endpoint went away")

    with pytest.raises(ConnectionError):
        panel.run(Agent(Broken([]), tools.subset("calculator")), "1+1?", wait=True)
    assert isinstance(panel.error, ConnectionError) and panel.trace is None
    assert panel.error_text == "ConnectionError: the endpoint went away" and panel.status == "error"
    assert panel.steps[-1]["kind"] == "error" and "went away" in panel.steps[-1]["text"]


@pytest.mark.parametrize("language", ["zh", "en"])
def test_trace_panel_badge_units_and_explanations_follow_the_course_language(tools, language):
    """The status badge and the token units come from the zh/en table; the turns and steps the panel draws carry the
    Chinese of the package's own words (``diagnosis_zh``, ``text_zh``), which its JavaScript shows where ``lang`` is zh."""
    from puyu_lab.i18n import STRINGS, get_language, set_language
    from puyu_lab.panels.agent import STATIC, STATUSES, AgentTracePanel

    before = get_language()
    set_language(language)
    try:
        panel = AgentTracePanel()
    finally:
        set_language(before)
    pick = 1 if language == "zh" else 0
    L = panel.labels
    assert L["lang"] == language
    for s in STATUSES:
        assert L[f"status_{s}"] == STRINGS[f"status_{s}"][pick]
    assert (L["tokens"], L["tok"]) == (STRINGS["tokens"][pick], STRINGS["tok"][pick])
    if language == "zh":
        shown = [L[f"status_{s}"] for s in STATUSES] + [L["tokens"], L["tok"]]
        assert not [w for w in shown if w.isascii()], shown  # no English badge or unit left
    be = Scripted(['<|action_start|><|plugin|>\n{"name": "calc", "parameters": {}}<|action_end|>', "42"])
    panel.run(Agent(be, tools.subset("calculator")), "6*7?", wait=True)
    panel.flush()
    assert panel.turns[0]["diagnosis_zh"].startswith("模型想调用工具") and panel.steps[0]["text_zh"]
    js = (STATIC / "agent_trace.js").read_text()
    for used in ('L["status_" + status]', "L.tokens", "L.tok", "t.diagnosis_zh", "s.text_zh", 'L.lang === "zh"'):
        assert used in js, used
    assert " tokens · " not in js and "} tok`" not in js  # the units come from the labels

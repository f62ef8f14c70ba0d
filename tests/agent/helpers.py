"""What the agent stage's tests share with the trace panel's (tests/panels/test_agent.py): the tool registry
fixture and the scripted backends (a unit test of the loop drives the agent without a model)."""
import json
import time

import pytest

from puyu_lab.agent.builtin import default_registry
from puyu_lab.models import Generation


@pytest.fixture
def tools():
    reg = default_registry()

    @reg.tool
    def greet(name: str, times: int = 1) -> str:
        """Greet someone.

        name: who to greet
        times: how often
        """
        return " ".join([f"hello {name}"] * times)

    return reg


class Scripted:
    """Replies from a script, through the model layer's ``generate`` signature."""

    name = "scripted"
    native_tools = False

    def __init__(self, replies):
        self.replies, self.prompts = list(replies), []

    def generate(self, messages, *, max_new_tokens=128, stop=(), watch=None, tools=None, **kw):
        self.prompts.append(messages)
        return Generation(self.replies.pop(0), json.dumps(messages, ensure_ascii=False), 10, 5, 0.01,
                          [("x", 0.9)], 0.001 if watch else None)


class Slow(Scripted):
    """Streams each reply a character at a time, ending at the next character once ``stop_flag`` is set
    (what the model layer's decode loop does)."""

    def __init__(self, replies, delay=0.02):
        super().__init__(replies)
        self.delay = delay

    def generate(self, messages, *, max_new_tokens=128, stop=(), watch=None, tools=None, stop_flag=None, **kw):
        self.prompts.append(messages)
        text, out, finish = self.replies.pop(0), "", "length"
        for ch in text:
            if stop_flag is not None and stop_flag.is_set():
                finish = "stopped"
                break
            time.sleep(self.delay)
            out += ch
        return Generation(out, json.dumps(messages, ensure_ascii=False), 10, len(out), 0.01, finish=finish)


CALL = '<|action_start|><|plugin|>\n{"name": "calculator", "parameters": {"expression": "1+1"}}<|action_end|>\n'

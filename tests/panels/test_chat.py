"""The chat panel (puyu_lab/panels/chat.py) and the chat inspector (puyu_lab/panels/finetune.py): models side by
side, streamed; a backend error shown and kept."""
import pytest

from ..finetune.helpers import ws  # noqa: F401 (a fixture)


@pytest.mark.slow
def test_chat_panel_streams_side_by_side_and_inspector(ws):
    from puyu_lab.models import HFModel
    from puyu_lab.panels import ChatPanel, inspect_chat

    base = HFModel.load("model/base", ws=ws)
    panel = ChatPanel({"base": base, "again": HFModel.load("model/base", ws=ws)}, max_new_tokens=8)
    answers = panel.ask("你好")
    assert set(answers) == {"base", "again"} and answers["base"] == answers["again"]  # greedy: same model, same text
    assert [m["role"] for m in panel.history["base"]] == ["user", "assistant"]
    assert "你好" in panel.columns["base"].value
    pieces = list(base.stream([{"role": "user", "content": "你好"}], max_new_tokens=8))
    assert "".join(pieces).strip() == answers["base"]
    view = inspect_chat(base.tok, [{"role": "user", "content": "你是谁？"}, {"role": "assistant", "content": "我是小浦。"}])
    html = view._repr_html_()
    assert html.count("background:#d5f5dd;") == sum(x != -100 for x in view.encoded.labels) > 0
    assert "every assistant turn ends" in html or "每个助手回合" in html


def test_chat_panel_shows_and_keeps_a_backend_error():
    from puyu_lab.panels import ChatPanel

    class Broken:
        name = "broken"

        def generate(self, *a, **kw):
            raise ConnectionError("the server closed the connection")

    panel = ChatPanel({"broken": Broken()})
    with pytest.raises(ConnectionError):
        panel.ask("你好")
    assert isinstance(panel.error, ConnectionError) and not panel.send_btn.disabled
    assert "ConnectionError: the server closed the connection" in panel.error_line.value
    panel.send("again")  # without waiting: the error still reaches the panel
    panel.thread.join(10)
    assert "ConnectionError" in panel.error_line.value and isinstance(panel.error, ConnectionError)

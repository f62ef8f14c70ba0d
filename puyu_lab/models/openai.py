"""Any OpenAI-compatible ``/v1/chat/completions`` endpoint (the deploy lab's llama.cpp server,
LMDeploy's, vLLM's), with the standard library only.

Native tool calling: the tools go in the request's ``tools``, calls come back as ``tool_calls``.
Streaming reads the server-sent events; a ``stop_flag`` closes the connection, which ends the
generation on the server too. An endpoint gives no log-likelihoods, so it generates only.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from ..errors import PuyuError
from .base import Generation, Model, as_messages, is_set
from .scoring import RequestCache


class OpenAIModel(Model, RequestCache):
    native_tools = True

    def __init__(self, base_url: str, model: str = "default", name: str | None = None, api_key: str = "none",
                 tool_choice: str | dict = "auto", timeout: float = 120.0):
        self.base_url, self.model = base_url.rstrip("/"), model
        self.name = name or f"{model} @ {base_url}"
        self.api_key, self.tool_choice, self.timeout = api_key, tool_choice, timeout
        self.extra_body: dict = {}  # more request fields, as the OpenAI client's extra_body (logit_bias, …)
        self.model_id = f"openai:{self.base_url}:{model}"
        self._init_cache()

    def _post(self, body: dict):
        req = urllib.request.Request(self.base_url + "/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {self.api_key}"})
        try:
            return urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", errors="replace")[:500]
            raise PuyuError(f"{self.base_url}/chat/completions answered {e.code}: {detail}",
                            zh=f"{self.base_url}/chat/completions 返回了 {e.code}：{detail}") from None
        except urllib.error.URLError as e:
            raise PuyuError(f"{self.base_url}: no answer ({e.reason}) — is the server running? "
                            "(start it with puyu_lab.deploy.serve.Server)",
                            zh=f"{self.base_url}：没有响应（{e.reason}）——服务启动了吗？"
                               "（用 puyu_lab.deploy.serve.Server 启动）") from None

    def body(self, messages: list[dict], *, max_new_tokens: int = 64, temperature: float = 0.0, stop=(),
             tools=None, stream: bool = False) -> dict:
        body = {"model": self.model, "messages": messages, "max_tokens": max_new_tokens, "temperature": temperature}
        if tools:
            body["tools"] = [{"type": "function", "function": t} for t in tools]
            body["tool_choice"] = self.tool_choice
        if stop:
            body["stop"] = list(stop)
        if stream:
            body["stream"] = True
        body.update(self.extra_body)
        return body

    def completion(self, messages: list[dict], max_new_tokens: int = 64, temperature: float = 0.0) -> dict:
        """The endpoint's raw JSON answer (``concurrency_bench`` reads its ``usage``)."""
        with self._post(self.body(messages, max_new_tokens=max_new_tokens, temperature=temperature)) as r:
            return json.loads(r.read())

    def _pieces(self, inp, *, max_new_tokens, stop, temperature, watch, stop_flag, tools, keep_special, seed,
                ignore_eos):
        t0 = time.perf_counter()
        msgs = as_messages(inp)
        streaming = not tools  # tool calls come whole, in one answer
        body = self.body(msgs, max_new_tokens=max_new_tokens, temperature=temperature, stop=stop, tools=tools,
                         stream=streaming)
        prompt = json.dumps(body, ensure_ascii=False, indent=1)
        if not streaming:
            with self._post(body) as r:
                resp = json.loads(r.read())
            msg = resp["choices"][0]["message"]
            calls = None
            if msg.get("tool_calls"):
                calls = [{"id": c.get("id") or f"call_{i}", "name": c["function"]["name"],
                          "arguments": c["function"].get("arguments", "{}")} for i, c in enumerate(msg["tool_calls"])]
            usage = resp.get("usage") or {}
            text = msg.get("content") or ""
            if text:
                yield text
            yield Generation(text, prompt, usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0),
                             time.perf_counter() - t0, tool_calls=calls,
                             finish=resp["choices"][0].get("finish_reason") or "")
            return
        parts, n, finish = [], 0, "length"
        with self._post(body) as r:
            for raw in r:
                if is_set(stop_flag):
                    finish = "stopped"
                    break
                line = raw.decode("utf-8").strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                choice = json.loads(data)["choices"][0]
                piece = choice.get("delta", {}).get("content")
                if piece:
                    parts.append(piece)
                    n += 1
                    yield piece
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
        yield Generation("".join(parts), prompt, 0, n, time.perf_counter() - t0, finish=finish)

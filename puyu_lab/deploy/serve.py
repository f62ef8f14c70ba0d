"""Serve a GGUF with llama-cpp-python's OpenAI-compatible server, on loopback only.

``Server`` starts ``python -m llama_cpp.server`` as a child process bound to 127.0.0.1, waits for
``/v1/models``, and stops it (terminate, then kill). The child is tied to its parent: on Linux it
gets SIGKILL when the parent (the notebook's kernel) dies, so no server outlives the kernel.

Talk to it (or to LMDeploy's, vLLM's) with :class:`puyu_lab.models.OpenAIModel`;
``concurrency_bench`` measures it.
"""
from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from ..errors import PuyuError
from ..models.gguf import check_gguf
from ..models.openai import OpenAIModel

LOOPBACK = "127.0.0.1"
_LIVE: set["Server"] = set()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child before exec
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    os.setsid()


class ServerError(PuyuError):
    pass


class Server:
    def __init__(self, model: str | Path, *, port: int | None = None, n_ctx: int = 1024, threads: int | None = None,
                 model_alias: str | None = None, chat_format: str | None = None):
        self.model = check_gguf(model)
        self.chat_format = chat_format  # None: the GGUF's own chat template
        self.port = port or _free_port()
        self.n_ctx, self.threads = n_ctx, threads or min(4, os.cpu_count() or 1)
        self.alias = model_alias or self.model.stem
        self.proc: subprocess.Popen | None = None
        self.log = Path(os.environ.get("TMPDIR", "/tmp")) / f"puyu-server-{self.port}.log"

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/v1"

    def start(self, timeout: float = 60.0) -> "Server":
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model), "--host", LOOPBACK,
               "--port", str(self.port), "--n_ctx", str(self.n_ctx), "--n_threads", str(self.threads),
               "--model_alias", self.alias, "--type_k", "0", "--type_v", "0"]
        if self.chat_format:
            cmd += ["--chat_format", self.chat_format]
        self._logf = open(self.log, "w")
        self.proc = subprocess.Popen(cmd, stdout=self._logf, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        _LIVE.add(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-600:]
                self.stop()
                raise ServerError(f"the server exited with code {self.proc.returncode}: {tail}")
            try:
                self.models()
                return self
            except OSError:
                time.sleep(0.25)
        self.stop()
        raise ServerError(f"the server did not answer within {timeout:.0f} s (log: {self.log})")

    def models(self) -> dict:
        with urllib.request.urlopen(self.base_url + "/models", timeout=2) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        p = self.proc
        if p is not None and p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=10)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=10)
        if getattr(self, "_logf", None):
            self._logf.close()
        _LIVE.discard(self)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> "Server":
        return self.start() if not self.running else self

    def __exit__(self, *exc) -> None:
        self.stop()


@atexit.register
def _stop_all() -> None:
    for s in list(_LIVE):
        s.stop()


def concurrency_bench(client: OpenAIModel, prompts: list[str], clients=(1, 2, 4, 8), requests_per_client: int = 2,
                      max_new_tokens: int = 32) -> list[dict]:
    """Requests/s, generated tokens/s and p50/p95 latency with 1, 2, 4, 8 concurrent clients."""
    import numpy as np

    rows = []
    for n in clients:
        lat: list[float] = []
        toks: list[int] = []
        lock = threading.Lock()

        def worker(k: int) -> None:
            for j in range(requests_per_client):
                p = prompts[(k * requests_per_client + j) % len(prompts)]
                t = time.perf_counter()
                out = client.completion([{"role": "user", "content": p}], max_new_tokens)
                dt = time.perf_counter() - t
                with lock:
                    lat.append(dt)
                    toks.append(out.get("usage", {}).get("completion_tokens", 0))

        t0 = time.perf_counter()
        ths = [threading.Thread(target=worker, args=(k,)) for k in range(n)]
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        wall = time.perf_counter() - t0
        rows.append({"clients": n, "requests": len(lat), "requests_per_s": len(lat) / wall,
                     "tokens_per_s": sum(toks) / wall, "p50_s": float(np.percentile(lat, 50)),
                     "p95_s": float(np.percentile(lat, 95))})
    return rows

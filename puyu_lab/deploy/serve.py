"""Serve a GGUF with an OpenAI-compatible server, on loopback only: llama-cpp-python's
``llama_cpp.server`` (one request at a time) or llama.cpp's own ``llama-server`` (``parallel`` slots and
continuous batching — what LMDeploy's persistent batching does for a GPU).

``Server`` starts it bound to 127.0.0.1 under a small launcher
(:mod:`puyu_lab.deploy.launch`), waits for ``/v1/models``, and stops it (terminate, then kill). The
server is tied to the *process* that started it, not to a thread: when the notebook's kernel dies,
however it dies, the launcher sees its pipe close and kills the server — a server started from a
panel's worker thread keeps running after that thread ends. The log goes to ``log_dir`` (the lab
passes the workspace's ``logs/``) or to a private temporary folder removed on stop; ``api_key``
makes every request need ``Authorization: Bearer <key>``.

Talk to it (or to LMDeploy's, vLLM's) with :class:`puyu_lab.models.OpenAIModel`;
``concurrency_bench`` measures it.
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from ..errors import PuyuError
from ..models.gguf import check_gguf
from ..models.openai import OpenAIModel

LOOPBACK = "127.0.0.1"
# environment variables llama_cpp.server (pydantic settings) or uvicorn would take over our arguments
_SERVER_ENV = {"HOST", "PORT", "API_KEY", "CONFIG_FILE", "MODEL", "INTERRUPT_REQUESTS", "SSL_KEYFILE",
               "SSL_CERTFILE", "N_CTX", "N_THREADS", "CHAT_FORMAT", "MODEL_ALIAS"}
# and those llama-server would take over (it reads every option from LLAMA_ARG_*, the key from LLAMA_API_KEY)
_LLAMA_SERVER_ENV_PREFIXES = ("LLAMA_ARG_", "LLAMA_API_KEY")
KINDS = ("llama_cpp.server", "llama-server")
_LIVE: set["Server"] = set()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class ServerError(PuyuError):
    pass


class Server:
    def __init__(self, model: str | Path, *, port: int | None = None, n_ctx: int = 1024, threads: int | None = None,
                 model_alias: str | None = None, chat_format: str | None = None, api_key: str | None = None,
                 log_dir: str | Path | None = None, kind: str = "llama_cpp.server", parallel: int = 4):
        if kind not in KINDS:
            from ..errors import InputError

            raise InputError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}",
                             zh=f"kind 只能是 {', '.join(KINDS)} 之一，而不是 {kind!r}")
        self.kind, self.parallel = kind, parallel  # parallel: llama-server's slots (each with n_ctx tokens)
        self.model = check_gguf(model)
        self.chat_format = chat_format  # None: the GGUF's own chat template
        self.port = port or _free_port()
        self.n_ctx, self.threads = n_ctx, threads or min(4, os.cpu_count() or 1)
        self.alias = model_alias or self.model.stem
        self.api_key = api_key
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.log: Path | None = None
        self.proc: subprocess.Popen | None = None
        self._tmp: str | None = None  # the private log folder when no log_dir was given
        self._watch_w: int | None = None  # our end of the launcher's pipe: closed when this process ends

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/v1"

    def client(self, model: str | None = None) -> OpenAIModel:
        """An OpenAI-compatible client of this server (with its API key)."""
        return OpenAIModel(self.base_url, model or self.alias, api_key=self.api_key or "none")

    def command(self) -> list[str]:
        if self.kind == "llama-server":
            from .llamatools import tool

            # -c is the whole cache, shared by the slots: n_ctx tokens each; continuous batching is its default
            return [str(tool("llama-server")), "-m", str(self.model), "--host", LOOPBACK, "--port", str(self.port),
                    "-c", str(self.n_ctx * self.parallel), "-np", str(self.parallel), "-t", str(self.threads),
                    "--alias", self.alias, "--cont-batching", "--no-webui"]
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model), "--host", LOOPBACK,
               "--port", str(self.port), "--n_ctx", str(self.n_ctx), "--n_threads", str(self.threads),
               "--model_alias", self.alias, "--type_k", "0", "--type_v", "0",
               # queue a second request instead of cutting the running one off (its default interrupts it)
               "--interrupt_requests", "False"]
        if self.chat_format:
            cmd += ["--chat_format", self.chat_format]
        return cmd

    def env(self) -> dict:
        """The server's environment: llama_cpp.server reads settings from environment variables too
        (and uvicorn ``HOST`` / ``PORT`` over the command line), so none of the kernel's reach it; the
        API key goes this way, not on the command line where ``ps`` shows it."""
        env = {k: v for k, v in os.environ.items()
               if k.upper() not in _SERVER_ENV and not k.upper().startswith(_LLAMA_SERVER_ENV_PREFIXES)}
        if self.api_key:
            env["LLAMA_API_KEY" if self.kind == "llama-server" else "API_KEY"] = self.api_key
        return env

    def start(self, timeout: float = 60.0) -> "Server":
        if self.running:
            return self
        try:
            self._launch()
        except BaseException:
            self.stop()
            raise
        return self._wait(timeout)

    def _launch(self) -> None:
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            folder = self.log_dir
        else:
            self._tmp = tempfile.mkdtemp(prefix="puyu-server-")  # mode 0700, a name nobody can guess
            folder = Path(self._tmp)
        self.log = folder / f"server-{self.port}.log"
        self._logf = open(self.log, "w")
        r, self._watch_w = os.pipe()  # both ends non-inheritable: only the launcher gets `r`, by pass_fds
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "puyu_lab.deploy.launch", "--watch-fd", str(r), "--", *self.command()],
                stdout=self._logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, pass_fds=(r,),
                start_new_session=True, env=self.env())
        finally:
            os.close(r)
        _LIVE.add(self)

    def _wait(self, timeout: float) -> "Server":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-600:]
                self.stop()
                raise ServerError(f"the server exited with code {self.proc.returncode}: {tail}",
                                  zh=f"服务进程已退出，退出码 {self.proc.returncode}：{tail}")
            try:
                self.models()
                return self
            except OSError:
                time.sleep(0.25)
        tail = self.log.read_text(errors="replace")[-600:]
        self.stop()
        raise ServerError(f"the server did not answer within {timeout:.0f} s; its log ends: {tail}",
                          zh=f"服务在 {timeout:.0f} 秒内没有响应；日志末尾是：{tail}")

    def models(self) -> dict:
        req = urllib.request.Request(self.base_url + "/models")
        if self.api_key:
            req.add_header("Authorization", f"Bearer {self.api_key}")
        with urllib.request.urlopen(req, timeout=2) as r:
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
        fd, self._watch_w = self._watch_w, None  # taken first: a second stop() never closes it again
        if fd is not None:
            os.close(fd)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
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


def _load(n: int, requests_per_client: int, one) -> tuple[list, list, float]:
    """``n`` client threads, each calling ``one(k, j)`` for its requests; results, errors and the wall time."""
    results, errors, lock = [], [], threading.Lock()

    def worker(k: int) -> None:
        for j in range(requests_per_client):
            try:
                r = one(k, j)
            except Exception as e:  # a failed request is counted, not hidden
                with lock:
                    errors.append(str(e)[:200])
                continue
            with lock:
                results.append(r)

    t0 = time.perf_counter()
    ths = [threading.Thread(target=worker, args=(k,)) for k in range(n)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    return results, errors, time.perf_counter() - t0


def concurrency_bench(client: OpenAIModel, prompts: list[str], clients=(1, 2, 4, 8), requests_per_client: int = 2,
                      max_new_tokens: int = 32, ttft: bool = True) -> list[dict]:
    """With 1, 2, 4, 8 concurrent clients: requests/s, generated tokens/s (the server's own ``usage`` count) and
    p50/p95 latency of whole requests; then, with ``ttft``, one *streamed* request per client under the same
    load, for the p50/p95 time to the first token. Throughput comes from plain requests because parsing a
    token-by-token stream in the client costs CPU the server shares on a small machine (on 2 cores it hid
    most of llama-server's batching gain)."""
    import numpy as np

    def msgs(k, j):
        return [{"role": "user", "content": prompts[(k * requests_per_client + j) % len(prompts)]}]

    def plain(k, j):
        t = time.perf_counter()
        out = client.completion(msgs(k, j), max_new_tokens)
        return time.perf_counter() - t, out.get("usage", {}).get("completion_tokens", 0)

    def streamed(k, j):
        t = time.perf_counter()
        first = None
        for _piece in client.generate(msgs(k, j), max_new_tokens=max_new_tokens, stream=True):
            if first is None:
                first = time.perf_counter() - t
        return first if first is not None else time.perf_counter() - t

    rows = []
    for n in clients:
        res, errors, wall = _load(n, requests_per_client, plain)
        if not res:
            raise ServerError(f"every request failed with {n} clients: {errors[:1]}",
                              zh=f"{n} 个客户端并发时，所有请求都失败了：{errors[:1]}")
        lat = [r[0] for r in res]
        row = {"clients": n, "requests": len(res), "failed": len(errors), "requests_per_s": len(res) / wall,
               "tokens_per_s": sum(r[1] for r in res) / wall, "p50_s": float(np.percentile(lat, 50)),
               "p95_s": float(np.percentile(lat, 95))}
        if ttft:
            firsts, errs, _ = _load(n, 1, streamed)
            row.update(ttft_p50_s=float(np.percentile(firsts, 50)) if firsts else float("nan"),
                       ttft_p95_s=float(np.percentile(firsts, 95)) if firsts else float("nan"))
            row["failed"] += len(errs)
        rows.append(row)
    return rows

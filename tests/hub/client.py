"""A learner (or the teacher) using the hub over HTTP, as a browser would: log in with the password the roster
printed, start the server, make an API token of their own, run code in a kernel of their server (REST + the
kernel's websocket, with tornado: what JupyterLab's page does)."""
from __future__ import annotations

import asyncio
import json
import time
import uuid

import requests


class HubUser:
    def __init__(self, base: str, name: str, password: str):
        self.base, self.name, self.password = base.rstrip("/"), name, password
        self.s = requests.Session()
        self.token: str | None = None

    def login(self) -> requests.Response:
        self.s.get(f"{self.base}/hub/login", timeout=30)
        xsrf = self.s.cookies.get("_xsrf", "")
        return self.s.post(f"{self.base}/hub/login", data={"username": self.name, "password": self.password,
                                                            "_xsrf": xsrf}, timeout=60, allow_redirects=False)

    def make_token(self) -> str:
        xsrf = self.s.cookies.get("_xsrf", "")
        r = self.s.post(f"{self.base}/hub/api/users/{self.name}/tokens", headers={"X-XSRFToken": xsrf},
                        json={"note": "test", "expires_in": 3600}, timeout=30)
        r.raise_for_status()
        self.token = r.json()["token"]
        return self.token

    def api(self, method: str, path: str, token: str | None = None, **kw) -> requests.Response:
        tok = token or self.token
        return requests.request(method, f"{self.base}{path}", headers={"Authorization": f"token {tok}"},
                                timeout=kw.pop("timeout", 60), **kw)

    def start_server(self, timeout: float = 180) -> dict:
        r = self.api("POST", f"/hub/api/users/{self.name}/server")
        assert r.status_code in (201, 202, 400), r.text  # 400: already running
        deadline = time.time() + timeout
        while time.time() < deadline:
            u = self.api("GET", f"/hub/api/users/{self.name}").json()
            srv = (u.get("servers") or {}).get("", {})
            if srv.get("ready"):
                return srv
            time.sleep(1)
        raise AssertionError(f"{self.name}'s server did not start in {timeout} s")

    def server_info(self) -> dict:
        return (self.api("GET", f"/hub/api/users/{self.name}").json().get("servers") or {}).get("", {})

    def start_kernel(self) -> str:
        r = self.api("POST", f"/user/{self.name}/api/kernels", json={"name": "python3"})
        r.raise_for_status()
        return r.json()["id"]

    def kernel(self, kid: str) -> dict | None:
        r = self.api("GET", f"/user/{self.name}/api/kernels/{kid}")
        return r.json() if r.ok else None

    def execute(self, kid: str, code: str, timeout: float = 120) -> dict:
        """Run ``code`` in kernel ``kid``; returns {"status", "stdout", "stderr", "error"} (status: the reply's, or
        "died" when the kernel ended meanwhile, or "timeout")."""
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(1) as pool:  # its own event loop, whatever runs in this thread
            return pool.submit(asyncio.run, self._execute(kid, code, timeout)).result()

    async def _execute(self, kid: str, code: str, timeout: float) -> dict:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        url = self.base.replace("http", "ws", 1) + f"/user/{self.name}/api/kernels/{kid}/channels"
        req = HTTPRequest(url, headers={"Authorization": f"token {self.token}"}, request_timeout=timeout)
        ws = await websocket_connect(req)
        msg_id = uuid.uuid4().hex
        ws.write_message(json.dumps({
            "header": {"msg_id": msg_id, "username": self.name, "session": uuid.uuid4().hex, "msg_type": "execute_request",
                       "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        out = {"status": None, "stdout": "", "stderr": "", "error": ""}
        idle = False
        deadline = time.monotonic() + timeout
        try:
            while not (idle and out["status"]):
                left = deadline - time.monotonic()
                if left <= 0:
                    out["status"] = out["status"] or "timeout"
                    break
                raw = await asyncio.wait_for(ws.read_message(), left)
                if raw is None:
                    out["status"] = out["status"] or "closed"
                    break
                m = json.loads(raw)
                t, c = m["msg_type"], m["content"]
                if t == "status" and c.get("execution_state") in ("restarting", "dead"):
                    out["status"] = "died"  # the server's own word: the kernel process ended
                    break
                if m.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                if t == "stream":
                    out[c["name"]] += c["text"]
                elif t == "error":
                    out["error"] += f"{c['ename']}: {c['evalue']}"
                elif t == "status" and c.get("execution_state") == "idle":
                    idle = True
                elif t == "execute_reply":
                    out["status"] = c["status"]
        except asyncio.TimeoutError:
            out["status"] = out["status"] or "timeout"
        finally:
            ws.close()
        return out

"""``GET /puyu-lab/api/chain``: the workspace's chain state, for an authenticated user only."""
from __future__ import annotations

import hashlib
import json
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

ROUTE = "puyu-lab/api/chain"


def find_labs(root: Path) -> Path | None:
    """``labs/`` under the server's root (or the root itself when it is the labs folder)."""
    for cand in (root / "labs", root):
        if cand.is_dir() and any(cand.glob("0*_*.ipynb")):
            return cand
    return None


_CHECKS: dict = {}  # (workspace, chain version) → {lab: [passed, total]} or the Future computing it
_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="puyu-checks")


def _compute(ws) -> dict:
    from puyu_lab.checks import run

    return {lab: list(pt) for lab, pt in run(ws, scope="artifact").by_lab().items()}


def lab_checks(ws, version: str) -> dict | None:
    """Each lab's self-checks passed / total on ``ws`` (``puyu_lab.checks``), computed in the background
    once per chain version (they read artifacts: seconds); ``None`` while they run, so the artifact status
    never waits for them."""
    key = (str(ws.root), version)
    val = _CHECKS.get(key)
    if val is None:
        if len(_CHECKS) > 16:
            _CHECKS.clear()
        val = _CHECKS[key] = _POOL.submit(_compute, ws)
    if isinstance(val, Future):
        if not val.done():
            return None
        val = _CHECKS[key] = val.result()  # an exception goes to the caller, which shows it
    return val


def chain_state(root_dir) -> dict:
    from puyu_lab.workspace import Workspace, project_home

    root = Path(root_dir).expanduser().resolve()
    ws = Workspace(project_home(root))
    state = ws.chain()
    try:
        by_lab = lab_checks(ws, state["version"])
    except Exception as e:  # the artifact status still shows
        by_lab, state["checks_error"] = {}, f"{type(e).__name__}: {e}"
    for st in state["stages"]:
        if by_lab is None:
            st["checks"] = None  # still running: the sidebar shows "…"
        else:
            passed, total = by_lab.get(st["lab"], (0, 0))
            st["checks"] = {"passed": passed, "total": total}
    # the version the sidebar re-renders on: the artifacts', and the checks' once they are in
    state["version"] += "-" + ("pending" if by_lab is None else
                               hashlib.sha1(json.dumps(by_lab, sort_keys=True).encode()).hexdigest()[:8])
    labs = find_labs(root)
    state["labs_dir"] = labs.relative_to(root).as_posix() if labs else None
    for st in state["stages"]:
        nb = labs / st["lab"] if labs else None
        st["lab_path"] = nb.relative_to(root).as_posix() if nb is not None and nb.is_file() else None
    tour = labs / "00_tour.ipynb" if labs else None
    state["tour_path"] = tour.relative_to(root).as_posix() if tour is not None and tour.is_file() else None
    return state


class ChainHandler(APIHandler):
    def initialize(self, root_dir: str):
        self.root_dir = root_dir

    @tornado.web.authenticated
    async def get(self):
        from tornado.ioloop import IOLoop

        try:  # reading the workspace touches the disk: off the server's event loop
            state = await IOLoop.current().run_in_executor(None, chain_state, self.root_dir)
        except Exception as e:  # the sidebar shows the message instead of a blank panel
            self.set_status(500)
            self.finish(json.dumps({"error": f"{type(e).__name__}: {e}"}))
            return
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(state, ensure_ascii=False, default=str))


def setup_handlers(web_app, root_dir: str) -> None:
    base = web_app.settings["base_url"]
    web_app.add_handlers(".*$", [(url_path_join(base, ROUTE), ChainHandler, {"root_dir": root_dir})])

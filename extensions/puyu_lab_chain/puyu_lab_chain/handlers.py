"""``GET /puyu-lab/api/chain``: the workspace's chain state, for an authenticated user only."""
from __future__ import annotations

import json
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


_CHECKS: dict = {}  # (workspace, chain version) → {lab: [passed, total]}: checks rerun only when an artifact changes


def lab_checks(ws, version: str) -> dict:
    """Each lab's self-checks passed / total on ``ws`` (``puyu_lab.checks``), cached per chain version."""
    key = (str(ws.root), version)
    if key not in _CHECKS:
        from puyu_lab.checks import run

        card = run(ws, scope="artifact")
        _CHECKS.clear()
        _CHECKS[key] = {lab: list(pt) for lab, pt in card.by_lab().items()}
    return _CHECKS[key]


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
        passed, total = by_lab.get(st["lab"], (0, 0))
        st["checks"] = {"passed": passed, "total": total}
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

        try:  # the checks read artifacts (seconds when one changed): off the server's event loop
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

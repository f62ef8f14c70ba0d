"""Real JupyterLab on a loopback port, driven by Debian's Chromium through Playwright."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

from ..conftest import ROOT, free_port
from .shim import CHROMIUM, CHROMIUM_FLAGS

SHOTS = ROOT / "test-artifacts" / "browser"


class Lab:
    """A JupyterLab server (the ``make lab`` command line) on a copy of the labs, with its own
    workspace and settings."""

    def __init__(self, home: Path, tmp: Path, lang: str = "en"):
        from puyu_lab.cli import lab_command

        self.port, self.token, self.home = free_port(), uuid.uuid4().hex, home
        # a copy of labs/: JupyterLab saves what runs in the page, the repository's notebooks stay clean
        root = tmp / "labs"
        shutil.copytree(ROOT / "labs", root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        self.root = root
        settings = tmp / "settings"
        notif = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
        notif.parent.mkdir(parents=True, exist_ok=True)
        notif.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        extra = [f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={tmp / 'lab-workspaces'}",
                 "--LabApp.expose_app_in_browser=True"]
        # the language: JupyterLab's interface (lab_command) and the kernels' (PUYU_LAB_LANG) both
        env = dict(os.environ, PUYU_LAB_HOME=str(home), PUYU_LAB_PROFILE="quick", PUYU_LAB_LANG=lang,
                   JUPYTER_RUNTIME_DIR=str(tmp / "runtime"), XDG_CACHE_HOME=str(tmp / "cache"))
        self.log = tmp / "jupyterlab.log"
        self.proc = subprocess.Popen(lab_command(self.port, token=self.token, root=root, extra=extra, lang=lang), env=env,
                                     cwd=ROOT, stdout=open(self.log, "w"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 120
        while True:
            try:
                if requests.get(f"{self.base}/api/status", params={"token": self.token}, timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            assert time.time() < deadline, "JupyterLab did not start in 120 s"
            time.sleep(0.3)

    @property
    def url(self) -> str:
        return f"{self.base}/lab?token={self.token}"

    def api(self, path: str, token: str | None = "own") -> requests.Response:
        headers = {} if token is None else {"Authorization": f"token {self.token if token == 'own' else token}"}
        return requests.get(f"{self.base}/{path}", headers=headers, timeout=10)

    def shutdown_kernels(self) -> list[str]:
        """Shut down every kernel this server runs (through its REST API), so none outlives the test that
        needed it: an idle kernel of the pretraining test otherwise ran beside the whole chain."""
        r = requests.get(f"{self.base}/api/kernels", params={"token": self.token}, timeout=10)
        r.raise_for_status()
        ids = [k["id"] for k in r.json()]
        for kid in ids:
            requests.delete(f"{self.base}/api/kernels/{kid}", params={"token": self.token}, timeout=30)
        return ids

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)


@pytest.fixture(scope="package")  # closed after the browser tests: Playwright's sync API keeps an event loop
def browser():                      # running in the main thread, which later tests' asyncio.run() would trip on
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium; .ci/run does)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="session")
def shots() -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS


def open_lab(browser, lab: Lab):
    page = browser.new_page(viewport={"width": 1500, "height": 950}, locale="en-US")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(lab.url)
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.started !== undefined", timeout=90_000)
    page.evaluate("() => window.jupyterapp.started")
    page.wait_for_selector("#jp-main-dock-panel", timeout=60_000)
    page.errors = errors
    return page

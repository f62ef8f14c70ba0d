"""`make lab` starts a real JupyterLab: /lab answers and the REST API lists the labs."""
import contextlib
import os
import signal
import subprocess
import time
import uuid

import pytest
import requests

from .conftest import ROOT, free_port

pytestmark = [pytest.mark.server, pytest.mark.slow]


def wait_for_lab(proc, base: str, token: str, limit_s: float = 180) -> None:
    """Until the server answers /api/status, failing with its output if it exits first."""
    deadline = time.time() + limit_s
    while True:
        try:
            if requests.get(f"{base}/api/status", params={"token": token}, timeout=2).ok:
                return
        except requests.ConnectionError:
            pass
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() < deadline, f"JupyterLab did not start in {limit_s:.0f} s"
        time.sleep(0.5)


@contextlib.contextmanager
def serving(cmd: list[str], env: dict, port: int, token: str):
    """JupyterLab started by ``cmd`` (in its own session) and answering on ``port``: its base URL. Afterwards the
    whole process group is stopped (killed if it has not ended 20 s after SIGTERM)."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_lab(proc, base, token)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_make_lab_serves_the_labs():
    port, token = free_port(), uuid.uuid4().hex
    env = dict(os.environ, PUYU_LAB_TOKEN=token)
    with serving(["make", "-s", "lab", f"PORT={port}", f"LAB_ARGS=--token {token}"], env, port, token) as base:
        headers = {"Authorization": f"token {token}"}
        lab = requests.get(f"{base}/lab", headers=headers, timeout=10)
        assert lab.status_code == 200 and "JupyterLab" in lab.text
        listing = requests.get(f"{base}/api/contents/", headers=headers, timeout=10).json()
        names = {item["name"] for item in listing["content"]}
        assert "00_tour.ipynb" in names
        assert requests.get(f"{base}/api/contents/", timeout=10).status_code == 403, "no token, no listing"


@pytest.mark.parametrize("lang, locale", [("zh", "zh_CN"), ("en", "en")])
def test_jupyterlab_speaks_the_course_language(tmp_path, monkeypatch, lang, locale):
    """PUYU_LAB_LANG picks JupyterLab's own interface language too: its settings say the locale and the
    zh-CN language pack answers with Chinese menus."""
    from puyu_lab.cli import lab_command

    port, token = free_port(), uuid.uuid4().hex
    monkeypatch.setenv("PUYU_LAB_LANG", lang)  # `puyu-lab lab` reads the choice when it builds the command
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "user-settings"))  # no earlier choice of the learner's
    headers = {"Authorization": f"token {token}"}
    with serving(lab_command(port, token=token), env, port, token) as base:
        setting = requests.get(f"{base}/lab/api/settings/@jupyterlab/translation-extension:plugin",
                               headers=headers, timeout=10).json()
        # the overrides become the schema's default; the learner's own choice (user settings) stays empty
        assert setting["schema"]["properties"]["locale"]["default"] == locale, setting["schema"]["properties"]
        packs = requests.get(f"{base}/lab/api/translations/", headers=headers, timeout=10).json()["data"]
        assert "zh_CN" in packs, f"the zh-CN language pack is not installed: {sorted(packs)}"
        if lang == "zh":
            bundle = requests.get(f"{base}/lab/api/translations/zh_CN", headers=headers, timeout=10).json()
            menus = bundle["data"]["jupyterlab"]
            assert any("\u4e00" <= ch <= "\u9fff" for v in list(menus.values())[:200] for ch in str(v)), \
                "the zh-CN pack's JupyterLab strings hold no Chinese"

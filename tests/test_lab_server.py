"""`make lab` starts a real JupyterLab: /lab answers and the REST API lists the labs."""
import os
import signal
import subprocess
import time
import uuid

import pytest
import requests

from .conftest import ROOT, free_port

pytestmark = [pytest.mark.server, pytest.mark.slow]


def test_make_lab_serves_the_labs():
    port, token = free_port(), uuid.uuid4().hex
    env = dict(os.environ, PUYU_LAB_TOKEN=token)
    proc = subprocess.Popen(["make", "-s", "lab", f"PORT={port}", f"LAB_ARGS=--token {token}"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                if requests.get(f"{base}/api/status", params={"token": token}, timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None, proc.stdout.read()
            assert time.time() < deadline, "JupyterLab did not start in 180 s"
            time.sleep(0.5)
        headers = {"Authorization": f"token {token}"}
        lab = requests.get(f"{base}/lab", headers=headers, timeout=10)
        assert lab.status_code == 200 and "JupyterLab" in lab.text
        listing = requests.get(f"{base}/api/contents/", headers=headers, timeout=10).json()
        names = {item["name"] for item in listing["content"]}
        assert "00_tour.ipynb" in names
        assert requests.get(f"{base}/api/contents/", timeout=10).status_code == 403, "no token, no listing"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)

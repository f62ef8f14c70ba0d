"""The hub's parts without a hub: the roster's names and errors (in both languages), the checks ``hub start`` makes
before it starts anything, the JupyterHub config it writes, the kernel spec, a learner's cgroup on this machine,
and the capacity estimate."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from puyu_lab.errors import InputError


@pytest.fixture
def open_tmp():
    """A scratch folder every account may pass through (pytest's own lives under a 0700 folder of root's)."""
    import shutil
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="puyu-hub-parts-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_learner_names_from_a_count_or_a_csv(tmp_path):
    from puyu_lab.hub.accounts import plan_names, read_csv

    assert [n for n, _ in plan_names(3, "learner", None)] == ["learner01", "learner02", "learner03"]
    assert plan_names(120, "s", None)[0][0] == "s001"
    f = tmp_path / "class.csv"
    f.write_text("Username,password\nzhang3,\nli4,Pa55-word\n\n", encoding="utf-8")
    assert read_csv(str(f)) == [("zhang3", None), ("li4", "Pa55-word")]
    f.write_text("name\nzhang3\n", encoding="utf-8")
    with pytest.raises(InputError, match="username") as e:
        read_csv(str(f))
    assert "表头" in e.value.zh
    f.write_text("username\nzhang3\nZhang San\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"class.csv:3: 'zhang san' is not a usable account name") as e:
        read_csv(str(f))
    assert "class.csv:3" in e.value.zh and "账户名" in e.value.zh
    with pytest.raises(InputError, match="--learners N") as e:
        plan_names(None, "learner", None)
    assert "--learners N" in e.value.zh


def test_roster_and_start_need_root(tmp_path, monkeypatch):
    from puyu_lab.hub.accounts import State, make_roster

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(InputError, match="run it as root") as e:
        make_roster(State(tmp_path), learners=2)
    assert "root" in e.value.zh and "sudo puyu-lab hub roster" in e.value.zh


def test_bind_addresses():
    from puyu_lab.hub.config import HubSettings

    assert HubSettings(bind="0.0.0.0:9000").bind_url() == "http://0.0.0.0:9000/"
    assert HubSettings(bind="10.0.0.5").bind_url() == "http://10.0.0.5:8000/"
    assert HubSettings(bind="10.0.0.5:443", ssl_cert="c.pem").bind_url() == "https://10.0.0.5:443/"
    with pytest.raises(InputError, match="--bind") as e:
        HubSettings(bind="host:port").bind_url()
    assert "--bind" in e.value.zh


def test_the_kernel_spec_isolates_the_kernel_network():
    from puyu_lab.hub.config import kernel_spec

    spec = kernel_spec("/usr/bin/bwrap")
    argv = spec["argv"]
    assert argv[0] == "/usr/bin/bwrap" and "--unshare-net" in argv and "--die-with-parent" in argv
    assert argv[argv.index("--") + 1:] == [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    assert spec["interrupt_mode"] == "message"  # bwrap is the process the server signals


def test_start_refuses_a_shared_folder_learners_could_change_or_cannot_reach(open_tmp):
    from puyu_lab.hub.config import check_reachable, check_shared

    tmp_path = open_tmp
    shared = tmp_path / "opt" / "venv"
    (shared / "lib").mkdir(parents=True)
    (shared / "lib" / "mod.py").write_text("x = 1\n")
    for d in (tmp_path / "opt", shared, shared / "lib"):
        os.chmod(d, 0o755)
    os.chmod(shared / "lib" / "mod.py", 0o644)
    check_shared([shared], learner_uids={12345})
    os.chmod(shared / "lib" / "mod.py", 0o666)
    with pytest.raises(InputError, match="learners could change this shared file") as e:
        check_shared([shared], learner_uids={12345})
    assert "chmod -R go-w" in e.value.zh
    os.chmod(shared / "lib" / "mod.py", 0o644)
    with pytest.raises(InputError, match="learners could change"):
        check_shared([shared], learner_uids={os.stat(shared / "lib" / "mod.py").st_uid})
    os.chmod(tmp_path / "opt", 0o700)
    try:
        with pytest.raises(InputError, match="learners cannot pass through this folder") as e:
            check_reachable([shared])
        assert "/opt/puyu-lab" in e.value.zh
    finally:
        os.chmod(tmp_path / "opt", 0o755)


def test_unreachable_folder_is_named(open_tmp):
    from puyu_lab.hub.config import check_reachable

    private = open_tmp / "p"
    (private / "share").mkdir(parents=True)
    os.chmod(private, 0o700)
    with pytest.raises(InputError, match=f"{private}: learners cannot pass through"):
        check_reachable([private / "share"])


def test_the_config_jupyterhub_loads(tmp_path):
    """``configure`` turns hub.json into JupyterHub's traitlets config: PAM for the class's groups, the capped
    spawner (systemd's where systemd runs), the proxy from npm with its token from the private folder, the kernels
    on unix sockets, the learners' environment."""
    from traitlets.config import Config

    from puyu_lab.hub.accounts import Roster
    from puyu_lab.hub.config import HubSettings, configure

    private = tmp_path / "private"
    private.mkdir()
    (private / "proxy-token").write_text("t0ken\n")
    s = HubSettings(bind="0.0.0.0:8000", mem_limit="3G", cpu_limit=1.5, hub_port=8081, proxy_api_port=8001)
    from dataclasses import asdict

    for systemd in (False, True):
        doc = {"settings": asdict(s), "roster": asdict(Roster("t", ["a", "b"], "c-learners", "c-teachers")),
               "chp": ["node", "chp"], "labs": "/opt/puyu-lab/labs", "server_args": ["--KernelManager.transport=ipc"],
               "share": str(tmp_path / "share"), "state": str(tmp_path), "python": "/opt/puyu-lab/.venv/bin/python",
               "systemd": systemd}
        (private / "hub.json").write_text(json.dumps(doc))
        c = Config()
        configure(c, str(private / "jupyterhub_config.py"))
        assert c.JupyterHub.bind_url == "http://0.0.0.0:8000/"
        assert c.JupyterHub.authenticator_class == "pam"
        assert c.PAMAuthenticator.allowed_groups == {"c-learners", "c-teachers"}
        assert c.PAMAuthenticator.admin_groups == {"c-teachers"}
        assert c.ConfigurableHTTPProxy.auth_token == "t0ken" and c.ConfigurableHTTPProxy.command == ["node", "chp"]
        assert c.JupyterHub.db_url == f"sqlite:///{private / 'jupyterhub.sqlite'}"
        assert c.Spawner.mem_limit == "3G" and c.Spawner.cpu_limit == 1.5
        assert c.Spawner.cmd == ["/opt/puyu-lab/.venv/bin/jupyterhub-singleuser"]
        assert "--KernelManager.transport=ipc" in c.Spawner.args
        spawner = c.JupyterHub.spawner_class
        assert spawner.endswith("ClassroomSystemdSpawner" if systemd else "CappedSpawner")
        env = c[spawner.rsplit(".", 1)[1]].course_env
        assert env["JUPYTER_PATH"] == str(tmp_path / "share" / "jupyter") and env["PATH"] == "/opt/puyu-lab/.venv/bin"
    from puyu_lab.hub.spawner import CappedSpawner

    assert {"course_env", "labs_dir", "pids_limit"} <= set(CappedSpawner.class_trait_names())


def test_the_command_line_has_the_hub_verbs(capsys):
    from puyu_lab.cli import main

    with pytest.raises(SystemExit):
        main(["hub", "--help"])
    out = capsys.readouterr().out
    for verb in ("roster", "start", "grade", "remove", "capacity"):
        assert verb in out


def test_capacity_estimate_from_measured_labs():
    from puyu_lab.hub.capacity import LabCost, estimate, table

    costs = [LabCost("00", True, 10.0, 8.0, 600 * 2 ** 20, None), LabCost("01", True, 50.0, 90.0, 1200 * 2 ** 20, None)]
    e = estimate(costs, cores=16, ram_gib=64, cpu_limit=1.0)
    assert e["learners"] == int(64 * 0.9 * 1024 // 1200)  # memory-bound: the biggest lab's peak
    grouped = [LabCost("00", True, 10.0, 8.0, 600 * 2 ** 20, 400 * 2 ** 20)]  # a cgroup's own peak, where there is one
    assert estimate(grouped, 16, 64, 1.0)["learners"] == int(64 * 0.9 * 1024 // 400)
    assert e["chain_min"] == pytest.approx(max(60, 98, e["learners"] * 98 / 16) / 60)
    text = table(costs, (16, 32), 4.0, 1.0)
    assert "| 16 | 64 |" in text and "| 32 | 128 |" in text and "| 01 | 50.0 | 90.0 | 1200 | — |" in text


@pytest.mark.skipif(os.geteuid() != 0, reason="cgroups are made by root (the hub runs as root)")
def test_a_learner_cgroup_caps_and_ends_what_runs_in_it():
    from puyu_lab.hub.cgroups import LearnerGroup, find_layout

    layout = find_layout()
    g = LearnerGroup(f"ptest-{os.getpid()}", layout).make(mem_bytes=256 << 20, cpus=0.5, pids=64)
    try:
        # a process joins before it starts its child (as the server does before it drops root); the child is inside
        p = subprocess.Popen([sys.executable, "-c", "import subprocess, sys; subprocess.run(['sleep', '60'])"],
                             preexec_fn=g.join)
        time.sleep(0.5)
        assert p.pid in g.pids() and len(g.pids()) == 2
        if layout.version == 1:
            assert int(Path(g.dirs["memory"], "memory.limit_in_bytes").read_text()) == 256 << 20
            assert Path(g.dirs["cpu"], "cpu.cfs_quota_us").read_text().strip() == "50000"
        else:
            assert int(Path(g.dirs["memory"], "memory.max").read_text()) == 256 << 20
            assert Path(g.dirs["cpu"], "cpu.max").read_text().split()[0] == "50000"
        # too much memory: the kernel's OOM killer ends the process inside, nothing outside
        bomb = subprocess.run([sys.executable, "-c", "x = [b'x' * (32 << 20) for _ in range(64)]"], preexec_fn=g.join)
        assert bomb.returncode == -9 and g.oom_kills() >= 1
    finally:
        g.remove()
    assert p.wait(10) == -9  # ended with its group
    assert not any(Path(d).exists() for d in g.dirs.values())

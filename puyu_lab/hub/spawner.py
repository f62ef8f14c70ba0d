"""How the hub starts a learner's JupyterLab: JupyterHub's own spawners, with the class's glue around them.

- :class:`CappedSpawner` is JupyterHub's ``LocalProcessSpawner`` (the server runs as the learner's system user),
  plus the caps it leaves out: before the server drops root it joins a cgroup of its own
  (:mod:`puyu_lab.hub.cgroups`) with ``Spawner.mem_limit``, ``Spawner.cpu_limit`` and a process limit; every process
  it starts later is born there. When the server stops, whatever is left in the group (a llama.cpp server a
  kernel started in a session of its own, a background job from a terminal) is ended with it.
- :class:`ClassroomSystemdSpawner` is jupyterhub-systemdspawner's ``SystemdSpawner`` with the same glue: where
  systemd runs, each server is a transient unit and systemd enforces ``mem_limit`` / ``cpu_limit`` on it
  (``MemoryMax``, ``CPUQuota``) — the caps hold for all the unit's processes in the same way.

The glue both share (:class:`ClassroomMixin`): the environment of a learner's server (their workspace, their name
for ``puyu-lab submit``, the shared venv first on ``PATH``, the class's kernel spec and server config, one
thread per capped core), and on first login the labs copied into their home — done *as the learner* (a child
that drops to their uid first), so root never writes into a home the learner controls.

What runs in the learner's server is JupyterLab from the shared, read-only venv, so the chain sidebar
(the puyu-lab-chain extension) and the report card are the same as in ``make lab``.
"""
from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys

from jupyterhub.spawner import LocalProcessSpawner, set_user_setuid
from traitlets import Dict, Integer, Unicode
from traitlets.config import LoggingConfigurable

# run as the learner (cwd: their home): copy the labs in once, make the workspace
_FIRST_LOGIN = r"""
import os, shutil, sys
src, home = sys.argv[1], sys.argv[2]
os.umask(0o022)
dest = os.path.join(home, "labs")
if not os.path.lexists(dest):
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    print("labs copied to", dest)
os.makedirs(os.path.join(home, "workspace", "report"), exist_ok=True)
"""


class ClassroomMixin(LoggingConfigurable):
    """The class's settings (set by :func:`puyu_lab.hub.config.configure`) and what every spawner does with them."""

    labs_dir = Unicode("", config=True, help="the labs/ folder copied into each home on first login")
    course_env = Dict(config=True, help="environment every learner's server gets (PATH is prepended, not replaced)")
    pids_limit = Integer(1024, config=True, help="processes and threads per learner's server (0: no limit)")

    def classroom_env(self, env: dict) -> dict:
        import pwd

        home = pwd.getpwnam(self.user.name).pw_dir
        extra = dict(self.course_env)
        path_first = extra.pop("PATH", "")
        env.update(extra)
        if path_first:
            env["PATH"] = path_first + os.pathsep + env.get("PATH", "/usr/local/bin:/usr/bin:/bin")
        env["PUYU_LAB_HOME"] = os.path.join(home, "workspace")
        env["PUYU_LAB_LEARNER"] = self.user.name
        env["JUPYTER_RUNTIME_DIR"] = os.path.join(home, ".local", "share", "jupyter", "runtime")
        if self.cpu_limit:  # as many compute threads as the cap gives cores (torch, OpenMP, BLAS, llama.cpp)
            n = str(max(1, math.ceil(self.cpu_limit)))
            for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
                env[k] = n
        return env

    def first_login(self) -> None:
        """Copy the labs into the learner's home if they are not there yet, as the learner."""
        import pwd

        if not self.labs_dir:
            return
        home = pwd.getpwnam(self.user.name).pw_dir
        r = subprocess.run([sys.executable, "-I", "-c", _FIRST_LOGIN, self.labs_dir, home],
                           preexec_fn=set_user_setuid(self.user.name), env={"PATH": "/usr/bin:/bin", "HOME": home},
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            self.log.error("first login of %s: %s", self.user.name, r.stderr[-2000:])
            raise RuntimeError(f"could not prepare {home} for {self.user.name}: {r.stderr.strip()[-300:]}")
        if r.stdout.strip():
            self.log.info("%s: %s", self.user.name, r.stdout.strip())


class CappedSpawner(ClassroomMixin, LocalProcessSpawner):
    """LocalProcessSpawner whose server runs in a cgroup with the learner's caps."""

    def get_env(self):
        return self.classroom_env(super().get_env())

    def _group(self):
        from .cgroups import LearnerGroup

        return LearnerGroup(self.user.name)

    def make_preexec_fn(self, name):
        drop = set_user_setuid(name)
        files = self._cg.procs_files()
        if not files:
            raise RuntimeError(f"{name}: the server's cgroup is missing: it would run uncapped")

        def preexec():  # in the child, after fork, before exec: join the group as root, then become the learner
            pid = str(os.getpid()).encode()
            for f in files:
                fd = os.open(f, os.O_WRONLY)
                try:
                    os.write(fd, pid)
                finally:
                    os.close(fd)
            os.umask(0o022)
            drop()

        return preexec

    async def start(self):
        await asyncio.to_thread(self.first_login)  # (a child process: the hub's event loop goes on meanwhile)
        mem = int(self.mem_limit) if self.mem_limit else None
        self._cg = self._group().make(mem_bytes=mem, cpus=self.cpu_limit or None, pids=self.pids_limit or None)
        self.log.info("%s: server capped at %s memory, %s CPUs (%s)", self.user.name, self.mem_limit or "no",
                      self.cpu_limit or "all", self._cg.layout.describe())
        return await super().start()

    async def stop(self, now=False):
        try:
            await super().stop(now=now)
        finally:  # what the server left running (the hub may have restarted since it started: found by name)
            (getattr(self, "_cg", None) or self._group()).remove()
            self._cg = None


def systemd_spawner_class():
    """The SystemdSpawner subclass, made only where systemd runs (jupyterhub-systemdspawner imports nothing
    systemd-specific at import time, but the class is of no use elsewhere)."""
    from systemdspawner import SystemdSpawner

    class ClassroomSystemdSpawner(ClassroomMixin, SystemdSpawner):
        def get_env(self):
            return self.classroom_env(super().get_env())

        async def start(self):
            await asyncio.to_thread(self.first_login)
            return await super().start()

    return ClassroomSystemdSpawner


def __getattr__(name):  # `c.JupyterHub.spawner_class = "puyu_lab.hub.spawner.ClassroomSystemdSpawner"`
    if name == "ClassroomSystemdSpawner":
        return systemd_spawner_class()
    raise AttributeError(name)

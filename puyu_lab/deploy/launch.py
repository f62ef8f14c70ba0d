"""Run a server command as a child that dies with the *process* that started it.

    python -m puyu_lab.deploy.launch --watch-fd N -- COMMAND ...

The parent (a notebook kernel) keeps the write end of a pipe open and hands the read end over as fd
``N``. This launcher starts ``COMMAND`` and waits for it; a thread blocks on reading fd ``N``, and
when the read returns end-of-file — the kernel closes every fd of a process that exits, however it
exits — the launcher kills its whole process group (itself and the server).

Why not ``PR_SET_PDEATHSIG`` in a ``preexec_fn``: the "parent" it watches is the *thread* that
forked, so a server started from a worker thread (a panel's or a cell's) was killed the moment
that thread finished; and ``preexec_fn`` is not safe in a threaded process (the Python docs
say so: it may deadlock). A pipe's end-of-file belongs to the process, whichever thread started it.
The parent starts this launcher in a new session (``start_new_session=True``), so stopping the
server is one ``killpg`` of the launcher's group.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading


def _watch(fd: int) -> None:
    try:
        while os.read(fd, 1):  # the parent never writes: any return is end-of-file or an error
            pass
    except OSError:
        pass
    os.killpg(0, signal.SIGKILL)  # the parent process is gone: the server goes with it


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[0] != "--watch-fd" or argv[2] != "--":
        print("usage: python -m puyu_lab.deploy.launch --watch-fd N -- COMMAND ...", file=sys.stderr)
        return 2
    fd = int(argv[1])
    if os.getpgrp() != os.getpid():
        os.setsid()  # started by hand, not in a session of its own: never kill the caller's group
    child = subprocess.Popen(argv[3:])  # same process group: one killpg stops both

    def forward(sig, _frame):
        child.send_signal(sig)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    threading.Thread(target=_watch, args=(fd,), daemon=True).start()
    rc = child.wait()
    return 128 - rc if rc < 0 else rc  # killed by a signal: the shell's 128 + signal number


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

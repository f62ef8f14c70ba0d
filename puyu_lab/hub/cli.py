"""``puyu-lab hub …``: a class on one server (see :mod:`puyu_lab.hub`)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..stagecli import Verb, add_stage, opt


def _state(args):
    from .accounts import State
    from .config import DEFAULT_STATE

    return State(Path(args.state or os.environ.get("PUYU_LAB_HUB_STATE") or DEFAULT_STATE).resolve())


def cmd_roster(args: argparse.Namespace) -> int:
    from ..i18n import tr
    from .accounts import make_roster

    st = _state(args)
    shown = make_roster(st, learners=args.learners, prefix=args.prefix, csv_path=args.csv, teacher=args.teacher,
                        group=args.group, reset_passwords=args.reset_passwords)
    r = st.roster()
    print(tr(f"班级：{len(r.learners)} 名学员（组 {r.learners_group}），教师 {r.teacher}（组 {r.teachers_group}）；"
             f"名单在 {st.roster_file}",
             f"class: {len(r.learners)} learner(s) (group {r.learners_group}), teacher {r.teacher} "
             f"(group {r.teachers_group}); roster in {st.roster_file}"))
    if shown:
        print(tr("以下密码只显示这一次，系统只保存其哈希：请现在分发（学员可在终端里用 passwd 修改）：",
                 "these passwords are shown this once and stored only as the system's hash: hand them out now "
                 "(a learner changes theirs with `passwd` in a terminal):"))
        width = max(len(n) for n, _ in shown)
        print(tr(f"{'账户':<{width - 2}}  密码", f"{'account':<{width}}  password"))
        for n, pw in shown:
            print(f"{n:<{width}}  {pw}")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    from ..i18n import tr
    from .config import HubSettings, prepare

    st = _state(args)
    settings = HubSettings(bind=args.bind, mem_limit=args.mem, cpu_limit=args.cpus, pids_limit=args.pids,
                           lang=args.lang, hub_port=args.hub_port, proxy_api_port=args.proxy_api_port,
                           ssl_cert=args.ssl_cert, ssl_key=args.ssl_key, server_args=args.server_arg or [])
    cmd = prepare(st, settings, deep_check=not args.skip_shared_check)
    print(tr(f"hub 启动于 {settings.bind_url()}（每位学员：内存 {settings.mem_limit}，{settings.cpu_limit:g} 核）",
             f"starting the hub on {settings.bind_url()} (each learner: {settings.mem_limit} memory, "
             f"{settings.cpu_limit:g} CPU)"), flush=True)
    os.chdir(st.private)
    os.execv(cmd[0], cmd)
    return 0  # not reached


def cmd_remove(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..i18n import tr
    from .accounts import remove_class

    if not args.yes:
        raise InputError("this deletes every account the roster made, with its home and work: add --yes",
                         zh="这会删除名单创建的所有账户，连同其主目录和作业：确认请加 --yes")
    r = remove_class(_state(args))
    print(tr(f"已移除班级（组 {r.learners_group}、{r.teachers_group}）", f"class removed (groups {r.learners_group}, "
             f"{r.teachers_group})"))
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    from .classwork import grade_class

    out = Path(args.out or Path.home() / "gradebook")
    book, got = grade_class(_state(args), out, probes=args.probes, say=lambda s: print(s, flush=True))
    print(f"gradebook: {book.csv_path.resolve()}\n           {book.html_path.resolve()}")
    return 0


def cmd_capacity(args: argparse.Namespace) -> int:
    import tempfile

    from .capacity import run, table

    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="puyu-capacity-")) / "workspace"
    costs = run(args.only, home, args.profile or os.environ.get("PUYU_LAB_PROFILE", "quick"))
    print(table(costs, tuple(args.cores), args.ram_per_core, args.cpu_limit))
    return 0 if costs and all(c.ok for c in costs) else 1


STATE = opt("--state", default=None, help="the hub's folder (default $PUYU_LAB_HUB_STATE or /var/lib/puyu-lab-hub)")


def add_hub_commands(sub) -> None:
    add_stage(
        sub, "hub", "a class on one server: JupyterHub, one account per learner, caps, the teacher's gradebook",
        Verb("roster", cmd_roster, "make the class's accounts (prints their passwords once)", (
            opt("--learners", type=int, help="how many learners (accounts <prefix>01, <prefix>02 …)"),
            opt("--csv", default=None, help="a CSV with a `username` column (and optionally `password`) instead"),
            opt("--prefix", default="learner", help="learners' account names: <prefix>01 …"),
            opt("--teacher", default="teacher", help="the teacher's account (the hub's admin)"),
            opt("--group", default="puyu", help="groups <group>-learners and <group>-teachers"),
            opt("--reset-passwords", action="store_true", help="new passwords for accounts that exist"),
            STATE), profile=False, home=False),
        Verb("start", cmd_start, "start JupyterHub (with configurable-http-proxy) for the class", (
            opt("--bind", default="127.0.0.1:8000", help="address[:port] learners' browsers reach (0.0.0.0:8000: all)"),
            opt("--mem", default="4G", help="memory cap of each learner's server, its kernels and what they start"),
            opt("--cpus", type=float, default=1.0, help="CPU cap of each learner's server, in cores"),
            opt("--pids", type=int, default=1024, help="process cap of each learner's server"),
            opt("--lang", choices=["zh", "en"], default=None, help="the labs' and JupyterLab's language for all"),
            opt("--hub-port", type=int, default=0, help="the hub's API port on loopback (default: a free one)"),
            opt("--proxy-api-port", type=int, default=0, help="the proxy's API port on loopback (default: a free one)"),
            opt("--ssl-cert", default=None, help="TLS certificate (with --ssl-key): serve https"),
            opt("--ssl-key", default=None),
            opt("--server-arg", action="append", help="an extra option for every learner's JupyterLab (repeatable)"),
            opt("--skip-shared-check", action="store_true",
                help="do not walk the shared venv for files learners could write (checked on every start otherwise)"),
            STATE), profile=False, home=False),
        Verb("grade", cmd_grade, "teacher: collect every learner's newest `puyu-lab submit` bundle and grade the class", (
            opt("--probes", default=None, help="your hidden probe file (keep it in your home: learners cannot read it)"),
            opt("--out", default=None, help="where submissions/ and gradebook.csv/.html go (default ~/gradebook)"),
            STATE), profile=False, home=False),
        Verb("remove", cmd_remove, "delete the class: the accounts the roster made (with their homes) and its groups",
             (opt("--yes", action="store_true"), STATE), profile=False, home=False),
        Verb("capacity", cmd_capacity, "measure one learner's chain (CPU seconds, peak RSS per lab) and estimate "
             "how many learners a 16/32/64-core server holds", (
                 opt("--only", nargs="*", help="only these labs (e.g. 00 01)"),
                 opt("--cores", type=int, nargs="+", default=[16, 32, 64]),
                 opt("--ram-per-core", type=float, default=4.0, help="GiB of RAM per core of the servers estimated"),
                 opt("--cpu-limit", type=float, default=1.0, help="the hub's per-learner CPU cap (--cpus of start)")),
             profile=True, home=True),
    )

"""The ``puyu-lab`` command: doctor, status, chain, lab, and each stage's own verbs."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def cmd_doctor(args: argparse.Namespace) -> int:
    from . import doctor

    report = doctor.run()
    if args.json:
        import json

        print(json.dumps([c.__dict__ for c in report.checks], ensure_ascii=False, indent=1))
    else:
        print(report.text())
    return 0 if report.ok else 1


def cmd_status(args: argparse.Namespace) -> int:
    from .workspace import Workspace

    ws = Workspace(args.home)
    rows = ws.table()
    print(f"workspace: {ws.root.resolve()}")
    print(f"{'stage':<30}{'lab':<20}{'artifact':<18}{'status':<9}figures")
    for r in rows:
        print(f"{r['stage']:<30}{r['lab']:<20}{r['artifact']:<18}{r['status']:<9}{r['figures']}")
    return 0


def cmd_chain(args: argparse.Namespace) -> int:
    from .labrunner import run_chain
    from .profiles import get_profile
    from .workspace import Workspace

    get_profile(args.profile)  # fail now, not inside the first notebook
    ws = Workspace(args.home)
    print(f"chain: profile={args.profile}, workspace={ws.root.resolve()}", flush=True)
    def show(e):
        if e.kind == "numerics":
            print(f"numeric path: {e.data['summary']}", flush=True)
        elif e.kind == "done":
            print(e.data["line"], flush=True)

    results = run_chain(profile=args.profile, workspace=ws, only=args.only or None, on_event=show)
    print(f"total: {sum(r.seconds for r in results):.1f} s for {len(results)} lab(s)")
    print(f"report: {(ws.root / 'chain' / 'report.html').resolve()}")
    failed = [r for r in results if not r.ok]
    if failed:
        print(f"chain FAILED in {failed[0].lab}: {failed[0].error}", file=sys.stderr)
        return 1
    return 0


def lab_command(port: int, ip: str = "127.0.0.1", token: str | None = None, root: Path | None = None,
                extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The JupyterLab command line ``make lab`` runs (a test runs the same one)."""
    from .labrunner import labs_folder

    root = root or labs_folder()
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}", f"--ServerApp.ip={ip}",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", "--no-browser"]
    if token is not None:
        cmd.append(f"--IdentityProvider.token={token}")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return cmd + list(extra)


def cmd_lab(args: argparse.Namespace) -> int:
    cmd = lab_command(args.port, args.ip, args.token)
    print(f"starting JupyterLab on http://{args.ip}:{args.port}/lab (the URL with its token follows)", flush=True)
    os.execv(cmd[0], cmd)
    return 0  # not reached


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="puyu-lab", description="书生·浦语 puyu-lab: the InternLM chain in Jupyter")
    sub = p.add_subparsers(dest="cmd", required=True)

    d = sub.add_parser("doctor", help="check this machine: packages, CPU/GPU, llama.cpp, data, profiles")
    d.add_argument("--json", action="store_true")
    d.set_defaults(fn=cmd_doctor)

    s = sub.add_parser("status", help="the chain's artifacts in the workspace, as a table")
    s.add_argument("--home", default=None, help="workspace root (default $PUYU_LAB_HOME or ./workspace)")
    s.set_defaults(fn=cmd_status)

    c = sub.add_parser("chain", help="run every lab headless, in order, and write a report")
    c.add_argument("--profile", default=os.environ.get("PUYU_LAB_PROFILE", "quick"))
    c.add_argument("--home", default=None)
    c.add_argument("--only", nargs="*", help="run only these labs (e.g. 00 01_data)")
    c.set_defaults(fn=cmd_chain)

    lab = sub.add_parser("lab", help="start JupyterLab on labs/ (127.0.0.1)")
    lab.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8888")))
    lab.add_argument("--ip", default="127.0.0.1")
    lab.add_argument("--token", default=None, help="fixed token (default: JupyterLab makes one)")
    lab.set_defaults(fn=cmd_lab)

    from .agent.cli import add_agent_commands
    from .data.cli import add_data_commands
    from .deploy.cli import add_deploy_commands
    from .eval.cli import add_eval_commands
    from .finetune.cli import add_finetune_commands
    from .preference.cli import add_preference_commands
    from .pretrain.cli import add_pretrain_commands

    for add in (add_data_commands, add_pretrain_commands, add_finetune_commands, add_preference_commands,
                add_deploy_commands, add_eval_commands, add_agent_commands):  # the chain's order
        add(sub)

    args = p.parse_args(argv)
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one clear line for expected errors; the traceback with PUYU_LAB_DEBUG=1
        from .errors import is_user_error

        if is_user_error(exc) and not os.environ.get("PUYU_LAB_DEBUG"):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise

"""The ``puyu-lab`` command: doctor, status, chain, lab, and each stage's own verbs."""
from __future__ import annotations

import argparse
import json
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


def cmd_check(args: argparse.Namespace) -> int:
    from .checks import run
    from .checks.report import write_report
    from .workspace import Workspace

    ws = Workspace(args.home)
    card = run(ws, args.lab, homework=None if args.homework else False)
    if args.json:
        import json

        print(json.dumps(card.as_dict(), ensure_ascii=False, indent=1))
    else:
        print(f"workspace: {ws.root.resolve()}")
        print(card.text())
    if not args.no_write and ws.root.is_dir():
        print(f"report card: {write_report(card, ws.root / 'report').resolve()}")
    return 0 if card.ok else 1


def cmd_submit(args: argparse.Namespace) -> int:
    from .checks.bundle import submit
    from .workspace import Workspace

    path = submit(Workspace(args.home), args.out, learner=args.learner or "",
                  model=None if args.no_model else "model/sft", max_file_mb=args.max_file_mb,
                  on_progress=lambda s: print(s, flush=True))
    print(f"upload this file: {path.resolve()}")
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    from .checks.grade import grade

    book = grade(args.folder, args.out, probes=args.probes, on_progress=lambda s: print(s, flush=True))
    print(f"gradebook: {book.csv_path.resolve()}\n           {book.html_path.resolve()}")
    return 0


def cmd_probes(args: argparse.Namespace) -> int:
    import json

    from .checks.probes import make_probes

    doc = make_probes(args.seed, name=args.name)
    out = Path(args.out)
    tmp = out.with_name(f".{out.name}.partial")
    tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, out)
    print(f"{out}: {sum(len(g.get('prompts', g.get('items', []))) for g in doc['groups'])} probes in "
          f"{len(doc['groups'])} groups — keep this file away from learners; add questions of your own")
    return 0


# JupyterLab's own display language (its menus, dialogs: the zh-CN language pack) follows the course's one choice
LAB_LOCALES = {"zh": "zh_CN", "en": "en"}


def lab_settings_dir(lang: str | None = None, base: Path | None = None) -> Path:
    """A JupyterLab application-settings folder whose ``overrides.json`` sets the interface language to the
    course's (``$PUYU_LAB_LANG``, else the OS locale; see :mod:`puyu_lab.i18n`). The learner's own choice in
    Settings → Language still wins: JupyterLab's user settings sit above these defaults."""
    from .i18n import default_language

    lang = lang or default_language()
    base = base or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "puyu-lab" / "lab-settings"
    folder = base / lang
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"@jupyterlab/translation-extension:plugin": {"locale": LAB_LOCALES[lang]}}
    tmp = folder / ".overrides.json.partial"
    tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    os.replace(tmp, folder / "overrides.json")
    return folder


def lab_command(port: int, ip: str = "127.0.0.1", token: str | None = None, root: Path | None = None,
                extra: list[str] | tuple[str, ...] = (), lang: str | None = None) -> list[str]:
    """The JupyterLab command line ``make lab`` runs (a test runs the same one). ``lang`` ("zh" / "en"): the
    interface language, by default the course's (:func:`puyu_lab.i18n.default_language`); the kernels read
    ``$PUYU_LAB_LANG`` from the server's environment, so a caller choosing ``lang`` sets that too."""
    from .labrunner import labs_folder

    root = root or labs_folder()
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}", f"--ServerApp.ip={ip}",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", "--no-browser",
           f"--LabApp.app_settings_dir={lab_settings_dir(lang)}"]
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

    ck = sub.add_parser("check", help="the report card: every lab's self-checks on the workspace (or one lab's)")
    ck.add_argument("lab", nargs="?", default=None, help="a lab (03, 03_finetune, finetune); default: all")
    ck.add_argument("--home", default=None)
    ck.add_argument("--json", action="store_true")
    ck.add_argument("--no-write", action="store_true", help="do not write workspace/report/")
    ck.add_argument("--homework", action="store_true",
                    help="the homework tasks (作业) too: optional, they never change the exit status")
    ck.set_defaults(fn=cmd_check)

    sb = sub.add_parser("submit", help="the evidence bundle (one zip) to hand in instead of screenshots")
    sb.add_argument("--home", default=None)
    sb.add_argument("--out", default=None, help="zip file or folder (default workspace/report/)")
    sb.add_argument("--learner", default=None, help="your name (default $PUYU_LAB_LEARNER or $USER)")
    sb.add_argument("--no-model", action="store_true", help="leave model/sft out (the teacher's probes need it)")
    sb.add_argument("--max-file-mb", type=float, default=4.0, help="bigger files go in as hashes only")
    sb.set_defaults(fn=cmd_submit)

    gr = sub.add_parser("grade", help="teacher: verify learners' bundles, run hidden probes, write a gradebook")
    gr.add_argument("folder", help="a folder of submission zips")
    gr.add_argument("--probes", default=None, help="the teacher's hidden probe file (JSON)")
    gr.add_argument("--out", default=None, help="where gradebook.csv/.html go (default: the folder)")
    gr.set_defaults(fn=cmd_grade)

    pr = sub.add_parser("probes", help="teacher: write a starter hidden-probe file from a seed you choose")
    pr.add_argument("--seed", type=int, required=True)
    pr.add_argument("--out", required=True)
    pr.add_argument("--name", default=None, help="the assistant's name the task fixes (e.g. 小浦): probes expect "
                    "it instead of the name a bundle declares")
    pr.set_defaults(fn=cmd_probes)

    lab = sub.add_parser("lab", help="start JupyterLab on labs/ (127.0.0.1)")
    lab.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8888")))
    lab.add_argument("--ip", default="127.0.0.1")
    lab.add_argument("--token", default=None, help="fixed token (default: JupyterLab makes one)")
    lab.set_defaults(fn=cmd_lab)

    from .agent.cli import add_agent_commands
    from .course.cli import add_course_commands
    from .data.cli import add_data_commands
    from .deploy.cli import add_deploy_commands
    from .eval.cli import add_eval_commands
    from .finetune.cli import add_finetune_commands
    from .preference.cli import add_preference_commands
    from .pretrain.cli import add_pretrain_commands
    from .rag.cli import add_rag_commands

    for add in (add_data_commands, add_pretrain_commands, add_finetune_commands, add_preference_commands,
                add_deploy_commands, add_eval_commands, add_agent_commands, add_rag_commands):  # the chain's order
        add(sub)
    add_course_commands(sub)  # the course model: the pretrain and fine-tune stages, run once for the course

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

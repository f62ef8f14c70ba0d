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


def _width(text: str) -> int:
    """The terminal columns ``text`` takes (a CJK character takes two)."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    """``text`` padded to ``width`` terminal columns, at least one space after it."""
    return text + " " * max(1, width - _width(text))


def cmd_status(args: argparse.Namespace) -> int:
    from .i18n import t, tr
    from .workspace import Workspace

    ws = Workspace(args.home)
    rows = ws.table()
    print(tr("工作区：", "workspace: ") + str(ws.root.resolve()))
    widths = {"stage": 30, "lab": 20, "artifact": 18, "status": 9}
    print("".join(_pad(t(k), w) for k, w in widths.items()) + t("figures"))
    for r in rows:
        cells = {**r, "status": t(r["status"])}
        print("".join(_pad(str(cells[k]), w) for k, w in widths.items()) + str(r["figures"]))
    return 0


def cmd_chain(args: argparse.Namespace) -> int:
    from .i18n import tr
    from .labrunner import run_chain
    from .profiles import get_profile
    from .workspace import Workspace

    get_profile(args.profile)  # fail now, not inside the first notebook
    ws = Workspace(args.home)
    print(tr(f"全链路：配置档 {args.profile}，工作区 {ws.root.resolve()}",
             f"chain: profile={args.profile}, workspace={ws.root.resolve()}"), flush=True)
    def show(e):
        if e.kind == "numerics":
            print(tr("数值精度：", "numeric path: ") + e.data["summary"], flush=True)
        elif e.kind == "done":
            print(e.data["line"], flush=True)

    results = run_chain(profile=args.profile, workspace=ws, only=args.only or None, on_event=show)
    total = sum(r.seconds for r in results)
    print(tr(f"合计：{len(results)} 个实验，用时 {total:.1f} 秒", f"total: {total:.1f} s for {len(results)} lab(s)"))
    print(tr("报告：", "report: ") + str((ws.root / "chain" / "report.html").resolve()))
    failed = [r for r in results if not r.ok]
    if failed:
        print(tr(f"全链路在 {failed[0].lab} 失败：{failed[0].error_in()}",
                 f"chain FAILED in {failed[0].lab}: {failed[0].error_in()}"), file=sys.stderr)
        return 1
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .checks import run
    from .checks.report import write_report
    from .i18n import tr
    from .workspace import Workspace

    ws = Workspace(args.home)
    card = run(ws, args.lab, homework=None if args.homework else False)
    if args.json:
        import json

        print(json.dumps(card.as_dict(), ensure_ascii=False, indent=1))
    else:
        print(tr("工作区：", "workspace: ") + str(ws.root.resolve()))
        print(card.text())
    if not args.no_write and ws.root.is_dir():
        print(tr("成绩单：", "report card: ") + str(write_report(card, ws.root / "report").resolve()))
    return 0 if card.ok else 1


def cmd_submit(args: argparse.Namespace) -> int:
    from .checks.bundle import PROBE_MODELS, submit
    from .i18n import tr
    from .workspace import Workspace

    path = submit(Workspace(args.home), args.out, learner=args.learner or "",
                  model=None if args.no_model else PROBE_MODELS, max_file_mb=args.max_file_mb,
                  on_progress=lambda s: print(s, flush=True))
    print(tr("请上传这个文件：", "upload this file: ") + str(path.resolve()))
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    from .checks.grade import grade
    from .i18n import tr

    book = grade(args.folder, args.out, probes=args.probes, on_progress=lambda s: print(s, flush=True))
    said = tr("成绩册：", "gradebook: ")
    print(f"{said}{book.csv_path.resolve()}\n{_pad('', _width(said))}{book.html_path.resolve()}")
    return 0


def cmd_probes(args: argparse.Namespace) -> int:
    import json

    from .checks.probes import make_probes
    from .i18n import tr

    doc = make_probes(args.seed, name=args.name)
    out = Path(args.out)
    tmp = out.with_name(f".{out.name}.partial")
    tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, out)
    n, groups = sum(len(g.get("prompts", g.get("items", []))) for g in doc["groups"]), len(doc["groups"])
    print(tr(f"{out}：{groups} 组共 {n} 道探针题 —— 这个文件不要给学员看；可以加上你自己的题目",
             f"{out}: {n} probes in {groups} groups — keep this file away from learners; add questions of your own"))
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
    from .i18n import tr

    cmd = lab_command(args.port, args.ip, args.token)
    url = f"http://{args.ip}:{args.port}/lab"
    print(tr(f"正在 {url} 启动 JupyterLab（带令牌的完整网址随后给出）",
             f"starting JupyterLab on {url} (the URL with its token follows)"), flush=True)
    os.execv(cmd[0], cmd)
    return 0  # not reached


def main(argv: list[str] | None = None) -> int:
    from .i18n import tr  # the help, too, in the course language

    p = argparse.ArgumentParser(prog="puyu-lab", description=tr("书生·浦语 puyu-lab：在 Jupyter 里跑通 InternLM 全链路",
                                                                "书生·浦语 puyu-lab: the InternLM chain in Jupyter"))
    sub = p.add_subparsers(dest="cmd", required=True)
    home_help = tr("工作区根目录（默认 $PUYU_LAB_HOME 或 ./workspace）", "workspace root (default $PUYU_LAB_HOME or ./workspace)")

    d = sub.add_parser("doctor", help=tr("检查这台机器：软件包、CPU/GPU、llama.cpp、数据、配置档",
                                         "check this machine: packages, CPU/GPU, llama.cpp, data, profiles"))
    d.add_argument("--json", action="store_true")
    d.set_defaults(fn=cmd_doctor)

    s = sub.add_parser("status", help=tr("以表格列出工作区里全链路的产物", "the chain's artifacts in the workspace, as a table"))
    s.add_argument("--home", default=None, help=home_help)
    s.set_defaults(fn=cmd_status)

    c = sub.add_parser("chain", help=tr("按顺序无界面地运行每个实验，并写出报告",
                                        "run every lab headless, in order, and write a report"))
    c.add_argument("--profile", default=os.environ.get("PUYU_LAB_PROFILE", "quick"))
    c.add_argument("--home", default=None, help=home_help)
    c.add_argument("--only", nargs="*", help=tr("只运行这些实验（例如 00 01_data）", "run only these labs (e.g. 00 01_data)"))
    c.set_defaults(fn=cmd_chain)

    ck = sub.add_parser("check", help=tr("成绩单：在工作区上运行每个实验（或某一个实验）的自检",
                                         "the report card: every lab's self-checks on the workspace (or one lab's)"))
    ck.add_argument("lab", nargs="?", default=None, help=tr("一个实验（03、03_finetune、finetune）；默认：全部",
                                                            "a lab (03, 03_finetune, finetune); default: all"))
    ck.add_argument("--home", default=None, help=home_help)
    ck.add_argument("--json", action="store_true")
    ck.add_argument("--no-write", action="store_true", help=tr("不写 workspace/report/", "do not write workspace/report/"))
    ck.add_argument("--homework", action="store_true",
                    help=tr("连同作业一起检查：作业是选做的，从不影响退出码",
                            "the homework tasks (作业) too: optional, they never change the exit status"))
    ck.set_defaults(fn=cmd_check)

    sb = sub.add_parser("submit", help=tr("生成提交用的证据包（一个 zip），代替截图",
                                          "the evidence bundle (one zip) to hand in instead of screenshots"))
    sb.add_argument("--home", default=None, help=home_help)
    sb.add_argument("--out", default=None, help=tr("zip 文件或文件夹（默认 workspace/report/）",
                                                   "zip file or folder (default workspace/report/)"))
    sb.add_argument("--learner", default=None, help=tr("你的名字（默认 $PUYU_LAB_LEARNER 或 $USER）",
                                                       "your name (default $PUYU_LAB_LEARNER or $USER)"))
    sb.add_argument("--no-model", action="store_true", help=tr("不打包 model/sft（老师的隐藏探针需要它）",
                                                               "leave model/sft out (the teacher's probes need it)"))
    sb.add_argument("--max-file-mb", type=float, default=4.0, help=tr("更大的文件只记录哈希值",
                                                                      "bigger files go in as hashes only"))
    sb.set_defaults(fn=cmd_submit)

    gr = sub.add_parser("grade", help=tr("老师用：核验学员的提交包、运行隐藏探针、写出成绩册",
                                         "teacher: verify learners' bundles, run hidden probes, write a gradebook"))
    gr.add_argument("folder", help=tr("放提交包 zip 的文件夹", "a folder of submission zips"))
    gr.add_argument("--probes", default=None, help=tr("老师的隐藏探针文件（JSON）", "the teacher's hidden probe file (JSON)"))
    gr.add_argument("--out", default=None, help=tr("gradebook.csv/.html 写到哪里（默认：该文件夹）",
                                                   "where gradebook.csv/.html go (default: the folder)"))
    gr.set_defaults(fn=cmd_grade)

    pr = sub.add_parser("probes", help=tr("老师用：用你选的随机种子写出一份隐藏探针文件的初稿",
                                          "teacher: write a starter hidden-probe file from a seed you choose"))
    pr.add_argument("--seed", type=int, required=True)
    pr.add_argument("--out", required=True)
    pr.add_argument("--name", default=None, help=tr("任务规定的助手名字（例如 小浦）：探针期望的是它，而不是提交包里声明的名字",
                                                    "the assistant's name the task fixes (e.g. 小浦): probes expect "
                                                    "it instead of the name a bundle declares"))
    pr.set_defaults(fn=cmd_probes)

    lab = sub.add_parser("lab", help=tr("在 labs/ 上启动 JupyterLab（127.0.0.1）", "start JupyterLab on labs/ (127.0.0.1)"))
    lab.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8888")))
    lab.add_argument("--ip", default="127.0.0.1")
    lab.add_argument("--token", default=None, help=tr("固定的令牌（默认由 JupyterLab 生成）",
                                                      "fixed token (default: JupyterLab makes one)"))
    lab.set_defaults(fn=cmd_lab)

    from .agent.cli import add_agent_commands
    from .course.cli import add_course_commands
    from .data.cli import add_data_commands
    from .deploy.cli import add_deploy_commands
    from .eval.cli import add_eval_commands
    from .finetune.cli import add_finetune_commands
    from .hub.cli import add_hub_commands
    from .preference.cli import add_preference_commands
    from .pretrain.cli import add_pretrain_commands
    from .rag.cli import add_rag_commands
    from .rl.cli import add_rl_commands

    for add in (add_data_commands, add_pretrain_commands, add_finetune_commands, add_preference_commands,
                add_deploy_commands, add_eval_commands, add_agent_commands, add_rag_commands):  # the chain's order
        add(sub)
    add_rl_commands(sub)  # GRPO (issue #41): its engines before its lab, so outside the chain's order for now
    add_course_commands(sub)  # the course model: the pretrain and fine-tune stages, run once for the course
    add_hub_commands(sub)  # a class on one server: JupyterHub, accounts, caps, the class's gradebook

    args = p.parse_args(argv)
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        print(tr("已中断", "interrupted"), file=sys.stderr)
        return 130
    except Exception as exc:  # one clear line for expected errors; the traceback with PUYU_LAB_DEBUG=1
        from .errors import is_user_error

        if is_user_error(exc) and not os.environ.get("PUYU_LAB_DEBUG"):
            print(tr("错误：", "error: ") + str(exc), file=sys.stderr)
            return 2
        raise

"""The class roster: one system account per learner and one for the teacher, with passwords shown once.

``puyu-lab hub roster --learners 30`` (or ``--csv class.csv``) makes, with the system's own tools (``groupadd``,
``useradd``, ``chpasswd``, ``usermod``, ``userdel``):

- two groups, ``<group>-learners`` and ``<group>-teachers`` (the hub lets in only their members; the teachers are
  the hub's admins);
- each learner's account with a home of its own, mode ``2710`` and group ``<group>-teachers``: no other learner may
  enter it (read, write or list), the teacher may enter it by name, and what the learner makes there (umask 022)
  belongs to the teachers' group — so ``~/workspace/report/submission-*.zip``, which ``puyu-lab submit`` writes, is
  readable by the teacher and by no other learner (the setgid bit hands the group down to new folders);
- the teacher's account, home ``0700``: the hidden probe file kept there is the teacher's alone;
- a password for each new account, printed once and stored nowhere but as the system's hash (``/etc/shadow``);
  a learner changes it with ``passwd`` in a JupyterLab terminal.

The roster itself (names and groups, no passwords) goes to ``<state>/private/roster.json`` (root only) and to
``<state>/share/class.json`` (readable: the teacher's ``puyu-lab hub grade`` reads the class from it).
Accounts that existed before the roster are joined to the class, never deleted by ``puyu-lab hub remove``.
Written by hand: no tool makes a class of system accounts with these homes; the steps are the system's commands.
"""
from __future__ import annotations

import csv
import io
import json
import grp
import os
import pwd
import re
import secrets
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import InputError, read_text_file

NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]*$")
# a kernel's ipc sockets live in ~/.local/share/jupyter/runtime/kernel-<uuid>-ipc-<n>, and a unix socket's path
# may be at most 107 bytes: a home of up to 57 characters keeps every one of them within it
MAX_HOME = 57
MAX_NAME = 20
_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/I: read aloud or copied from a slip of paper


@dataclass
class Roster:
    teacher: str
    learners: list[str]
    learners_group: str
    teachers_group: str
    created: list[str] = field(default_factory=list)  # accounts the roster made (and `hub remove` deletes)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_dict(cls, d: dict) -> "Roster":
        return cls(teacher=d["teacher"], learners=list(d["learners"]), learners_group=d["learners_group"],
                   teachers_group=d["teachers_group"], created=list(d.get("created", [])))


@dataclass(frozen=True)
class State:
    """The hub's folder: ``base`` (root's, readable), ``private`` (root only: the hub's database, cookie secret,
    proxy token, config and roster), ``share`` (readable by the class: the kernel spec, the single-user config,
    the class list)."""

    base: Path

    @property
    def private(self) -> Path:
        return self.base / "private"

    @property
    def share(self) -> Path:
        return self.base / "share"

    @property
    def roster_file(self) -> Path:
        return self.private / "roster.json"

    @property
    def class_file(self) -> Path:
        return self.share / "class.json"

    def make(self) -> None:
        for d, mode in ((self.base, 0o755), (self.private, 0o700), (self.share, 0o755)):
            d.mkdir(parents=True, exist_ok=True)
            os.chown(d, 0, 0)
            os.chmod(d, mode)

    def roster(self) -> Roster:
        if not self.roster_file.is_file():
            raise InputError(f"{self.base}: no class roster yet: run `puyu-lab hub roster --learners N` first",
                             zh=f"{self.base}：还没有班级名单：请先运行 `puyu-lab hub roster --learners N`")
        return Roster.from_dict(json.loads(self.roster_file.read_text(encoding="utf-8")))

    def class_info(self) -> Roster:
        """The class as the teacher's account reads it (``share/class.json``)."""
        if not self.class_file.is_file():
            raise InputError(f"{self.class_file}: no class here: the hub's --state folder holds it (default "
                             "/var/lib/puyu-lab-hub; inside the hub $PUYU_LAB_HUB_STATE)",
                             zh=f"{self.class_file}：这里没有班级：它在 hub 的 --state 文件夹里（默认 /var/lib/puyu-lab-hub；"
                                "在 hub 里由 $PUYU_LAB_HUB_STATE 给出）")
        return Roster.from_dict(json.loads(self.class_file.read_text(encoding="utf-8")))

    def save(self, r: Roster) -> None:
        write_private(self.roster_file, r.to_json())
        pub = self.class_file.with_name(".class.json.partial")
        pub.write_text(json.dumps({k: v for k, v in asdict(r).items() if k != "created"}, indent=1), encoding="utf-8")
        os.chmod(pub, 0o644)
        os.replace(pub, self.class_file)


def write_private(path: Path, text: str) -> None:
    """A file only root may read (0600, made so before a byte is written), replaced atomically."""
    tmp = path.with_name(f".{path.name}.partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise InputError(f"`puyu-lab hub {what}` makes system accounts and starts servers as them: run it as root "
                         f"(sudo puyu-lab hub {what} …)",
                         zh=f"`puyu-lab hub {what}` 要创建系统账户并以这些账户启动服务：请以 root 身份运行"
                            f"（sudo puyu-lab hub {what} …）")


def new_password() -> str:
    return "-".join("".join(secrets.choice(_ALPHABET) for _ in range(4)) for _ in range(3))


def check_username(name: str, where: str = "") -> str:
    at, at_zh = (f"{where}: ", f"{where}：") if where else ("", "")
    if not NAME_RE.match(name) or len(name) > MAX_NAME:
        raise InputError(f"{at}{name!r} is not a usable account name: lowercase letters, digits, '_' and '-', "
                         f"starting with a letter, at most {MAX_NAME} characters",
                         zh=f"{at_zh}{name!r} 不能用作账户名：只能用小写字母、数字、'_' 和 '-'，以字母开头，"
                            f"最多 {MAX_NAME} 个字符")
    return name


def _exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def _run(*cmd: str, stdin: str | None = None) -> None:
    r = subprocess.run(list(cmd), input=stdin, capture_output=True, text=True)
    if r.returncode != 0:
        raise InputError(f"`{' '.join(cmd[:2])} …` failed: {(r.stderr or r.stdout).strip()[:300]}",
                         zh=f"`{' '.join(cmd[:2])} …` 执行失败：{(r.stderr or r.stdout).strip()[:300]}")


def read_csv(path: str) -> list[tuple[str, str | None]]:
    """(name, password or None) for each row of a CSV with a ``username`` column (and optionally ``password``)."""
    text = read_text_file(path, "file")
    rows = list(csv.DictReader(io.StringIO(text)))
    cols = {c.strip().lower(): c for c in (rows[0].keys() if rows else [])}
    if "username" not in cols:
        raise InputError(f"{path}: needs a header line with a `username` column (and, if you choose them, `password`)",
                         zh=f"{path}：第一行需要是表头，含 `username` 列（若要自己定密码，再加 `password` 列）")
    out = []
    for i, row in enumerate(rows, 2):
        name = (row.get(cols["username"]) or "").strip().lower()
        if not name:
            continue
        pw = (row.get(cols["password"]) or "").strip() if "password" in cols else ""
        out.append((check_username(name, f"{path}:{i}"), pw or None))
    if not out:
        raise InputError(f"{path}: no usernames in it", zh=f"{path}：里面没有任何用户名")
    return out


def plan_names(learners: int | None, prefix: str, csv_path: str | None) -> list[tuple[str, str | None]]:
    if csv_path:
        return read_csv(csv_path)
    if not learners or learners < 1:
        raise InputError("say how many learners (--learners N) or give a CSV of names (--csv FILE)",
                         zh="请给出学员人数（--learners N），或提供一份名单 CSV（--csv FILE）")
    width = max(2, len(str(learners)))
    return [(check_username(f"{prefix}{i:0{width}d}"), None) for i in range(1, learners + 1)]


def _home_ok(name: str, home_base: str = "/home") -> None:
    if len(os.path.join(home_base, name)) > MAX_HOME:
        raise InputError(f"{name}: the home {home_base}/{name} is too long for a kernel's socket paths "
                         f"(at most {MAX_HOME} characters): choose a shorter name",
                         zh=f"{name}：主目录 {home_base}/{name} 太长，内核的套接字路径放不下（最多 {MAX_HOME} 个字符）："
                            "请换一个短些的名字")


def make_roster(state: State, *, learners: int | None = None, prefix: str = "learner", csv_path: str | None = None,
                teacher: str = "teacher", group: str = "puyu", reset_passwords: bool = False,
                say=print) -> list[tuple[str, str]]:
    """Make (or extend) the class; returns (account, password) for each account whose password was set now."""
    require_root("roster")
    state.make()
    old = state.roster() if state.roster_file.is_file() else None
    if old is not None:
        group_l, group_t = old.learners_group, old.teachers_group
        if teacher != old.teacher and teacher == "teacher":
            teacher = old.teacher  # the default name: keep the class's teacher
    else:
        group_l, group_t = f"{group}-learners", f"{group}-teachers"
    check_username(teacher)
    names = plan_names(learners, prefix, csv_path)
    for n, _ in names:
        _home_ok(n)
        if n == teacher:
            raise InputError(f"{n}: the teacher's account cannot also be a learner's",
                             zh=f"{n}：教师账户不能同时是学员账户")
    for g in (group_l, group_t):
        if not _group_exists(g):
            _run("groupadd", g)
    created = list(old.created) if old else []
    shown: list[tuple[str, str]] = []

    def account(name: str, pw: str | None, groups: str, mode: int, home_group: str | None) -> None:
        new = not _exists(name)
        if new:
            _run("useradd", "--create-home", "--shell", "/bin/bash", "--user-group", "--groups", groups, name)
            created.append(name)
        else:
            _run("usermod", "--append", "--groups", groups, name)
        home = pwd.getpwnam(name).pw_dir
        if home_group:
            os.chown(home, pwd.getpwnam(name).pw_uid, grp.getgrnam(home_group).gr_gid)
        os.chmod(home, mode)
        if new or reset_passwords or pw:
            pw = pw or new_password()
            _run("chpasswd", stdin=f"{name}:{pw}\n")
            shown.append((name, pw))
        else:
            say(f"  {name}: " + _tr("账户已存在，密码未改", "exists, password unchanged"))

    account(teacher, None, group_t, 0o700, None)
    for n, pw in names:
        account(n, pw, group_l, 0o2710, group_t)
    learners_all = list(old.learners) if old else []
    learners_all += [n for n, _ in names if n not in learners_all]
    r = Roster(teacher=teacher, learners=learners_all, learners_group=group_l, teachers_group=group_t,
               created=created)
    state.save(r)
    return shown


def remove_class(state: State, say=print) -> Roster:
    """Delete the accounts the roster made (``userdel -r``: their homes too) and the class's groups; accounts that
    existed before leave the class's groups only. Processes still running as a deleted account are ended first."""
    import psutil

    require_root("remove")
    r = state.roster()
    uids = {pwd.getpwnam(n).pw_uid for n in r.created if _exists(n)}
    procs = [p for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real in uids]
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)
    for n in [r.teacher, *r.learners]:
        if not _exists(n):
            continue
        if n in r.created:
            _run("userdel", "--remove", n)
            say(f"  {n}: " + _tr("已删除（连同主目录）", "deleted (with its home)"))
        else:
            for g in (r.learners_group, r.teachers_group):
                subprocess.run(["gpasswd", "--delete", n, g], capture_output=True)
    for g in (r.learners_group, r.teachers_group):
        if _group_exists(g):
            subprocess.run(["groupdel", g], capture_output=True)
    for f in (state.roster_file, state.class_file):
        f.unlink(missing_ok=True)
    return r


def _tr(zh: str, en: str) -> str:
    from ..i18n import tr

    return tr(zh, en)

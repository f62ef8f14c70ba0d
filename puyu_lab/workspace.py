"""The workspace: an artifact registry on disk, the only hand-off between stages.

Layout under the root (``$PUYU_LAB_HOME``, default ``./workspace``)::

    corpus/clean -> .store/corpus__clean.<id>      # a symlink per artifact name
    .store/corpus__clean.<id>/manifest.json        # kind, stage, created, params, metrics, parents, files
    .store/corpus__clean.<id>/...                  # the artifact's files

A writer fills a ``.partial`` directory and, once everything (manifest last) is on disk,
swaps the name's symlink with one atomic ``rename``. A reader therefore sees either the old
complete artifact or the new complete one, never half of one; a writer killed mid-write leaves
only a ``.partial`` directory, which no listing shows and :meth:`Workspace.gc` removes.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .errors import PuyuError
from .i18n import figure_label, figure_labels
from .stages import ALL_STAGES, STAGES, may_read, stage_for_artifact

MANIFEST = "manifest.json"
STORE = ".store"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*(/[A-Za-z0-9][A-Za-z0-9_.\-]*)*$")


class WorkspaceError(PuyuError):
    pass


class UndeclaredRead(WorkspaceError):
    """A stage's engine read, through its stage's view of the workspace (:meth:`Workspace.for_stage`), an
    artifact its entry in ``stages.STAGES`` does not declare."""


class MissingFile(WorkspaceError, FileNotFoundError):
    """An artifact without one of its files."""


class MissingArtifact(WorkspaceError, FileNotFoundError):
    """An input artifact does not exist; the message names the lab that produces it."""


def _package_version() -> str:
    from .version import __version__

    return __version__


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name) or name.startswith(STORE):
        raise WorkspaceError(
            f"invalid artifact name {name!r}: use slash-separated parts of letters, digits, "
            "'_', '-' and '.', such as 'corpus/clean' or 'gguf/Q4_K_M'",
            zh=f"产物名 {name!r} 不合法：名字由斜杠分隔的若干段组成，每段只用字母、数字和 '_'、'-'、'.'，"
               "例如 'corpus/clean' 或 'gguf/Q4_K_M'",
        )
    return name


def default_root() -> Path:
    return Path(os.environ.get("PUYU_LAB_HOME") or "workspace").expanduser()


def project_home(start: str | os.PathLike | None = None) -> Path:
    """The workspace a lab opened under ``start`` uses: ``$PUYU_LAB_HOME``, else ``workspace/`` of the
    project (the first folder upwards with ``labs/`` and ``pyproject.toml``), else ``./workspace``."""
    from .paths import project_root

    if os.environ.get("PUYU_LAB_HOME"):
        return Path(os.environ["PUYU_LAB_HOME"]).expanduser()
    root = project_root(start, package_checkout=False)  # a lab opened elsewhere keeps its own workspace
    return (root or Path(start or Path.cwd()).expanduser().resolve()) / "workspace"


@dataclass
class Artifact:
    """A complete artifact: its directory and its manifest."""

    name: str
    path: Path
    manifest: dict[str, Any]

    kind = property(lambda self: self.manifest.get("kind", ""))
    stage = property(lambda self: self.manifest.get("stage", ""))
    id = property(lambda self: self.manifest.get("id", ""))
    created = property(lambda self: self.manifest.get("created", ""))
    params = property(lambda self: self.manifest.get("params", {}))
    metrics = property(lambda self: self.manifest.get("metrics", {}))
    parents = property(lambda self: self.manifest.get("parents", []))

    def file(self, relpath: str) -> Path:
        """A file of the artifact; a path that leads outside it (``..``, absolute, a symlink out) is refused."""
        root = self.path.resolve()
        p = (self.path / relpath).resolve()
        if p != root and root not in p.parents:
            raise WorkspaceError(f"artifact {self.name!r}: {relpath!r} points outside the artifact",
                                 zh=f"产物 {self.name!r}：{relpath!r} 指向了产物目录之外")
        if not p.exists():
            raise MissingFile(f"artifact {self.name!r} has no file {relpath!r} (in {self.path})",
                              zh=f"产物 {self.name!r} 中没有文件 {relpath!r}（目录 {self.path}）")
        return p


@dataclass
class ArtifactWriter:
    """What :meth:`Workspace.write` yields: fill ``path``; set ``metrics``/``params`` freely."""

    name: str
    path: Path
    kind: str
    stage: str
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    parents: list[dict[str, str]] = field(default_factory=list)


class Workspace:
    """The artifacts under ``root``. ``stage`` is None for a lab, a panel or the CLI (every read allowed); a
    stage's engines read through ``ws.for_stage(<key>)``, whose ``get`` allows only what that stage declares."""

    def __init__(self, root: str | os.PathLike | None = None, *, stage: str | None = None):
        self.root = Path(root).expanduser() if root is not None else default_root()
        if stage is not None and stage not in {s.key for s in ALL_STAGES}:
            raise WorkspaceError(f"no stage {stage!r} in puyu_lab/stages.py: use one of "
                                 f"{', '.join(s.key for s in ALL_STAGES)}",
                                 zh=f"puyu_lab/stages.py 中没有阶段 {stage!r}：可选 {', '.join(s.key for s in ALL_STAGES)}")
        self.stage = stage

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r}" + (f", stage={self.stage!r})" if self.stage else ")")

    def for_stage(self, stage_key: str) -> "Workspace":
        """This workspace as the stage ``stage_key``'s engines see it: its :meth:`get` of an artifact that
        puyu_lab/stages.py does not list for the stage (``needs``, ``produces``, ``course``) raises
        :class:`UndeclaredRead`. A stage's entry points begin with ``ws = ws.for_stage("<key>")``, so every read
        below them, helpers and artifact readers included, goes through this view."""
        return self if self.stage == stage_key else Workspace(self.root, stage=stage_key)

    @property
    def store(self) -> Path:
        return self.root / STORE

    # ---- reading ------------------------------------------------------------------------
    def link(self, name: str) -> Path:
        return self.root / check_name(name)

    def exists(self, name: str) -> bool:
        return (self.link(name) / MANIFEST).is_file()

    def get(self, name: str) -> Artifact:
        """The artifact ``name``, or :class:`MissingArtifact` naming the lab that makes it; in a stage's view
        (:meth:`for_stage`), :class:`UndeclaredRead` for a name the stage does not declare."""
        if self.stage is not None and not may_read(self.stage, name):
            raise UndeclaredRead(f"the {self.stage} stage read {name!r}, which puyu_lab/stages.py does not list "
                                 f"in its needs: declare it there (and read it through puyu_lab.artifacts)",
                                 zh=f"{self.stage} 阶段读取了 {name!r}，但 puyu_lab/stages.py 没有把它列入该阶段的 needs："
                                    "请在那里声明（并通过 puyu_lab.artifacts 读取）")
        link = self.link(name)
        try:
            target = Path(os.path.realpath(link))  # resolve once: later swaps do not affect us
            manifest = json.loads((target / MANIFEST).read_text(encoding="utf-8"))
        except FileNotFoundError:
            stage = stage_for_artifact(name)
            hint = (
                (f"Run labs/{stage.lab} ({stage.title}) first to produce it" if stage.lab
                 else f"Run `puyu-lab {stage.key} run` ({stage.title}) first to produce it")
                if stage else "No lab produces this name; check its spelling"
            )
            hint_zh = (
                (f"请先运行 labs/{stage.lab}（{stage.title}）生成它" if stage.lab
                 else f"请先运行 `puyu-lab {stage.key} run`（{stage.title}）生成它")
                if stage else "没有哪个实验会生成这个名字，请检查拼写"
            )
            raise MissingArtifact(
                f"artifact {name!r} not found in workspace {self.root}. {hint}, "
                "or point PUYU_LAB_HOME at a workspace that has it.",
                zh=f"工作区 {self.root} 中没有产物 {name!r}。{hint_zh}，或把 PUYU_LAB_HOME 指向已有该产物的工作区。",
            ) from None
        except json.JSONDecodeError as exc:
            raise WorkspaceError(f"{target / MANIFEST}: corrupt manifest ({exc}); rerun the lab that made it",
                                 zh=f"{target / MANIFEST}：manifest 已损坏（{exc}）；请重新运行生成它的实验") from None
        return Artifact(name, target, manifest)

    def require(self, *names: str) -> list[Artifact]:
        return [self.get(n) for n in names]

    def list(self, kind: str | None = None, stage: str | None = None, prefix: str = "") -> list[Artifact]:
        if not self.root.is_dir():
            return []
        found = []
        for name in self._names():
            if not name.startswith(prefix):
                continue
            try:
                art = self.get(name)
            except WorkspaceError:
                continue
            if (kind is None or art.kind == kind) and (stage is None or art.stage == stage):
                found.append(art)
        return found

    def _names(self) -> list[str]:
        """Every artifact name: the symlinks under the root (the store itself is skipped)."""
        names = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            if Path(dirpath) == self.root and STORE in dirnames:
                dirnames.remove(STORE)
            for entry in dirnames + filenames:
                p = Path(dirpath) / entry
                if p.is_symlink() and not entry.startswith("."):
                    names.append(p.relative_to(self.root).as_posix())
        return sorted(names)

    def _live_targets(self) -> set[Path]:
        return {Path(os.path.realpath(self.root / n)) for n in self._names()}

    def is_stale(self, art: Artifact) -> bool:
        """True when a parent has been rewritten since ``art`` was made from it."""
        for parent in art.parents:
            try:
                if self.get(parent["name"]).id != parent.get("id"):
                    return True
            except MissingArtifact:
                return True
        return False

    # ---- writing ------------------------------------------------------------------------
    @contextlib.contextmanager
    def write(
        self,
        name: str,
        *,
        kind: str,
        stage: str,
        params: dict[str, Any] | None = None,
        parents: list[str | Artifact] | None = None,
    ) -> Iterator[ArtifactWriter]:
        """Write artifact ``name`` atomically: it appears complete when the block ends, or not at all."""
        check_name(name)
        self.store.mkdir(parents=True, exist_ok=True)
        art_id = uuid.uuid4().hex[:12]
        slug = name.replace("/", "__")
        tmp = self.store / f"{slug}.{art_id}.partial"
        tmp.mkdir()
        parent_refs = []
        for p in parents or []:
            art = p if isinstance(p, Artifact) else self.get(p)
            parent_refs.append({"name": art.name, "id": art.id})
        writer = ArtifactWriter(name, tmp, kind, stage, dict(params or {}), {}, parent_refs)
        try:
            yield writer
            manifest = {
                "name": name,
                "id": art_id,
                "kind": kind,
                "stage": stage,
                "created": _now(),
                "params": writer.params,
                "metrics": writer.metrics,
                "parents": writer.parents,
                "package_version": _package_version(),
                # what the stage wrote, as it wrote it: a bundle's files are checked against these
                "files": file_digests(tmp),
            }
            data = json.dumps(manifest, indent=2, ensure_ascii=False, default=_json_default)
            with open(tmp / MANIFEST, "w", encoding="utf-8") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            final = self.store / f"{slug}.{art_id}"
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._publish(name, final)

    def _publish(self, name: str, target: Path) -> None:
        link = self.link(name)
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.exists() and not link.is_symlink():
            raise WorkspaceError(f"{link} is a plain directory, not an artifact link; move it away",
                                 zh=f"{link} 是普通目录，不是产物链接；请把它移走")
        old = Path(os.path.realpath(link)) if link.is_symlink() else None
        tmp_link = link.with_name(f".{link.name}.{uuid.uuid4().hex[:8]}.link")
        os.symlink(os.path.relpath(target, link.parent), tmp_link)
        os.replace(tmp_link, link)  # the atomic swap
        if old is not None and old != target:
            self._retire(old)

    def _retire(self, old: Path) -> None:
        # Keep the version just replaced for a minute, for a reader that resolved it; older go.
        cutoff = time.time() - 60
        slug = old.name.rsplit(".", 1)[0]
        live = self._live_targets()
        for version in self.store.glob(f"{slug}.*"):
            if version.suffix == ".partial" or version in live:
                continue
            if version.stat().st_mtime < cutoff:
                shutil.rmtree(version, ignore_errors=True)

    def remove(self, name: str) -> None:
        link = self.link(name)
        if not link.is_symlink():
            raise MissingArtifact(f"artifact {name!r} not found in workspace {self.root}",
                                  zh=f"工作区 {self.root} 中没有产物 {name!r}")
        target = Path(os.path.realpath(link))
        link.unlink()
        shutil.rmtree(target, ignore_errors=True)

    def gc(self, older_than_s: float = 3600) -> int:
        """Remove abandoned ``.partial`` directories and unreferenced versions. Returns the count."""
        if not self.store.is_dir():
            return 0
        live = self._live_targets()
        cutoff = time.time() - older_than_s
        removed = 0
        for version in self.store.iterdir():
            if version in live or version.stat().st_mtime >= cutoff:
                continue
            shutil.rmtree(version, ignore_errors=True)
            removed += 1
        return removed

    def table(self) -> list[dict[str, Any]]:
        """One row per stage's expected artifacts: what ``puyu-lab status`` and the tour show."""
        arts = self.list()
        rows = []
        for stage in STAGES:
            mine = [a for a in arts if stage_for_artifact(a.name) is stage]
            if not mine:
                rows.append({"stage": stage.title, "lab": stage.lab, "artifact": "—", "status": "missing",
                             "created": "", "figures": ""})
            for a in mine:
                rows.append({
                    "stage": stage.title, "lab": stage.lab, "artifact": a.name,
                    "status": "stale" if self.is_stale(a) else "present", "created": a.created,
                    "figures": ", ".join(f"{figure_label(k)}={_fmt(v)}" for k, v in _figures(a).items()),
                })
        return rows


    def chain(self) -> dict[str, Any]:
        """The chain's state by stage (the JupyterLab sidebar's data): each stage's status —
        ``present``, ``stale`` (an input changed since it was made) or ``missing`` — its artifacts
        with their key figures (and each figure's label in English and Chinese), and a ``version`` that changes
        whenever any artifact does."""
        import hashlib

        arts = self.list()
        stages = []
        for stage in STAGES:
            rows = []
            for a in (a for a in arts if stage_for_artifact(a.name) is stage):
                figures = _figures(a)
                rows.append({"name": a.name, "id": a.id, "status": "stale" if self.is_stale(a) else "present",
                             "created": a.created, "figures": figures,
                             # both languages: the sidebar shows JupyterLab's, which is not the server's
                             "figure_labels": figure_labels(figures)})
            status = "missing" if not rows else ("stale" if any(r["status"] == "stale" for r in rows) else "present")
            stages.append({"key": stage.key, "zh": stage.zh, "en": stage.en, "title": stage.title, "lab": stage.lab,
                           "needs": list(stage.needs), "status": status, "artifacts": rows})
        sig = json.dumps([[r["name"], r["id"], r["status"]] for st in stages for r in st["artifacts"]])
        return {"workspace": str(self.root), "stages": stages,
                "version": hashlib.sha1(sig.encode()).hexdigest()[:12]}


def file_digests(root: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {"sha256", "bytes"}}`` of every file under ``root`` but the manifest (sorted)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.is_symlink():
            continue
        rel = p.relative_to(root).as_posix()
        if rel == MANIFEST:
            continue
        out[rel] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    return out


def sha256_file(path: Path) -> str:
    """The sha256 of a file, read in 1 MB blocks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _figures(a: Artifact) -> dict[str, Any]:
    """An artifact's key figures, as the sidebar and ``puyu-lab status`` show them: the plain values among its first
    four metrics (each stage puts its headline figures first; a list or a table does not fit on a line)."""
    return {k: v for k, v in list(a.metrics.items())[:4] if isinstance(v, (int, float, str, bool))}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (set, tuple)):
        return list(o)
    raise TypeError(f"cannot store {type(o).__name__} in a manifest")

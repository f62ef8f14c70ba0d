"""``puyu-lab grade SUBMISSIONS/``: the teacher's side.

For each bundle (a zip written by ``puyu-lab submit``):

1. **Integrity** — each bundled file's sha256 equals the bundle's list *and* what the stage wrote into
   the artifact's manifest when it made it; no file added or removed since; each artifact's parents
   are the artifacts in the bundle (an artifact from another workspace breaks this lineage).
2. **Re-check** — the bundle is restored as a workspace and every artifact check runs again on it;
   a figure the manifest claims that the evidence (per-question files, the GGUF files) does not give
   is flagged as edited; a check the learner reported as passed that fails now is flagged. Checks
   whose evidence was too big to bundle keep the learner's reported result, marked as reported.
3. **Hidden probes** — with a teacher's probe file, fresh questions go to the bundled model.

The bundle is untrusted input: only the files its own list names are extracted, under names the
workspace accepts, with a size cap; the model is loaded from safetensors only, never with remote code.
Results go to ``gradebook.csv`` and ``gradebook.html`` (offline, plotly.js beside it).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import Msg, localized, zh_of
from ..i18n import tr
from ..workspace import MANIFEST, STORE, Workspace, check_name, sha256_file
from .bundle import FORMAT
from .core import say
from .gradebook import VERDICTS, Gradebook, Row, write_gradebook

MAX_BUNDLE_BYTES = 1 << 30  # 1 GiB extracted, at most

# Every flag is a Msg (puyu_lab.errors): the English string, which the tests and the CSV's readers match on, with
# its Chinese as ``.zh``; the gradebook and the progress lines show the teacher the current language's.


class BundleError(Exception):
    """A bundle that cannot be graded (or a model that cannot be probed): its message a Msg, the reason in both
    languages."""

    @property
    def reason(self) -> Msg:
        return _reason(self)


def _reason(e: BaseException) -> Msg:
    """What an exception says, as a Msg: a BundleError's own (both languages), else its text (in both)."""
    m = e.args[0] if e.args else ""
    return m if isinstance(m, Msg) else Msg(str(e)[:200], str(e)[:200])


_REL_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+\-]*$")


def _safe_rel(rel) -> bool:
    """A file name inside an artifact: plain relative parts only (no ``..``, ``.``, absolute or odd characters)."""
    if not isinstance(rel, str) or not rel or rel == MANIFEST:
        return False
    parts = rel.split("/")
    return all(_REL_PART.match(p) and p not in (".", "..") for p in parts)


def _artifact_name_ok(name) -> bool:
    """Bundles carry the chain's two-part names (``model/sft``); nothing nested that could climb through a link."""
    from ..stages import stage_for_artifact

    if not isinstance(name, str):
        return False
    try:
        check_name(name)
    except Exception:
        return False
    parts = name.split("/")
    if parts[0] == "homework":  # a 作业 task's evidence: homework/<lab key>/<task>
        return len(parts) == 3
    return len(parts) == 2 and stage_for_artifact(name) is not None


def _read_info(z: zipfile.ZipFile) -> dict:
    try:
        info = json.loads(z.read("bundle.json").decode("utf-8"))
    except KeyError:
        raise BundleError(say("没有 bundle.json：这不是 `puyu-lab submit` 生成的提交包",
                              "no bundle.json: not a bundle written by `puyu-lab submit`")) from None
    except (ValueError, UnicodeDecodeError, zipfile.BadZipFile) as e:
        raise BundleError(say(f"bundle.json 不是合法的 JSON（{e}）", f"bundle.json is not valid JSON ({e})")) from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        got = info.get("format") if isinstance(info, dict) else None
        raise BundleError(say(f"bundle.json：格式是 {got!r}，应为 {FORMAT!r}",
                              f"bundle.json: format {got!r}, expected {FORMAT!r}"))
    if not isinstance(info.get("artifacts"), dict):
        raise BundleError(say("bundle.json 里没有任何产物", "bundle.json has no artifacts"))
    for key, typ in (("environment", dict), ("report", dict), ("learner", str)):
        if key in info and not isinstance(info[key], typ):
            raise BundleError(say(f"bundle.json：{key!r} 应当是 {typ.__name__}",
                                  f"bundle.json: {key!r} should be a {typ.__name__}"))
    return info


@dataclass
class Found:
    """What one step of restoring found: the flags it raised and the zip members it took as the bundle's own
    (a member no step takes is flagged as in the zip but not in the bundle's list)."""
    flags: list[str] = field(default_factory=list)
    listed: set[str] = field(default_factory=set)

    def add(self, other: Found) -> None:
        self.flags += other.flags
        self.listed |= other.listed

    @contextlib.contextmanager
    def keeping(self, what: str):
        """Run the block, a step's work on the untrusted bundle: if it raises (a name too long for the file system,
        an encrypted or oddly compressed member …), that becomes a flag on ``what`` and the block's remaining work
        is skipped — the flags found before it stay, and the rest of the bundle is still graded."""
        try:
            yield
        except Exception as e:  # noqa: BLE001 — whatever the bundle makes a step raise is the bundle's
            why = f"{type(e).__name__}: {str(e)[:200]}"
            self.flags.append(say(f"{what}：无法还原（{why}），已略过", f"{what}: could not be restored ({why}); left out"))


def restore(z: zipfile.ZipFile, info: dict, root: Path) -> tuple[Workspace, list[str]]:
    """Rebuild the bundle's artifacts as a workspace under ``root``, checking every file as it goes; returns the
    workspace and what the checks found (a step that failed included, with the flags found before it)."""
    members = {i.filename: i for i in z.infolist()}
    total = sum(i.file_size for i in members.values())
    if total > MAX_BUNDLE_BYTES:
        size, cap = total / 2**30, MAX_BUNDLE_BYTES / 2**30
        raise BundleError(say(f"提交包解压后有 {size:.1f} GiB（上限 {cap:.0f}）",
                              f"the bundle would extract to {size:.1f} GiB (limit {cap:.0f})"))
    found = Found(listed={"bundle.json"})
    ws = Workspace(root)
    (root / STORE).mkdir(parents=True, exist_ok=True)
    for name, entry in info["artifacts"].items():
        found.add(restore_artifact(z, members, root, name, entry, cap=info.get("max_file_bytes")))
    extra = sorted(k for k in members if k not in found.listed and not k.endswith("/"))
    found.flags += [say(f"{k!r}：在 zip 里，但不在提交包的清单中（已忽略）", f"{k!r}: in the zip but not in the bundle's list (ignored)")
                    for k in extra[:5]]
    return ws, found.flags + check_lineage(info["artifacts"])


def restore_artifact(z: zipfile.ZipFile, members: dict, root: Path, name, entry, *, cap) -> Found:
    """One artifact of the bundle: its manifest checked against bundle.json's copy and the stage's digests,
    its included files extracted into the workspace's store, its name linked to them."""
    found = Found()
    if not _artifact_name_ok(name):
        found.flags.append(say(f"产物名 {name!r} 不是工作区里的名字：已跳过", f"artifact name {name!r} is not a workspace name: skipped"))
        return found
    if not isinstance(entry, dict) or not isinstance(entry.get("manifest"), dict) \
            or not isinstance(entry.get("files", {}), dict):
        found.flags.append(say(f"{name}：它在 bundle.json 里的条目格式不对：已跳过", f"{name}: its entry in bundle.json is malformed: skipped"))
        return found
    files = entry.get("files", {})
    mkey = f"artifacts/{name}/{MANIFEST}"
    found.listed.add(mkey)
    zman, manifest_flags = check_manifest(z, members, name, entry)
    found.flags += manifest_flags
    if zman is None:
        return found
    art_id = str(zman.get("id", ""))
    if not art_id.isalnum() or len(art_id) > 64:
        found.flags.append(say(f"{name}：清单里的 id {art_id!r} 不是合法的产物 id", f"{name}: manifest id {art_id!r} is not an artifact id"))
        return found
    with found.keeping(name):
        target = root / STORE / f"{name.replace('/', '__')}.{art_id}"
        if target.exists():
            found.flags.append(say(f"{name}：又一个 id 为 {art_id} 的产物：已跳过", f"{name}: a second artifact with id {art_id}: skipped"))
            return found
        target.mkdir()
        (target / MANIFEST).write_bytes(z.read(mkey))
        written = zman["files"] if isinstance(zman.get("files"), dict) else None
        for rel in sorted(files, key=lambda r: (r.count("/"), r) if isinstance(r, str) else (0, "")):
            found.add(restore_file(z, members, target, name, rel, files[rel], recorded=(written or {}).get(rel),
                                   stage=zman.get("stage", "?"), cap=cap))
        link = root / name
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(target, link.parent), link)
        if root.resolve() not in Path(os.path.realpath(link)).parents:
            link.unlink()
            found.flags.append(say(f"{name}：它的链接会指向提交包之外：已跳过", f"{name}: its link would lead outside the bundle: skipped"))
    return found


def check_manifest(z: zipfile.ZipFile, members: dict, name: str, entry: dict) -> tuple[dict | None, list[str]]:
    """The artifact's manifest as the zip holds it (``None`` where it is missing or unreadable) and the flags on
    it: a copy that differs from bundle.json's, files the stage wrote that the bundle's list leaves out or adds."""
    mkey = f"artifacts/{name}/{MANIFEST}"
    if mkey not in members:
        return None, [say(f"{name}：提交包里缺少它的清单", f"{name}: its manifest is missing from the bundle")]
    try:
        zman = json.loads(z.read(mkey).decode("utf-8"))
    except (ValueError, UnicodeDecodeError, zipfile.BadZipFile):
        return None, [say(f"{name}：它的清单无法读取", f"{name}: its manifest is unreadable")]
    if not isinstance(zman, dict):
        return None, [say(f"{name}：它的清单不是 JSON 对象", f"{name}: its manifest is not an object")]
    flags = []
    if zman != entry["manifest"]:
        flags.append(say(f"{name}：manifest.json 与 bundle.json 里的副本不一致（被改过）",
                         f"{name}: manifest.json differs from the copy in bundle.json (edited)"))
    written, files = zman.get("files"), entry.get("files", {})
    if not isinstance(written, dict):
        flags.append(say(f"{name}：它的清单没有记录阶段所写文件的摘要（无法核验）",
                         f"{name}: its manifest records no digests of what its stage wrote (unverifiable)"))
    else:
        flags += [say(f"{name}/{rel}：由该阶段写出，却不在提交包的清单里",
                      f"{name}/{rel}: written by the stage, missing from the bundle's list")
                  for rel in sorted(set(written) - set(files))]
        flags += [say(f"{name}/{rel}：不是该阶段写出的（事后添加）", f"{name}/{rel}: not written by the stage (added afterwards)")
                  for rel in sorted(set(files) - set(written))]
    return zman, flags


def restore_file(z: zipfile.ZipFile, members: dict, target: Path, name: str, rel, meta, *, recorded, stage,
                 cap) -> Found:
    """One file of an artifact, as the bundle's list ``meta`` describes it: checked against what the stage
    recorded writing (``recorded``: its manifest's digest, if any) and, when included, extracted under ``target``
    and checked against the list's digest."""
    found = Found()
    if not _safe_rel(rel) or not isinstance(meta, dict):
        found.flags.append(say(f"{name}：文件名 {rel!r} 不安全，已拒绝", f"{name}: unsafe file name {rel!r} refused"))
        return found
    if isinstance(recorded, dict) \
            and (recorded.get("sha256"), recorded.get("bytes")) != (meta.get("sha256"), meta.get("bytes")):
        found.flags.append(say(f"{name}/{rel}：提交包清单与 {stage} 阶段写出时的记录不一致（被调包）",
                               f"{name}/{rel}: the bundle's list differs from what the {stage} stage wrote (swapped)"))
    if not meta.get("included"):
        if isinstance(cap, int) and isinstance(meta.get("bytes"), int) and meta["bytes"] <= cap:
            found.flags.append(say(f"{name}/{rel}：文件够小、本应打包，却没有放进来",
                                   f"{name}/{rel}: withheld although it is small enough to bundle"))
        return found
    key = f"artifacts/{name}/{rel}"
    found.listed.add(key)
    if key not in members:
        found.flags.append(say(f"{name}/{rel}：清单上写着已打包，zip 里却没有", f"{name}/{rel}: listed as included, missing from the zip"))
        return found
    with found.keeping(f"{name}/{rel}"):
        dest = target / rel
        if dest.exists() or any(p.is_file() for p in [*dest.parents][:rel.count("/")]):
            found.flags.append(say(f"{name}：文件名 {rel!r} 与另一个文件冲突：已拒绝", f"{name}: file name {rel!r} collides with another: refused"))
            return found
        try:
            data = z.read(key)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
            found.flags.append(say(f"{name}/{rel}：zip 里的这个文件无法读取（{type(e).__name__}）",
                                   f"{name}/{rel}: unreadable in the zip ({type(e).__name__})"))
            return found
        if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
            found.flags.append(say(f"{name}/{rel}：内容与提交包清单不一致（提交后被改过）",
                                   f"{name}/{rel}: content differs from the bundle's list (changed after submitting)"))
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    return found


def check_lineage(artifacts: dict) -> list[str]:
    """Each artifact was made from the artifacts the bundle holds under its parents' names: a flag for each
    parent the bundle leaves out or holds from another run."""
    flags = []
    for name, entry in artifacts.items():
        if not _artifact_name_ok(name) or not isinstance(entry, dict) or not isinstance(entry.get("manifest"), dict):
            continue
        parents = entry["manifest"].get("parents", [])
        for par in parents if isinstance(parents, list) else []:
            if not isinstance(par, dict) or not isinstance(par.get("name"), str):
                flags.append(say(f"{name}：有一条格式不对的上游记录", f"{name}: a malformed parent entry"))
                continue
            other = artifacts.get(par.get("name"))
            other_id = (other.get("manifest") or {}).get("id") if isinstance(other, dict) else None
            made = f"{par.get('name')} {par.get('id')}"
            if other is None:
                flags.append(say(f"{name} 由 {made} 生成，但提交包里没有它", f"{name} was made from {made}, which the bundle leaves out"))
            elif other_id != par.get("id"):
                flags.append(say(f"{name} 由 {made} 生成，而提交包里的是 {other_id}（来自另一次运行或另一个工作区）",
                                 f"{name} was made from {made}, the bundle's is {other_id} (from another run or workspace)"))
    return flags


def _assistant_name(ws: Workspace) -> str | None:
    try:
        name = ws.get("sft/data").metrics.get("assistant_name")
        return name if isinstance(name, str) else None
    except Exception:
        return None


def load_probe_model(d: Path):
    """The bundled model for the probes: safetensors weights and a config transformers knows, loaded
    with no remote code, no hub, no pickles, no adapter pointing elsewhere, in the chain's chat format."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    from ..models.hf import HFModel
    from ..models.template import CHAT_TEMPLATE

    cfg_path = d / "config.json"
    if not (d / "model.safetensors").is_file() or not cfg_path.is_file():
        raise BundleError(say("需要 config.json 和 model.safetensors", "needs config.json and model.safetensors"))
    bad = [p.name for p in d.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl", ".ckpt")
           or p.name == "adapter_config.json"]
    if bad:
        raise BundleError(say(f"拒绝加载 {', '.join(sorted(bad))}（pickle 格式的权重或适配器）",
                              f"refuses {', '.join(sorted(bad))} (pickled weights or an adapter)"))
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise BundleError(say("config.json 不是合法的 JSON", "config.json is not JSON")) from None
    if not isinstance(cfg, dict) or "auto_map" in cfg or cfg.get("model_type") not in CONFIG_MAPPING:
        raise BundleError(say("config.json 指定了自定义代码或未知的模型类型",
                              "config.json names custom code or an unknown model type"))
    model = AutoModelForCausalLM.from_pretrained(str(d), trust_remote_code=False, local_files_only=True,
                                                 use_safetensors=True)
    model.eval()
    tok = AutoTokenizer.from_pretrained(str(d), trust_remote_code=False, local_files_only=True)
    tok.chat_template = CHAT_TEMPLATE  # the chain's format: a bundled template cannot add a system prompt
    return HFModel(model, tok, d.name)


def run_probes(ws: Workspace, info: dict, groups, flags: list[str]) -> dict:
    from .probes import run_group

    out = {}
    models: dict = {}
    bundle_name = _assistant_name(ws)
    try:
        for g in groups:
            if g.model not in models:
                models[g.model] = None
                if ws.exists(g.model):
                    try:
                        models[g.model] = load_probe_model(ws.get(g.model).path)
                    except Exception as e:  # noqa: BLE001 (any failure to load is the bundle's)
                        why = _reason(e)
                        flags.append(say(f"{g.model}：没有做探针测试 —— {zh_of(why)}", f"{g.model}: not probed — {why}"))
            model = models[g.model]
            if model is None:  # not made (an unfinished chain: the checks say so) or refused (flagged above)
                out[g.id] = {"passed": 0, "total": len(g.items), "rate": 0.0, "ok": False, "rows": [],
                             "note": f"{g.model} not probed"}
                continue
            r = run_group(model, g, assistant_name=g.name or bundle_name)
            out[g.id] = {"passed": r.passed, "total": r.total, "rate": round(r.rate, 4), "ok": r.ok,
                         "min_pass": g.min_pass, "rows": r.rows, "control_rate": r.control_rate}
            if not r.ok:
                why = r.why()
                flags.append(say(f"隐藏探针 {g.id}：{zh_of(why)}", f"hidden probes {g.id}: {why}"))
    finally:
        for m in models.values():
            if m is not None:
                m.close()
    return out


def grade_one(path: Path, groups=None, *, work: Path | None = None, homework: dict | None = None) -> Row:
    """One bundle's row; whatever the bundle holds, the row comes back (a broken bundle is a flag)."""
    row = Row(bundle=path.name)
    tmp = Path(tempfile.mkdtemp(prefix="puyu-grade-", dir=work))
    try:
        _grade_into(row, path, groups, tmp, homework)
    except Exception as e:  # noqa: BLE001 — one bad bundle must not cost the others their gradebook
        why = f"{type(e).__name__}: {str(e)[:200]}"
        row.flags.append(say(f"评分出错：{why}", f"grading failed: {why}"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return row


def _grade_into(row: Row, path: Path, groups, tmp: Path, homework: dict | None = None) -> None:
    from . import REGISTRY, run
    from .core import MISSING_EVIDENCE

    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        row.flags.append(say(f"不是可读取的 zip 文件（{e}）", f"not a readable zip ({e})"))
        return
    with z:
        try:
            info = _read_info(z)
            row.learner = str(info.get("learner", ""))
            row.created = str(info.get("created", ""))
            row.environment = info.get("environment") or {}
            ws, flags = restore(z, info, tmp / "ws")
            row.flags += flags
        except BundleError as e:
            row.flags.append(e.reason)
            return
    for name in ("model/sft",):  # the learner's own fine-tune: the same weights twice is one learner's work
        if ws.exists(name) and (ws.get(name).path / "model.safetensors").is_file():
            row.fingerprints[name] = sha256_file(ws.get(name).path / "model.safetensors")
    report = info.get("report") or {}
    results = report.get("results", []) if isinstance(report.get("results"), list) else []
    reported = {r["id"]: r for r in results if isinstance(r, dict) and isinstance(r.get("id"), str)}
    withheld = {name for name, e in info["artifacts"].items() if isinstance(e, dict) and isinstance(e.get("files"), dict)
                and any(isinstance(m, dict) and not m.get("included") for m in e["files"].values())}
    card = run(ws, scope="artifact")
    for r in card.results:
        rep = reported.get(r.id)
        needs = REGISTRY[r.id].needs
        if r.status == "missing" and r.figure_en == MISSING_EVIDENCE and set(needs) & withheld:
            # a file too big to bundle: the learner's own result, marked as reported
            status = "pass" if rep and rep.get("ok") is True else "fail"
            row.checks[r.id] = {"status": status, "figure": str((rep or {}).get("figure", r.figure)),
                                "source": "reported", "lab": r.lab}
            continue
        row.checks[r.id] = {"status": "pass" if r.ok else "fail", "figure": r.figure, "source": "re-checked",
                            "lab": r.lab}
        if rep and rep.get("ok") is True and not r.ok:
            row.flags.append(say(f"{r.id}：学员报告为通过（{rep.get('figure')}），复查未通过（{r.figure_in('zh')}）",
                                 f"{r.id}: reported passed ({rep.get('figure')}), fails when re-checked ({r.figure_in('en')})"))
        if not r.consistent:
            claimed = say("一个非数字的值", "a non-number") if r.claimed is None else f"{r.claimed:g}"
            row.flags.append(say(f"{r.id}：清单声称 {zh_of(claimed)}，证据算出 {r.value:g}（指标被改过）",
                                 f"{r.id}: the manifest claims {claimed}, its evidence gives {r.value:g} (metric edited)"))
    for rid, rep in reported.items():
        c = REGISTRY.get(rid)
        if c is not None and c.scope == "machine":
            row.checks[rid] = {"status": "pass" if rep.get("ok") is True else "fail",
                               "figure": str(rep.get("figure", "")), "source": "reported", "lab": c.lab}
    # the 作业 tasks the teacher assigned: re-checked on the bundle, counted apart (optional, no verdict)
    on = None if homework is None else (lambda c: homework.get(c.id, True))
    for r in run(ws, scope="artifact", homework=True, only=on).results:
        row.homework[r.id] = {"status": "pass" if r.ok else ("missing" if r.status == "missing" else "fail"),
                              "figure": r.figure, "lab": r.lab, "level": r.homework}
    if groups:
        row.probes = run_probes(ws, info, groups, row.flags)


def _printable(s: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in str(s))


def grade(submissions, out: str | os.PathLike | None = None, *, probes: str | os.PathLike | None = None,
          on_progress: Callable[[str], None] | None = None) -> Gradebook:
    """Grade every ``*.zip`` under ``submissions`` and write the gradebook to ``out`` (default: the folder)."""
    from ..errors import InputError
    from .probes import load_homework_switches, load_probes

    progress = on_progress or (lambda s: None)
    folder = Path(submissions)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder; put the learners' submission-*.zip files in one folder",
                         zh=f"{folder}：不是文件夹；请把学员的 submission-*.zip 放进同一个文件夹")
    bundles = sorted(folder.glob("*.zip"))
    if not bundles:
        raise InputError(f"{folder}: no .zip bundles in it (learners make them with `puyu-lab submit`)",
                         zh=f"{folder}：里面没有 .zip 提交包（学员用 `puyu-lab submit` 生成）")
    groups = load_probes(probes) if probes else None
    switches = load_homework_switches(probes) if probes else None
    out_dir = Path(out) if out else folder
    rows = []
    for i, b in enumerate(bundles, 1):
        progress(f"[{i}/{len(bundles)}] {_printable(b.name)}")
        rows.append(grade_one(b, groups, homework=switches))
    # the same trained weights in two bundles: one learner handed in another's work
    seen: dict = {}
    for r in rows:
        for name, digest in r.fingerprints.items():
            seen.setdefault((name, digest), []).append(r)
    for (name, _), same in seen.items():
        if len(same) > 1:
            for r in same:
                others = ", ".join(_printable(o.learner or o.bundle) for o in same if o is not r)
                r.flags.append(say(f"{name}：与 {others} 的提交包权重完全相同", f"{name}: the same weights as the bundle of {others}"))
    for r in rows:
        who, verdict = _printable(r.learner or "?"), localized(VERDICTS.get(r.verdict, r.verdict))
        progress(tr(f"    {who}：自检 {r.passed}/{len(r.checks)} 项通过，{verdict}",
                    f"    {who}: {r.passed}/{len(r.checks)} checks, {verdict}")
                 + "".join(f"\n    ! {_printable(localized(f))}" for f in r.flags))
    return write_gradebook(rows, out_dir)



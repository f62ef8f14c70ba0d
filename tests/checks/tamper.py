"""What a learner who wants a better grade could do to a bundle, for the grader's tests: each edit is made
as a careful cheat would make it (the bundle's own file list updated to match), unless ``naive``."""
from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

# a hidden probe file of the teacher's kind (fresh self-cognition paraphrases; few, to keep the tests short)
PROBES = {"groups": [{"id": "selfcog", "title": "自我认知 hidden", "kind": "name", "name": "小浦", "min_pass": 0.8,
                      "max_new_tokens": 24,
                      "prompts": ["打扰一下，你究竟叫什么？", "嗨！我应该怎么称呼你呢？", "请认真回答：你有名字吗？",
                                  "你好呀，给我讲讲你自己。", "冒昧问一句，谁把你做出来的？", "我想知道，你是什么人工智能？"]},
                     # fresh arithmetic for the GRPO-trained course assistant (model/rl), through the agent loop
                     {"id": "tools", "title": "工具 hidden", "kind": "tool", "min_pass": 0.6, "max_new_tokens": 64,
                      "items": [{"prompt": "请帮忙算：47*38", "expect": "1786"}, {"prompt": "What's 29*61?", "expect": "1769"},
                                {"prompt": "Calculate (23+58)*7 for me.", "expect": "567"},
                                {"prompt": "劳驾算一下 8412+935。", "expect": "9347"},
                                {"prompt": "4662/18 得多少？", "expect": "259"}, {"prompt": "请帮忙算：76*44-13", "expect": "3331"}]}]}


def read(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def write(files: dict[str, bytes], path: Path) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for n, data in files.items():
            z.writestr(n, data)
    return path


def info(files) -> dict:
    return json.loads(files["bundle.json"])


def put_info(files, d) -> None:
    files["bundle.json"] = json.dumps(d, ensure_ascii=False).encode()


def replace_file(files, art: str, rel: str, data: bytes, *, list_too: bool = True, manifest_too: bool = False) -> None:
    """Swap one bundled file; fix the bundle's list (``list_too``) and the manifest's digest (``manifest_too``)."""
    files[f"artifacts/{art}/{rel}"] = data
    d = info(files)
    digest = hashlib.sha256(data).hexdigest()
    if list_too:
        d["artifacts"][art]["files"][rel].update(sha256=digest, bytes=len(data))
    if manifest_too:
        man = d["artifacts"][art]["manifest"]
        man["files"][rel].update(sha256=digest, bytes=len(data))
        files[f"artifacts/{art}/manifest.json"] = json.dumps(man, indent=2, ensure_ascii=False).encode()
    put_info(files, d)


def edit_manifest(files, art: str, edit) -> None:
    """Edit an artifact's manifest in both places it is kept (the zip member and bundle.json's copy)."""
    d = info(files)
    man = d["artifacts"][art]["manifest"]
    edit(man)
    files[f"artifacts/{art}/manifest.json"] = json.dumps(man, indent=2, ensure_ascii=False).encode()
    put_info(files, d)

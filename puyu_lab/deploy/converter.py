"""HF → GGUF with llama.cpp's own converter, from the same version as the installed llama-cpp-python.

The converter (``convert_hf_to_gguf.py`` and its ``conversion/`` package) ships inside the
llama-cpp-python *source* distribution, under ``vendor/llama.cpp/``. :func:`ensure_converter`
fetches that sdist from the package registry once per environment (``make setup`` does it) and
keeps just those files under ``<venv>/share/puyu-lab/``. No converter is written by hand.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from ..errors import InputError, PuyuError

# the converter, its model classes, and the gguf-py it was written against (newer than the
# registry's gguf 0.19: it has LazyChunkedTensor), which the script puts first on sys.path
MEMBERS = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/")


class ConverterMissing(PuyuError):
    pass


def llama_cpp_version() -> str:
    from importlib.metadata import version

    return version("llama-cpp-python")


def converter_dir() -> Path:
    env = os.environ.get("PUYU_LAB_CONVERTER_DIR")
    if env:
        return Path(env)
    return Path(sys.prefix) / "share" / "puyu-lab" / f"llama.cpp-{llama_cpp_version()}"


def converter_script() -> Path:
    return converter_dir() / "convert_hf_to_gguf.py"


def ensure_converter(download: bool = True) -> Path:
    """The converter script, fetched once (from the registry) when missing."""
    script = converter_script()
    if script.is_file() and (script.parent / "gguf-py" / "gguf").is_dir():
        return script
    if not download:
        raise ConverterMissing(f"llama.cpp's converter is not installed ({script}): run `make setup` "
                               "(it fetches the llama-cpp-python source once)",
                               zh=f"还没有安装 llama.cpp 的转换脚本（{script}）：请运行 `make setup`"
                                  "（它会下载一次 llama-cpp-python 的源码）")
    ver = llama_cpp_version()
    target = converter_dir()
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               f"llama-cpp-python=={ver}", "-d", tmp, "-q"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        sdists = list(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if not sdists:
            raise ConverterMissing(f"could not fetch the llama-cpp-python {ver} source to get llama.cpp's converter "
                                   f"(needs the package registry once): {r.stderr.strip()[-400:]}",
                                   zh=f"无法下载 llama-cpp-python {ver} 的源码来获取 llama.cpp 的转换脚本"
                                      f"（需要能访问一次包仓库）：{r.stderr.strip()[-400:]}")
        staging = Path(tempfile.mkdtemp(dir=target.parent if target.parent.exists() else None))
        try:
            with tarfile.open(sdists[0]) as tf:
                prefix = f"{tf.getnames()[0].split('/')[0]}/vendor/llama.cpp/"
                picked = [m for m in tf.getmembers() if m.name.startswith(prefix)
                          and any(m.name[len(prefix):].startswith(x) for x in MEMBERS) and (m.isfile() or m.isdir())]
                for m in picked:
                    m.name = m.name[len(prefix):]
                tf.extractall(staging, members=picked, filter="data")
            if not (staging / "convert_hf_to_gguf.py").is_file():
                raise ConverterMissing(f"the llama-cpp-python {ver} source has no vendor/llama.cpp/convert_hf_to_gguf.py",
                                       zh=f"llama-cpp-python {ver} 的源码中没有 vendor/llama.cpp/convert_hf_to_gguf.py")
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists() and not (target / "gguf-py" / "gguf").is_dir():
                shutil.rmtree(target)  # an older, incomplete extraction
            if not target.exists():
                os.replace(staging, target)  # atomic: a half-extracted converter is never seen
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return script


SUPPORTED_HINT = "a Llama-family model (LlamaForCausalLM, InternLM2ForCausalLM, Qwen2, Mistral …)"
SUPPORTED_HINT_ZH = "Llama 系列的模型（LlamaForCausalLM、InternLM2ForCausalLM、Qwen2、Mistral …）"


def convert(model_dir: str | Path, out_path: str | Path, outtype: str = "f32") -> Path:
    """Convert a HF model directory to one GGUF file (``f32``/``f16``/``bf16``/``q8_0``)."""
    import json

    model_dir, out_path = Path(model_dir), Path(out_path)
    if not model_dir.is_dir():
        raise InputError(f"{model_dir}: no such model directory — give a directory with config.json and weights "
                         "(e.g. the model/sft artifact)",
                         zh=f"{model_dir}：模型目录不存在——请给出含 config.json 和权重的目录（例如 model/sft 产物）")
    cfg_file = model_dir / "config.json"
    if not cfg_file.is_file():
        raise InputError(f"{model_dir}: no config.json — not a Hugging Face model directory",
                         zh=f"{model_dir}：没有 config.json——这不是 Hugging Face 模型目录")
    arch = (json.loads(cfg_file.read_text(encoding="utf-8")).get("architectures") or ["?"])[0]
    script = ensure_converter()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".partial")
    # the converter itself, through a wrapper that names a known pre-tokenizer by its regex when the
    # vocabulary's hash is new (convert_known_pre.py says why)
    wrapper = Path(__file__).with_name("convert_known_pre.py")
    cmd = [sys.executable, str(wrapper), str(script), str(model_dir), "--outfile", str(tmp), "--outtype", outtype]
    env = {k: v for k, v in os.environ.items() if k != "NO_LOCAL_GGUF"}  # the vendored gguf-py, not the registry's
    r = subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=env)  # it logs vocabulary pieces
    if r.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        err = r.stderr.strip().splitlines()
        last = next((line for line in reversed(err) if line.strip()), "no output")
        if "not supported" in r.stderr:
            raise InputError(f"{model_dir}: llama.cpp's converter does not support the architecture {arch!r}; "
                             f"use {SUPPORTED_HINT}. ({last})",
                             zh=f"{model_dir}：llama.cpp 的转换脚本不支持 {arch!r} 架构；请换用{SUPPORTED_HINT_ZH}。"
                                f"（{last}）")
        raise PuyuError(f"converting {model_dir} to GGUF failed: {last}", zh=f"把 {model_dir} 转换为 GGUF 失败：{last}")
    os.replace(tmp, out_path)
    return out_path

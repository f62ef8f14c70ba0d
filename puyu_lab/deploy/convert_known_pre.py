"""Run llama.cpp's converter on a BPE tokenizer whose pre-tokenizer llama.cpp implements but whose
vocabulary it has never seen.

llama.cpp's ``get_vocab_base_pre`` names the pre-tokenizer (the regex that splits text before BPE) by
hashing the *token ids* of a test string, so it only recognises published checkpoints: a model with a
retrained or extended vocabulary (a Qwen2-shaped model with its own tokenizer, say) is refused even
though its split rule is exactly Qwen2's. This wrapper keeps the converter's own answer and, only
when it gives up, reads the split regex from the model's ``tokenizer.json``; if that regex is one
llama.cpp implements (Qwen2's, Llama 3's), it names that pre-tokenizer, else the converter's error
stands. The converter itself is unchanged. No library offers this: it is a patch of one method.

Usage (what :func:`puyu_lab.deploy.converter.convert` runs)::

    python convert_known_pre.py CONVERT_HF_TO_GGUF.PY MODEL_DIR --outfile … --outtype …
"""
from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

# tokenizer.json's Split regex → llama.cpp's pre-tokenizer name (llama-vocab.cpp implements each split)
KNOWN = {
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+":
        "qwen2",
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+":
        "llama-bpe",
}


def split_regex(model_dir: Path) -> str | None:
    """The regex of the byte-level Split in ``tokenizer.json``'s pre-tokenizer, if it has exactly one."""
    try:
        tj = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    pre = tj.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    splits = [s for s in steps if s.get("type") == "Split"]
    if len(splits) != 1 or not any(s.get("type") == "ByteLevel" for s in steps):
        return None
    pattern = splits[0].get("pattern") or {}
    return pattern.get("Regex")


def main() -> None:
    script = Path(sys.argv[1]).resolve()
    sys.argv = [str(script), *sys.argv[2:]]
    sys.path.insert(0, str(script.parent))
    sys.path.insert(1, str(script.parent / "gguf-py"))
    from conversion import base

    original = base.TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self, tokenizer):
        try:
            return original(self, tokenizer)
        except NotImplementedError:
            name = KNOWN.get(split_regex(Path(self.dir_model)) or "")
            if name is None:
                raise
            base.logger.warning(f"pre-tokenizer not known by its token hash; its split regex is llama.cpp's {name!r}")
            return name

    base.TextModel.get_vocab_base_pre = get_vocab_base_pre
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()

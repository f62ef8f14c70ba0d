"""书生·浦语 Chain: the JupyterLab sidebar of puyu-lab (prebuilt labextension) and its server part.

The server extension serves the chain's state at ``GET /puyu-lab/api/chain`` — authenticated like
every Jupyter API (the server's token or a logged-in session; anything else gets 403). The data is
:meth:`puyu_lab.workspace.Workspace.chain`, plus the path of each stage's lab relative to the
server's root, so the sidebar can open it.
"""
from __future__ import annotations

from .handlers import setup_handlers

__version__ = "0.1.0"


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "puyu-lab-chain"}]


def _jupyter_server_extension_points():
    return [{"module": "puyu_lab_chain"}]


def _load_jupyter_server_extension(server_app):
    setup_handlers(server_app.web_app, server_app.root_dir)
    server_app.log.info("puyu_lab_chain: serving the chain state at /puyu-lab/api/chain")

"""Assets the HTML pages the project writes (the chain's report, the report card, the gradebook) carry beside them."""
from __future__ import annotations

import os
from pathlib import Path


def ship_plotly(dest: Path) -> None:
    """plotly.js from the installed plotly package, once per folder (the version the figures were made with)."""
    import shutil

    import plotly

    src = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not dest.exists() or dest.stat().st_size != src.stat().st_size:
        shutil.copyfile(src, dest.with_name(dest.name + ".partial"))
        os.replace(dest.with_name(dest.name + ".partial"), dest)

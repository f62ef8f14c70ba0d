"""Lazy package exports: a package names what it exports and the submodule that holds each, and the
submodule (torch, llama.cpp, widgets …) is imported only when the name is first used."""
from __future__ import annotations

import importlib


def exports(package: str, table: dict[str, str]):
    """A module ``__getattr__`` for ``package`` serving ``name → submodule`` from ``table``."""

    def __getattr__(name: str):
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f".{table[name]}", package), name)

    return __getattr__

"""Importing a folder's modules as a package that exists only in memory (standard library only)."""

from __future__ import annotations

import sys
import types
from pathlib import Path


def synthetic_package(name: str, folder: Path) -> str:
    """Register (once) an empty package `name` whose `__path__` is `folder`, so the modules in the folder import
    as its submodules and their relative imports work. Returns `name`."""
    if name not in sys.modules:
        package = types.ModuleType(name)
        package.__path__ = [str(folder)]
        sys.modules[name] = package
    return name

"""Doctests of every module of the package, imported under the names users import them by.

``detectors/`` and ``stream/`` are installed as ``streamdrift.detectors`` and
``streamdrift.stream`` (pyproject's package-dir). Pytest's own ``--doctest-modules`` would import
them by their folder names, as a second copy of every class, which the packages refuse (see
``detectors/__init__.py``); so their doctests are collected here instead.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from _pytest.doctest import DoctestModule  # pytest has no public name for it (pinned < 10)

ROOT = Path(__file__).resolve().parent
#: Source folder -> the package it is installed as.
INSTALLED_AS = {"detectors": "streamdrift.detectors", "stream": "streamdrift.stream", "streamdrift": "streamdrift"}


def module_name(path: Path) -> str | None:
    """The installed module name of a source file, or ``None`` outside the package.

    >>> module_name(ROOT / "detectors" / "adwin.py"), module_name(ROOT / "stream" / "__init__.py")
    ('streamdrift.detectors.adwin', 'streamdrift.stream')
    >>> module_name(ROOT / "tests" / "unit" / "test_state.py") is None
    True
    """
    try:
        parts = list(path.resolve().relative_to(ROOT).with_suffix("").parts)
    except ValueError:
        return None
    if len(parts) < 2 or parts[0] not in INSTALLED_AS:
        return None
    parts[0] = INSTALLED_AS[parts[0]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


class InstalledDoctestModule(DoctestModule):
    """A module's doctests, the module imported by its installed name."""

    def _getobj(self):
        return importlib.import_module(module_name(self.path))


class InstalledModule(pytest.Module):
    """A source file named on the command line (``pytest detectors/adwin.py``), which pytest
    collects as a test module too: imported by its installed name (it holds no tests)."""

    def _getobj(self):
        return importlib.import_module(module_name(self.path))


def pytest_pycollect_makemodule(module_path: Path, parent):
    if module_name(module_path) is not None:
        return InstalledModule.from_parent(parent, path=module_path)
    return None


def pytest_collect_file(file_path: Path, parent):
    if file_path.suffix == ".py" and module_name(file_path) is not None:
        return InstalledDoctestModule.from_parent(parent, path=file_path)
    return None


def pytest_collect_directory(path: Path, parent):
    # A plain folder, not a pytest Package: a Package imports its __init__.py by the folder name.
    if path.resolve().parent == ROOT and path.name in INSTALLED_AS:
        return pytest.Dir.from_parent(parent, path=path)
    return None

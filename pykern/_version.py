"""pykern's version, from the one place it is written: pyproject.toml.

Installed, the package metadata holds it (``importlib.metadata``). A source tree that was never
installed (``PYTHONPATH=.``, as bench/device_run.sh's dry run does) has no metadata, so the
version is read from the checkout's pyproject.toml; failing both, it is "0+unknown".
"""
from __future__ import annotations

import os
import re

UNKNOWN = "0+unknown"


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("pykern")
    except PackageNotFoundError:
        return source_tree_version()


def source_tree_version(root: str | None = None) -> str:
    """The [project] version in ``root``/pyproject.toml (default: the checkout this file is in)."""
    root = root or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        with open(os.path.join(root, "pyproject.toml"), encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return UNKNOWN
    project = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    found = project and re.search(r'^version\s*=\s*"([^"]+)"', project.group(1), re.M)
    return found.group(1) if found else UNKNOWN


__version__ = package_version()

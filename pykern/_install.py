"""Which copy of pykern this is, and whether a source tree hides an installed copy.

``python -m pykern`` or ``python -c`` run from the repository root put the working directory
first on ``sys.path``, so ``import pykern`` finds the source folder ``pykern/``, which has no
built ``pykern._cuda``, even though the installed copy in site-packages has it. The ``pykern``
console script does not put the working directory on ``sys.path``. This module finds the case
and says so in words, instead of "pykern._cuda was not built".
"""
from __future__ import annotations

import glob
import os
import sys
from typing import Optional

HERE = os.path.dirname(os.path.abspath(__file__))


def has_extension(package_dir: str) -> bool:
    """Whether a built pykern._cuda sits in ``package_dir`` (by file name; nothing is imported)."""
    return any(glob.glob(os.path.join(package_dir, pattern)) for pattern in ("_cuda.*.so", "_cuda.*.pyd", "_cuda.so"))


def built_extensions() -> Optional[dict]:
    """{extension: 'built' or why not} as this copy's build recorded it (pykern/_build.py, written
    by CMakeLists.txt); None for a source tree that was never built. An editable install keeps
    the extensions outside the source folder, where has_extension() cannot see them; this can."""
    try:
        from ._build import EXTENSIONS
    except ImportError:
        return None
    return dict(EXTENSIONS)


def other_copies() -> list:
    """Every other ``pykern`` package on ``sys.path``, in search order."""
    found = []
    for entry in sys.path:
        cand = os.path.join(os.path.abspath(entry or os.curdir), "pykern")
        if os.path.isfile(os.path.join(cand, "__init__.py")) and os.path.realpath(cand) != os.path.realpath(HERE):
            if cand not in found:
                found.append(cand)
    return found


def shadow_note() -> Optional[str]:
    """A sentence when this copy lacks pykern._cuda and hides a copy that has it; else None."""
    if has_extension(HERE):
        return None
    hidden = [d for d in other_copies() if has_extension(d)]
    if not hidden:
        return None
    is_source = os.path.isfile(os.path.join(os.path.dirname(HERE), "pyproject.toml"))
    return (f"pykern was imported from the {'source tree' if is_source else 'folder'} {HERE}, which has no "
            f"built pykern._cuda, and it hides the installed copy {hidden[0]}, which has it. Python puts "
            "the working directory (or the script's folder) first on sys.path, so 'python -m pykern', "
            "'python -c' and scripts run from the repository root import the source tree. Run the "
            "'pykern' command instead, or run Python from another folder.")


def explain_missing_extension(reason: str, hint: str = "") -> str:
    """The cuda backend's 'unavailable' reason, with the true cause when a source tree hides
    an installed copy that has the extension; else ``reason``, with ``hint`` (what to do instead)
    in parentheses when given."""
    note = shadow_note()
    if note:
        return note
    return f"{reason} ({hint})" if hint else reason


def require_built(script: str, need: tuple = ()) -> None:
    """Exit a benchmark script, with the reason, unless this copy of pykern was built and each
    extension in ``need`` imports: a source tree that was never built has no compiled kernels,
    and every figure the script printed would silently time the NumPy fallback instead."""
    import importlib
    built = built_extensions()
    if built is None:
        raise SystemExit(f"{script}: pykern was imported from {HERE}, a source tree that was never built "
                         "(no compiled kernels: the figures would time the NumPy fallback). Install it "
                         "(pip install .) and run the script with that Python.")
    for name in need:
        if built.get(name) != "built":
            raise SystemExit(f"{script}: this pykern ({HERE}) was built without pykern.{name}: "
                             f"{built.get(name, 'not recorded')}; reinstall it with that extension")
        try:
            importlib.import_module(f"{__package__}.{name}")
        except ImportError as e:
            raise SystemExit(f"{script}: pykern.{name} was built but cannot be imported ({e}); reinstall pykern") from e


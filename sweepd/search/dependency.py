"""The optional packages some searchers are built on, and the one-line error when one is missing.

A leaf of sweepd.search: the searchers that need a package import it from here, and
sweepd.search's own __init__ re-exports it, so no searcher imports its package's __init__.
"""
from __future__ import annotations

import contextlib
import importlib
import io
from types import ModuleType

# Searchers built on an optional package: (the module they import, how to install it).
_DEPENDENCIES = {
    "optuna": ("optuna", "pip install 'sweepd[optuna]'"),
    "protein": ("pufferlib.sweep", "pip install 'sweepd[puffer]' (offline: scripts/install_pufferlib.sh)"),
}


class SearcherUnavailable(ImportError, ValueError):
    """A searcher's optional dependency is not installed. A ValueError too, so that the CLI prints
    it as one line (with the install command) instead of a traceback."""


def require_dependency(name: str) -> ModuleType | None:
    """The module searcher ``name`` is built on (None for a searcher that needs none).

    Raises SearcherUnavailable, naming the install command, when it cannot be imported.
    """
    if name not in _DEPENDENCIES:
        return None
    module, install = _DEPENDENCIES[name]
    try:
        # PufferLib's import prints gym's deprecation notice: not the user's business at each launch.
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return importlib.import_module(module)
    except ImportError as exc:
        raise SearcherUnavailable(f"the {name} searcher needs {module.split('.')[0]}, which is not installed "
                                  f"({exc}): {install}") from exc

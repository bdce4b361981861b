"""How the store's modules depend on each other and on the rest of sweepd."""

from __future__ import annotations

import ast
from pathlib import Path

import sweepd.store
from sweepd import search, space, spec

STORE = Path(sweepd.store.__file__).parent


def test_store_modules_use_only_each_others_public_names():
    private = []
    for path in sorted(STORE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sweepd."):
                private += [f"{path.name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert private == []


def test_the_spec_validates_against_the_searchers_and_spaces_that_exist():
    assert spec.SEARCHERS is search.SEARCHERS and spec.SPACES is space.SPACES


def test_the_store_depends_on_no_sweepd_module_but_the_settings_leaf():
    outside = []
    for path in sorted(STORE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            outside += [f"{path.name}: {m}" for m in modules
                        if m.startswith("sweepd") and not m.startswith("sweepd.store") and m != "sweepd.settings"]
    assert outside == []

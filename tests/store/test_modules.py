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

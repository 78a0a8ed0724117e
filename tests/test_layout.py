"""Imports point one way: core (`hippograph/`) ← `indexers/` (offline) and `retrievers/` (online) ← api, cli, server.

Walks every import statement (top-level and inside functions) with `ast`, resolves relative
imports, and checks each edge against the layer rules. The reader `snapshot.py` opens the
stored vector and BM25 indexes, whose classes still live with the indexers and retrievers:
those two edges are the listed exceptions.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"hippograph": ROOT / "hippograph", "hippograph.indexers": ROOT / "indexers",
            "hippograph.retrievers": ROOT / "retrievers"}
TOP = ("hippograph.api", "hippograph.cli", "hippograph.server", "hippograph.demo", "hippograph.integrations",
       "hippograph.web", "hippograph.__main__")
ALLOWED = {
    "core": {"core"},
    "indexers": {"core", "indexers"},
    "retrievers": {"core", "retrievers"},
    "top": {"core", "indexers", "retrievers", "top"},
}
EXCEPTIONS = {
    ("hippograph.snapshot", "hippograph.indexers.spann"),  # opens the stored vector indexes
    ("hippograph.snapshot", "hippograph.retrievers.lexical"),  # opens the stored BM25 index
}


def layer(module: str) -> str | None:
    """Layer of a hippograph module (None for third-party and standard-library modules)."""
    if module == "hippograph.__init__":
        return "top"  # the package facade re-exports HippoGraph lazily
    if module != "hippograph" and not module.startswith("hippograph."):
        return None
    for prefix in ("hippograph.indexers", "hippograph.retrievers"):
        if module == prefix or module.startswith(prefix + "."):
            return prefix.split(".")[1]
    if any(module == t or module.startswith(t + ".") for t in TOP):
        return "top"
    return "core"


def modules() -> list[tuple[str, Path]]:
    out = []
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("")
            if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
                continue
            out.append((".".join([package, *rel.parts]), path))
    return out


def imports(module: str, path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import in a file, relative ones resolved."""
    package = module[: -len(".__init__")] if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    known = {m for m, _ in modules()}
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((target, node.lineno))
            for alias in node.names:  # `from . import shards` imports a submodule
                sub = f"{target}.{alias.name}"
                if sub in known:
                    out.append((sub, node.lineno))
    return out


def test_imports_point_one_way():
    found = modules()
    assert any(m == "hippograph.indexers.pipeline" for m, _ in found)  # the walk sees all three folders
    problems = []
    for module, path in found:
        here = layer(module)
        for target, line in imports(module, path):
            there = layer(target)
            if there is None or there in ALLOWED[here] or (module, target) in EXCEPTIONS:
                continue
            problems.append(f"{path.relative_to(ROOT)}:{line}: {here} module imports {target} ({there})")
    assert not problems, "imports against the layering:\n" + "\n".join(problems)


def test_the_walker_sees_a_violation(tmp_path):
    """The check can fail: an indexer importing a retriever is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from ..retrievers.lexical import BM25Index\n", encoding="utf-8")
    edges = imports("hippograph.indexers.bad", bad)
    assert ("hippograph.retrievers.lexical", 2) in edges
    assert layer("hippograph.retrievers.lexical") not in ALLOWED[layer("hippograph.indexers.bad")]


def test_builder_module_is_gone():
    assert not (ROOT / "hippograph" / "builder.py").exists()

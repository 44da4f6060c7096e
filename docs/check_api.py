"""Checks that the built API reference has an entry for every public name.

Run after the HTML build (`make docs` does):

    .venv/bin/python docs/check_api.py [docs/_build/html]

The public names of `jconv`, `jconv.nnx`, `jconv.linen`, `jconv.learn` and
`jconv.document` are each module's `__all__`, or else the names it
re-exports (`from m import x as x`) and the ones it defines without a
leading underscore. Each must be an object of the build's Python domain
(its `objects.inv`) under the module's name: `jconv.conv`,
`jconv.nnx.Conv2D`, ...; a public submodule (`jconv.nnx`) must be a
documented module. Prints the missing names and exits 1 if there are any.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
import types
import zlib
from pathlib import Path

MODULES = ("jconv", "jconv.nnx", "jconv.linen", "jconv.learn", "jconv.document")


def public_names(module: types.ModuleType) -> list[str]:
    """`__all__`, or the re-exported and defined public names, in order."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    names = []
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            names += [a.name for a in node.names if a.asname == a.name]
        elif isinstance(node, ast.Import):
            names += [a.asname for a in node.names if a.asname and "." not in a.name]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [t.id for t in targets if isinstance(t, ast.Name)]
    return [n for n in dict.fromkeys(names) if not n.startswith("_")]


def documented(build: Path) -> dict[str, str]:
    """The Python objects of a Sphinx build: full name -> role."""
    data = (build / "objects.inv").read_bytes()
    # Four header lines, then zlib-compressed `name domain:role prio uri dispname`.
    body = zlib.decompress(data.split(b"\n", 4)[4]).decode()
    objects = {}
    for line in body.splitlines():
        name, role, *_ = line.split(" ", 2)
        if role.startswith("py:"):
            objects[name] = role
    return objects


def missing_names(build: Path) -> list[str]:
    objects = documented(build)
    missing = []
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        if objects.get(module_name) != "py:module":
            missing.append(f"{module_name} (module)")
        for name in public_names(module):
            full = f"{module_name}.{name}"
            if isinstance(getattr(module, name), types.ModuleType):
                full = getattr(module, name).__name__
                if objects.get(full) != "py:module":
                    missing.append(f"{full} (module)")
            elif full not in objects:
                missing.append(full)
    return missing


def main(argv: list[str]) -> int:
    build = (
        Path(argv[1]) if len(argv) > 1 else Path(__file__).parent / "_build" / "html"
    )
    if not (build / "objects.inv").is_file():
        print(f"check_api: no {build / 'objects.inv'}: build the docs first")
        return 1
    missing = missing_names(build)
    for name in missing:
        print(f"missing from the API reference: {name}")
    total = sum(len(public_names(importlib.import_module(m))) for m in MODULES)
    if missing:
        print(f"check_api: {len(missing)} public names have no entry")
        return 1
    print(f"check_api: all {total} public names of {', '.join(MODULES)} have an entry")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""The package's shape, checked from its source with ``ast`` (nothing is imported):

* no import cycle between modules (imports inside functions count: they are cycles that
  only an import order hides; package ``__init__`` re-exports are left out);
* no private import across subpackages: neither ``from ..io.convert import _x`` nor
  ``from ..pp import _utils`` / ``from ..pp._utils import x`` outside ``pp`` (what is
  shared lives in a top-level internal module such as ``olinkpipe/_qc.py``, or is made
  public-internal: no leading underscore, documented);
* top-level internal modules (``olinkpipe/_*.py``) are the floor: they import no subpackage,
  so any subpackage may import them without a cycle;
* no module over ``MAX_MODULE_LINES`` lines, no function over ``MAX_FUNCTION_LINES`` lines
  (its docstring not counted);
* and of the test suite: no test module imports another (shared builders are in
  ``tests/builders.py``, ``tests/io_builders.py`` and ``conftest.py``), and warnings are
  errors (``filterwarnings = error``).

``ALLOWED_*`` list today's remaining violations (other branches are splitting them); the
test fails on any new one and on an allow-list entry that is no longer needed, so the lists
only shrink.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "olinkpipe"
MAX_MODULE_LINES = 800
MAX_FUNCTION_LINES = 120

#: import cycles (strongly connected components) that exist today
ALLOWED_CYCLES: list[set[str]] = []
#: (importing module, imported module, name) private imports across subpackages today
ALLOWED_PRIVATE: set[tuple[str, str, str]] = set()
#: modules over MAX_MODULE_LINES today
ALLOWED_BIG_MODULES: set[str] = set()
#: (module, function qualname) over MAX_FUNCTION_LINES today
ALLOWED_BIG_FUNCTIONS: set[tuple[str, str]] = set()


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()
TREES = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in MODULES.items()}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _subpackage(name: str) -> str:
    """``io`` for ``olinkpipe.io.npx``; ``""`` for top-level modules (``olinkpipe._qc``)."""
    parts = name.split(".")
    if len(parts) >= 2 and (len(parts) > 2 or _is_package(name)):
        return parts[1]
    return ""


def _imports(name: str) -> Iterator[tuple[str, str | None]]:
    """(imported module, imported name or None) for every import in the module's source."""
    package = name if _is_package(name) else name.rsplit(".", 1)[0]
    for node in ast.walk(TREES[name]):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "olinkpipe":
                    yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "olinkpipe":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in MODULES:  # `from . import _archive`: the module itself
                    yield sub, None
                else:
                    yield target, alias.name


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES if not _is_package(m)}
    for m in graph:
        for target, _ in _imports(m):
            if target in graph and target != m:
                graph[m].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[set[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def private_imports() -> set[tuple[str, str, str]]:
    found = set()
    for m in MODULES:
        mine = _subpackage(m)
        for target, name in _imports(m):
            theirs = _subpackage(target)
            if not theirs or theirs == mine:
                continue  # top-level internal modules are shared; within a subpackage is fine
            private_module = any(_private(p) for p in target.split(".")[2:])
            if private_module or (name is not None and _private(name)):
                found.add((m, target, name or ""))
    return found


def floor_imports() -> set[tuple[str, str]]:
    """(top-level internal module, subpackage module it imports): none may exist."""
    found = set()
    for m in MODULES:
        if m == "olinkpipe" or _subpackage(m) or not _private(m.rsplit(".", 1)[-1]):
            continue
        for target, _ in _imports(m):
            if _subpackage(target):
                found.add((m, target))
    return found


def _function_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    lines = node.end_lineno - node.lineno + 1
    if node.decorator_list:
        lines += node.lineno - min(d.lineno for d in node.decorator_list)
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        if isinstance(body[0].value.value, str):
            lines -= body[0].end_lineno - body[0].lineno + 1
    return lines


def big_functions() -> dict[tuple[str, str], int]:
    out = {}
    for m, tree in TREES.items():

        def walk(node: ast.AST, prefix: str, m: str = m) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    qual = f"{prefix}{child.name}"
                    if not isinstance(child, ast.ClassDef):
                        n = _function_lines(child)
                        if n > MAX_FUNCTION_LINES:
                            out[(m, qual)] = n
                    walk(child, qual + ".")
                else:
                    walk(child, prefix)

        walk(tree, "")
    return out


def big_modules() -> dict[str, int]:
    sizes = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in MODULES.items()}
    return {m: n for m, n in sizes.items() if n > MAX_MODULE_LINES}


def test_the_checker_sees_the_package():
    assert "olinkpipe.io.npx" in MODULES and "olinkpipe.io" in MODULES
    assert _subpackage("olinkpipe.io.npx") == "io" and _subpackage("olinkpipe._qc") == ""
    assert ("olinkpipe.io._readers", "read_any") in set(_imports("olinkpipe.io.npx"))
    assert ("olinkpipe.io._archive", None) in set(_imports("olinkpipe.io._readers"))
    # the checkers catch what they are for
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    tree = ast.parse("def f():\n    '''doc\n    more'''\n" + "    x = 1\n" * 130)
    assert _function_lines(tree.body[0]) == 131


def test_no_new_import_cycle():
    cycles = _cycles(_graph())
    new = [c for c in cycles if not any(c <= allowed for allowed in ALLOWED_CYCLES)]
    assert not new, f"new import cycle(s): {[sorted(c) for c in new]}"


def test_no_new_private_import_across_subpackages():
    new = sorted(private_imports() - ALLOWED_PRIVATE)
    assert not new, (
        "private imports across subpackages (make the name public-internal or move it to a "
        f"shared module): {new}"
    )


def test_top_level_internal_modules_are_the_floor():
    """``olinkpipe/_*.py`` serve every subpackage, so they import none of them."""
    assert not floor_imports(), (
        f"top-level internal modules importing a subpackage: {sorted(floor_imports())}"
    )


def test_no_new_oversized_module():
    new = {m: n for m, n in big_modules().items() if m not in ALLOWED_BIG_MODULES}
    assert not new, f"module(s) over {MAX_MODULE_LINES} lines: {new}"


def test_no_new_oversized_function():
    new = {f: n for f, n in big_functions().items() if f not in ALLOWED_BIG_FUNCTIONS}
    assert not new, f"function(s) over {MAX_FUNCTION_LINES} lines (docstring not counted): {new}"


def test_allow_lists_hold_only_remaining_violations():
    """A violation that was fixed leaves its allow-list: the lists only shrink."""
    cycles = _cycles(_graph())
    stale = [sorted(a) for a in ALLOWED_CYCLES if not any(c & a for c in cycles)]
    stale += sorted(ALLOWED_PRIVATE - private_imports())
    stale += sorted(ALLOWED_BIG_MODULES - set(big_modules()))
    stale += sorted(ALLOWED_BIG_FUNCTIONS - set(big_functions()))
    assert not stale, f"fixed; drop from the allow-lists in this file: {stale}"


TESTS = Path(__file__).resolve().parent


def test_no_test_module_imports_another():
    """Shared builders live in tests/builders.py, tests/io_builders.py and conftest.py."""
    found = []
    for path in sorted(TESTS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            found += [
                (path.name, n)
                for n in names
                if n.split(".")[-1].startswith("test_") or n.startswith("tests")
            ]
    assert not found, f"test modules importing test modules: {found}"


def test_warnings_are_errors_in_the_test_run():
    """``filterwarnings = error`` first: a new warning must be expected or ignored explicitly."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: pytest's own dependency
        import tomli as tomllib

    config = tomllib.loads((ROOT.parent / "pyproject.toml").read_text(encoding="utf-8"))
    assert config["tool"]["pytest"]["ini_options"]["filterwarnings"][0] == "error"


if __name__ == "__main__":  # print today's violations, to refresh the allow-lists after a merge
    for cycle in _cycles(_graph()):
        print("cycle", sorted(cycle))
    for item in sorted(private_imports()):
        print("private", item)
    for item in sorted(floor_imports()):
        print("floor", item)
    for module, n in sorted(big_modules().items()):
        print("module", module, n)
    for func, n in sorted(big_functions().items()):
        print("function", func, n)

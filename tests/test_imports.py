"""The import graph of weatherunc: no cycle between its modules; only the CLI imports the pipelines and
nothing imports the CLI.

Every ``import`` and ``from ... import`` counts, also inside functions; imports under
``if TYPE_CHECKING:`` do not (they never run). ``from package import name`` counts as an import
of ``package.name`` where that is a module, else of ``package``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "weatherunc"
#: The command line (a package) and the batch-job pipelines (a package).
CLI, PIPELINES = "weatherunc.cli", "weatherunc.pipelines"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking_block(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(tree: ast.Module, module: str, is_package: bool, modules: set[str]) -> set[str]:
    """Dotted names of what ``tree`` imports at run time: ``package.name`` where that is one of
    ``modules``, else ``package`` (relative imports resolved against ``module``)."""
    names: set[str] = set()
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if _is_type_checking_block(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                name = f"{base}.{alias.name}"
                names.add(name if name in modules else base)
        stack.extend(ast.iter_child_nodes(node))
    return names


def _import_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """``(graph, imported)``: edges between weatherunc modules, and every imported name per module."""
    paths = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    imported = {
        module: _imported_names(ast.parse(path.read_text()), module, path.name == "__init__.py", set(paths))
        for module, path in paths.items()
    }
    graph = {
        module: {name for name in names if name in paths and name != module}
        for module, names in imported.items()
    }
    return graph, imported


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = lowest[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = lowest[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    lowest[node] = min(lowest[node], index[child])
                continue
            work.pop()
            if work:
                lowest[work[-1][0]] = min(lowest[work[-1][0]], lowest[node])
            if lowest[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def test_no_import_cycle_between_weatherunc_modules() -> None:
    graph, _ = _import_graph()
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def _within(name: str, package: str) -> bool:
    """Whether the dotted ``name`` is ``package`` or one of its modules."""
    return name == package or name.startswith(f"{package}.")


def test_nothing_outside_the_cli_imports_it_and_only_the_cli_imports_the_pipelines() -> None:
    _, imported = _import_graph()
    assert {CLI, PIPELINES, f"{CLI}.jobs", f"{PIPELINES}.run_job"} <= set(imported)
    cli = sorted(
        module
        for module, names in imported.items()
        if not _within(module, CLI) and any(_within(name, CLI) for name in names)
    )
    pipelines = sorted(
        module
        for module, names in imported.items()
        if not _within(module, CLI)
        and not _within(module, PIPELINES)
        and any(_within(name, PIPELINES) for name in names)
    )
    assert cli == [] and pipelines == []
    assert any(_within(name, PIPELINES) for name in imported[f"{CLI}.jobs"])


def test_no_generic_top_level_package_beside_weatherunc() -> None:
    import weatherunc.pipelines

    assert weatherunc.pipelines.__file__.startswith(str(PACKAGE))
    assert not (PACKAGE.parent / "pipelines" / "__init__.py").exists()
    assert not list((PACKAGE.parent / "pipelines").glob("*.py"))

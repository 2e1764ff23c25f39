"""The layout's rule that no module imports another that imports it back: a cycle makes the order in
which modules load matter (a name imported from a half-loaded module is missing), and hides which
part depends on which. The graph is read from the source with `ast`, so the test sees every import,
including those of modules no test loads.

Run as a script (`python tests/test_layout.py`) it also lists the cycles that imports inside
functions still close: those load fine (the function runs once every module is loaded) but mark
places where two parts know about each other."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("generation", "analysis", "annotation", "mwe_site")


@dataclass(frozen=True)
class Imports:
    """The project modules each module imports, as the interpreter runs them: at load time (module
    level, including class bodies and module-level if/try), or only when a function runs. Imports
    under `if TYPE_CHECKING:` never run and count in neither."""

    module_level: dict[str, set[str]]
    function_level: dict[str, set[str]]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _project_modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts
    }


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(
    node: ast.AST, *, in_function: bool = False
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Each import statement under node, and whether it runs only when a function is called."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, in_function
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for statement in child.orelse:
                yield from _imports(ast.Module(body=[statement], type_ignores=[]), in_function=in_function)
        else:
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            yield from _imports(child, in_function=nested)


def _targets(
    statement: ast.Import | ast.ImportFrom, *, module: str, is_package: bool, known: set[str]
) -> set[str]:
    """The project modules a statement loads: the most specific one each name resolves to (`from a
    import b` loads the module a.b when there is one, else a). The packages above a module are left
    out: Python loads them first, but a package that imports its own submodules is no cycle."""
    if isinstance(statement, ast.Import):
        names = [alias.name for alias in statement.names]
    else:
        base = statement.module or ""
        if statement.level:
            anchor = module.split(".") if is_package else module.split(".")[:-1]
            anchor = anchor[: len(anchor) - (statement.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        names = [
            f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in statement.names
        ]
    found = set()
    for name in names:
        # `import a.b.c` of a name that is not a module (a typo, a third-party package) is skipped.
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)
    return found


def import_graph() -> Imports:
    modules = _project_modules()
    known = set(modules)
    module_level: dict[str, set[str]] = {name: set() for name in modules}
    function_level: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for statement, in_function in _imports(tree):
            targets = _targets(statement, module=name, is_package=path.name == "__init__.py", known=known)
            (function_level if in_function else module_level)[name] |= targets
    return Imports(module_level=module_level, function_level=function_level)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm), each sorted:
    every module of one reaches every other, so each holds at least one cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(start: str) -> None:
        # Iterative, so that a long chain of imports cannot exhaust the recursion limit.
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph.get(successor, ())))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def _combined(imports: Imports) -> dict[str, set[str]]:
    return {name: imports.module_level[name] | imports.function_level[name] for name in imports.module_level}


# ----------------------------------------------------------------------------- tests


def test_no_module_imports_another_that_imports_it_back():
    assert cycles(import_graph().module_level) == []


def test_the_job_machinery_imports_none_of_the_work_it_runs():
    # Each part registers its kinds of job from its AppConfig.ready (generation.apps, analysis.apps);
    # generation.jobs knows only the Job model and the LM layer (the worker's loaded models).
    imports = import_graph()
    parts = ("generation.catalog", "generation.evaluation", "generation.pipeline", "analysis", "annotation")
    reached = {
        (name, target)
        for name in imports.module_level
        if name == "generation.jobs" or name.startswith("generation.jobs.")
        for target in imports.module_level[name] | imports.function_level[name]
        if target.startswith(parts)
    }
    assert reached == set()


def test_a_cycle_is_found():
    # The detector itself: a three-module ring and a pair are found; a chain and a self-import are not.
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": {"d", "f"}, "f": set(), "g": {"g"}}
    assert cycles(graph) == [["a", "b", "c"], ["d", "e"]]


def test_imports_are_resolved_to_project_modules(tmp_path, monkeypatch):
    # What the graph is built from: relative and absolute imports, `from package import module`,
    # function-level imports apart, TYPE_CHECKING imports left out, third-party imports ignored.
    package = tmp_path / "generation"
    (package / "jobs").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "jobs" / "__init__.py").write_text("")
    (package / "jobs" / "services.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "import django.db\n"
        "from . import tasks\n"
        "from generation import models\n"
        "if TYPE_CHECKING:\n"
        "    from generation.catalog import views\n"
        "def send():\n"
        "    from generation.jobs.tasks import run_job\n"
    )
    (package / "jobs" / "tasks.py").write_text("from ..models import Job\n")
    (package / "models.py").write_text("")
    (package / "catalog").mkdir()
    (package / "catalog" / "__init__.py").write_text("")
    (package / "catalog" / "views.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGES", ("generation",))

    imports = import_graph()

    assert imports.module_level["generation.jobs.services"] == {"generation.jobs.tasks", "generation.models"}
    assert imports.function_level["generation.jobs.services"] == {"generation.jobs.tasks"}
    assert imports.module_level["generation.jobs.tasks"] == {"generation.models"}


if __name__ == "__main__":
    found = import_graph()
    edges = sum(len(targets) for targets in found.module_level.values())
    late = sum(len(targets) for targets in found.function_level.values())
    print(f"{len(found.module_level)} modules, {edges} module-level imports, {late} function-level imports")
    print("cycles of module-level imports:", cycles(found.module_level) or "none")
    combined = cycles(_combined(found))
    print("cycles once function-level imports count too:", "none" if not combined else "")
    for component in combined:
        print("  " + ", ".join(component))
        for name in component:
            for target in sorted(found.function_level[name] & set(component)):
                print(f"    {name} -> {target} (in a function)")

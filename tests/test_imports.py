"""survey_lib's import graph: no cycles, and light modules stay light.

Every import inside the package counts, at the top of a module or inside a function, so a
cycle cannot hide behind a function-level import.
"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "survey_lib"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{base}.{node.module}" if node.module else base
                else:
                    base = node.module or ""
                # `from . import x` imports the submodule x when there is one
                subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
                targets.update(subs or [base])
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_sees_relative_imports():
    graph = import_graph()
    assert "survey_lib.preference_losses" in graph["survey_lib.preference_config"]
    assert "survey_lib.zoo" in graph["survey_lib.zoo.build"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_survey_lib_has_no_import_cycle():
    assert find_cycle(import_graph()) is None


@pytest.mark.parametrize("module, heavy", [
    ("survey_lib.zoo", ("torch", "transformers")),  # the registry, read by models and the profiles
    ("survey_lib.enumerable_preferences", ("transformers",)),  # exact losses need only torch
    ("survey_lib.models", ("survey_lib.world.text", "survey_lib.generation")),
    ("survey_lib.smollm2", ("torch", "transformers")),  # the path to the converted model, read by models
    ("survey_lib.data_files", ("torch", "datasets")),  # datasets loads when rows are read
    ("survey_lib.world.chat", ("torch", "transformers")),  # a gold reward model loads them when built
])
def test_light_modules_do_not_pull_heavy_ones(module, heavy):
    code = f"import sys, {module}; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"importing {module} pulled in {out}"

"""Planning stays light: validate and plan never import torch, diffusers, transformers or moviepy."""

from __future__ import annotations

import subprocess
import sys

from conftest import EXAMPLES, ROOT

HEAVY = ("torch", "diffusers", "transformers", "moviepy")


def test_validate_and_plan_import_nothing_heavy() -> None:
    examples = sorted(str(p) for p in EXAMPLES.glob("*.yaml"))
    code = (
        "import sys\n"
        "from storyforge import cli\n"
        "from storyforge import api\n"
        f"for path in {examples!r}:\n"
        "    api.validate(path)\n"
        "    api.plan(path).dumps()\n"
        "import storyforge.stitch, storyforge.console\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_cli_plan_in_a_subprocess_imports_nothing_heavy() -> None:
    example = EXAMPLES / "swan-lake.yaml"
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['storyforge', 'plan', {str(example)!r}, '--json']\n"
        "try:\n"
        "    runpy.run_module('storyforge', run_name='__main__')\n"
        "except SystemExit as done:\n"
        "    assert done.code == 0, done.code\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "sys.stderr.write('HEAVY:' + ','.join(heavy) + '\\n')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert "HEAVY:\n" in result.stderr, result.stderr[-2000:]


def test_import_linter_contract() -> None:
    result = subprocess.run(["lint-imports"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_module_imports_itself_through_others() -> None:
    """No import cycle in the package, lazy imports inside functions included (what grimp sees)."""
    import grimp

    graph = grimp.build_graph("storyforge")
    edges = {module: {m for m in graph.find_modules_directly_imported_by(module)
                      if m.startswith("storyforge")}
             for module in graph.modules if module.startswith("storyforge")}
    cycles = _cycles(edges)
    assert cycles == [], "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_the_render_loop_knows_nothing_of_ranks() -> None:
    """Torchrun ranks live in storyforge.executors.torchrun; the loop imports no executor (a contract says so)."""
    for path in [ROOT / "storyforge" / "render.py", *sorted((ROOT / "storyforge" / "loop").glob("*.py"))]:
        source = path.read_text(encoding="utf-8")
        for word in ("multigpu", "share(", "rank", "torchrun", "is_writer", "coupled("):
            assert word not in source, (path.name, word)


def test_the_render_loop_has_no_class_over_150_lines_and_no_function_over_60() -> None:
    """One job per room: render.py puts the rooms (storyforge.loop) together and is read in one sitting."""
    import ast

    path = ROOT / "storyforge" / "render.py"
    long = [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno >= 150
            or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 60]
    assert long == []


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for child in sorted(edges.get(node, ())):
            if child not in index:
                visit(child)
                low[node] = min(low[node], low[child])
            elif child in on_stack:
                low[node] = min(low[node], index[child])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found

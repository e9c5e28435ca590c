"""The library's import graph: no cycles among yolo.* modules, and inference / the data checker
stay light (they never import albumentations or Lightning). Each light import is checked in a
fresh child process, since this test process has imported everything already."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

YOLO = Path(__file__).resolve().parents[1] / "yolo"
HEAVY = ("albumentations", "pytorch_lightning", "lightning")


def module_name(path: Path) -> str:
    parts = path.relative_to(YOLO.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """yolo.* module -> the yolo.* modules it imports at module level (imports inside functions
    run late and cannot form an import-time cycle; ``TYPE_CHECKING`` blocks are skipped)."""
    modules = {module_name(p): p for p in YOLO.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        edges = set()
        for node in tree.body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_yolo():
    graph = import_graph()
    assert "yolo.detect" in graph and "yolo.letterbox" in graph["yolo.detect"]
    assert cycles(graph) == []


INFERENCE = ("yolo.detect", "yolo.predictions", "yolo.cam", "yolo.export", "yolo.imageio", "yolo.letterbox")
# the data checker and what the dashboard's Dataset / Augmentations pages use
DATA_TOOLS = ("yolo.data.check", "yolo.data.__main__", "yolo.data.layout", "yolo.data.datasets",
              "yolo.data.demo", "yolo.data.mosaic", "yolo.data.transforms", "yolo.evaluate.tables")


def heavy_after_each_import(modules: tuple[str, ...], heavy: tuple[str, ...]) -> dict[str, str]:
    """Import ``modules`` one after another in ONE fresh child process; for each, the heavy modules
    present right after it (a module can only add to ``sys.modules``, so the first module whose
    entry is not empty is the one that pulled the heavy module in)."""
    code = ("import importlib, json, sys\nout = {}\n"
            f"for m in {list(modules)!r}:\n"
            "    importlib.import_module(m)\n"
            f"    out[m] = ' '.join(h for h in {heavy!r} if h in sys.modules)\n"
            "print(json.dumps(out))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_inference_imports_neither_albumentations_nor_lightning():
    found = heavy_after_each_import(INFERENCE, HEAVY)
    assert list(found) == list(INFERENCE)
    for module, heavy in found.items():
        assert heavy == "", f"importing {module} imports {heavy}"


def test_data_tools_do_not_import_lightning():
    found = heavy_after_each_import(DATA_TOOLS, HEAVY[1:])
    assert list(found) == list(DATA_TOOLS)
    for module, heavy in found.items():
        assert heavy == "", f"importing {module} imports {heavy}"


def test_the_import_check_sees_a_heavy_import():
    """The check itself: a module that does import Lightning is caught, and named."""
    found = heavy_after_each_import(("yolo.letterbox", "yolo.lit"), HEAVY[1:])
    assert found["yolo.letterbox"] == "" and "pytorch_lightning" in found["yolo.lit"]


def test_the_data_check_runs_without_lightning(tmp_path):
    """``python -m yolo.data check`` on a small demo dataset, whole run, never imports Lightning."""
    code = ("import sys\nfrom yolo.data.demo import write_demo\nfrom yolo.data.__main__ import main\n"
            f"root = write_demo({str(tmp_path / 'demo')!r}, n_train=4, n_val=2, n_test=2)\n"
            f"code = main(['check', str(root), '--cache-dir', {str(tmp_path / 'cache')!r}, '--quiet'])\n"
            f"print(code, ' '.join(m for m in {HEAVY[1:]!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1].strip() == "0", out.stdout

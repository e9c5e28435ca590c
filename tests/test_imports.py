"""The library's import graph, drawn from EVERY import in the code: module level, inside functions,
inside ``TYPE_CHECKING`` blocks, and ``importlib.import_module("...")`` calls with a literal name.

Two rules, over ``yolo/``, ``train.py``, ``dashboard/`` and ``bench/``:
  * no cycles (an import inside a function is a cycle too: it is a dependency, only a late one);
  * imports only go down ``LAYERS`` (lowest first); within one layer any order, cycles aside.
Importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` as well, so those packages count as
imported too (except the packages that hold the importing module, which run before it anyway).
Imports whose module name is computed at run time (``yolo.data``'s lazy ``__getattr__``) are not
seen. And inference / the data checker stay light (they never import albumentations or
Lightning): each light import is checked in a fresh child process, since this test process has
imported everything already.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
YOLO = REPO / "yolo"
HEAVY = ("albumentations", "pytorch_lightning", "lightning")

# Lowest first. A module imports only from its own layer or the ones before it. Patterns are
# fnmatch patterns over module names; dashboard modules are named ``dashboard.<file>`` (the
# dashboard imports its siblings as top-level modules: ``import frame``). Every module must match
# exactly one layer: a new module is placed here.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("config/boxes", ("yolo", "yolo.config", "yolo.boxes",
                      # bounded file reading, CLI argument types, run-folder bookkeeping and drawing:
                      # plain files, pandas and OpenCV, no model; the CPU budget (threads, a CPU plan)
                      "yolo.filelimits", "yolo.argtypes", "yolo.runs", "yolo.progress", "yolo.logs", "yolo.viz",
                      "yolo.cpu")),
    ("letterbox/imageio", ("yolo.letterbox", "yolo.imageio")),
    # data readers, transforms, mosaic, the dataset checker: images and boxes, no model
    ("data", ("yolo.data", "yolo.data.problems", "yolo.data.index", "yolo.data.voc", "yolo.data.kaggle",
              "yolo.data.yolo_txt", "yolo.data.coco", "yolo.data.layout", "yolo.data.demo", "yolo.data.download",
              "yolo.data.check", "yolo.data.convert", "yolo.data.transforms", "yolo.data.augment",
              "yolo.data.datasets", "yolo.data.mosaic", "yolo.data.multiscale", "yolo.data.collate",
              "yolo.data.decisions", "yolo.data.apply_review")),
    ("model/targets/loss", ("yolo.model", "yolo.targets", "yolo.loss", "yolo.evalcore", "yolo.metrics", "yolo.anchors")),
    ("postprocess/selection", ("yolo.postprocess", "yolo.selection")),
    # yolo.weights: the bottom (state, convolution order, class names), then one module per format,
    # then the load that dispatches (yolo/weights/__init__.py); the thresholds file beside them
    ("weights: state", ("yolo.weights.state", "yolo.weights.convs", "yolo.weights.classes", "yolo.thresholds")),
    ("weights: formats", ("yolo.weights.lightning", "yolo.weights.course", "yolo.weights.darknet")),
    ("weights: load", ("yolo.weights",)),
    ("detect/lit", ("yolo.detect", "yolo.lit", "yolo.transfer", "yolo.callbacks", "yolo.data.datamodule")),
    ("predictions/cam/export/video", ("yolo.predictions", "yolo.cam", "yolo.export", "yolo.video")),
    ("evaluate/review", ("yolo.evaluate", "yolo.evaluate.[!_]*", "yolo.review", "yolo.review.[!_]*")),
    ("trainer", ("yolo.trainer", "yolo.config_checks")),
    ("CLIs", ("train", "yolo.*.__main__", "yolo.__main__")),
    ("dashboard", ("dashboard.*",)),
    ("bench", ("bench", "bench.*")),
]


# ------------------------------------------------------------------------------- the graph
def find_modules(entry: Path, only: tuple[str, ...] = (), prefix: str = "") -> dict[str, Path]:
    """Module name -> file for the ``.py`` files under ``entry`` (a ``sys.path`` entry), restricted
    to the files or folders named in ``only``; ``prefix`` is put before every name."""
    found = {}
    for item in [entry / o for o in only] or [entry]:
        for path in [item] if item.is_file() else sorted(item.rglob("*.py")):
            parts = path.relative_to(entry).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            found[prefix + ".".join(parts)] = path
    return found


def repo_modules(repo: Path = REPO) -> dict[str, Path]:
    return {**find_modules(repo, ("yolo", "train.py", "bench")),
            **find_modules(repo / "dashboard", prefix="dashboard.")}


def imports_in(path: Path, package: str) -> list[tuple[int, str, tuple[str, ...]]]:
    """Every import in a file, wherever it stands: (line, module, names imported from it).
    ``package``: the importing module's package, to resolve relative imports."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, ()) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - node.level + 1]
                module = ".".join([*parts, module] if module else parts)
            found.append((node.lineno, module, tuple(a.name for a in node.names)))
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            first = node.args[0] if node.args else None
            if name == "import_module" and isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.append((node.lineno, first.value, ()))
    return found


def import_graph(modules: dict[str, Path], prefixes: tuple[str, ...] = ("dashboard.",)) -> dict[str, dict[str, int]]:
    """Module -> {module it imports: the first line doing so}, over ``modules`` only (the standard
    library and third-party packages are left out). A module under one of ``prefixes`` resolves
    an absolute import among its siblings first (as the dashboard's scripts do)."""
    graph = {}
    for name, path in modules.items():
        prefix = next((p for p in prefixes if name.startswith(p)), "")
        local = name[len(prefix):]
        package = local if path.name == "__init__.py" else local.rpartition(".")[0]
        edges: dict[str, int] = {}
        for line, module, names in imports_in(path, package):
            for target in [module, *(f"{module}.{n}" for n in names)]:
                found = next((c for c in ([prefix + target] if prefix else []) + [target] if c in modules), None)
                if found is None:
                    continue
                parts = found.split(".")
                for i in range(1, len(parts) + 1):  # the packages on the way run too
                    step = ".".join(parts[:i])
                    if step in modules and step != name and not name.startswith(step + "."):
                        edges.setdefault(step, line)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]] | dict[str, dict[str, int]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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


def layer_of(module: str, layers: list[tuple[str, tuple[str, ...]]]) -> list[int]:
    """The indices of the layers whose patterns match ``module`` (exactly one when placed well)."""
    return [i for i, (_, patterns) in enumerate(layers) if any(fnmatch.fnmatchcase(module, p) for p in patterns)]


def upward_imports(graph: dict[str, dict[str, int]], layers) -> list[str]:
    """'a (layer) -> b (higher layer), line n' for every import that climbs ``layers``."""
    found = []
    for a, edges in sorted(graph.items()):
        for b, line in sorted(edges.items()):
            la, lb = layer_of(a, layers), layer_of(b, layers)
            if len(la) == 1 and len(lb) == 1 and lb[0] > la[0]:
                found.append(f"{a} ({layers[la[0]][0]}) -> {b} ({layers[lb[0]][0]}), line {line}")
    return found


def cycle_edges(graph: dict[str, dict[str, int]], group: list[str]) -> list[str]:
    return [f"{a} -> {b} (line {graph[a][b]})" for a in group for b in group if b in graph[a]]


# ------------------------------------------------------------------------------- the checker checked
def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_a_function_level_cycle_is_caught(tmp_path):
    """``pkg.low`` imports ``pkg.high`` at module level; ``pkg.high`` imports ``pkg.low`` back inside
    a function only (what the module-level reading of the previous test missed)."""
    write(tmp_path, {"pkg/__init__.py": "", "pkg/low.py": "from pkg.high import f\n",
                     "pkg/high.py": "def f():\n    from pkg import low\n    return low\n",
                     "pkg/alone.py": "import json\n"})
    graph = import_graph(find_modules(tmp_path, ("pkg",)))
    assert graph["pkg.high"] == {"pkg.low": 2} and graph["pkg.low"] == {"pkg.high": 1}
    assert cycles(graph) == [["pkg.high", "pkg.low"]]
    # the same through importlib with a literal name, and through a relative import
    write(tmp_path, {"pkg/high.py": "def f():\n    import importlib\n    return importlib.import_module('pkg.low')\n"})
    assert cycles(import_graph(find_modules(tmp_path, ("pkg",)))) == [["pkg.high", "pkg.low"]]
    write(tmp_path, {"pkg/high.py": "def f():\n    from . import low\n"})
    assert cycles(import_graph(find_modules(tmp_path, ("pkg",)))) == [["pkg.high", "pkg.low"]]
    write(tmp_path, {"pkg/high.py": "def f():\n    return 1\n"})
    assert cycles(import_graph(find_modules(tmp_path, ("pkg",)))) == []


def test_an_upward_import_is_caught(tmp_path):
    """A low module importing a higher one inside a function, and a package's submodule reached
    through its ``__init__`` (importing ``pkg.sub.x`` runs ``pkg/sub/__init__``, which imports up)."""
    write(tmp_path, {"pkg/__init__.py": "", "pkg/base.py": "def f():\n    import pkg.top\n",
                     "pkg/top.py": "from pkg.base import f\n",
                     "pkg/sub/__init__.py": "from pkg.sub.x import g\nfrom pkg import top\n", "pkg/sub/x.py": "g = 1\n",
                     "pkg/mid.py": "from pkg.sub.x import g\n"})
    layers = [("base", ("pkg", "pkg.base", "pkg.sub.x")), ("mid", ("pkg.mid",)), ("top", ("pkg.top", "pkg.sub"))]
    graph = import_graph(find_modules(tmp_path, ("pkg",)))
    assert graph["pkg.sub.x"] == {}  # its own package runs before it: not an edge
    assert upward_imports(graph, layers) == [
        "pkg.base (base) -> pkg.top (top), line 2",
        "pkg.mid (mid) -> pkg.sub (top), line 1",
    ]
    assert cycles(graph) == [["pkg.base", "pkg.top"]]


def test_dashboard_style_sibling_imports_resolve_to_the_sibling(tmp_path):
    """``import frame`` in a dashboard file is the dashboard's ``frame``; a type-only import counts."""
    write(tmp_path, {"dashboard/frame.py": "import job_panel\n",
                     "dashboard/job_panel.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                               "    from frame import Context\n"})
    graph = import_graph(find_modules(tmp_path / "dashboard", prefix="dashboard."))
    assert cycles(graph) == [["dashboard.frame", "dashboard.job_panel"]]


# ------------------------------------------------------------------------------- this repository
def test_every_module_has_one_layer():
    misplaced = {m: [LAYERS[i][0] for i in layer_of(m, LAYERS)] for m in repo_modules()}
    assert {m: found for m, found in misplaced.items() if len(found) != 1} == {}, \
        "place each module in exactly one layer of LAYERS"


def test_no_import_cycles():
    graph = import_graph(repo_modules())
    assert "yolo.letterbox" in graph["yolo.detect"] and "dashboard.frame" in graph["dashboard.loaders"]
    found = cycles(graph)
    assert found == [], "\n".join(e for group in found for e in cycle_edges(graph, group))


def test_imports_only_go_down_the_layers():
    assert upward_imports(import_graph(repo_modules()), LAYERS) == []


def test_loading_a_weight_file_only_goes_down():
    """What ``yolo.weights`` reaches: its formats, their common bottom, the model, the config and the
    bounded file reading, nothing above (no detect, no evaluate, nothing of Lightning's)."""
    graph = import_graph(repo_modules())
    reached, todo = set(), ["yolo.weights"]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in reached:
                reached.add(nxt)
                todo.append(nxt)
    assert reached == {"yolo.weights.lightning", "yolo.weights.course", "yolo.weights.darknet",
                       "yolo.weights.state", "yolo.weights.convs", "yolo.weights.classes",
                       "yolo.model", "yolo.config", "yolo.filelimits"}


INFERENCE = ("yolo.detect", "yolo.predictions", "yolo.cam", "yolo.export", "yolo.imageio", "yolo.letterbox",
             "yolo.weights", "yolo.thresholds")
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

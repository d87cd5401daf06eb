"""The package's house rules, checked on its source: data flows one way between subpackages, no
import cycles at import time, no private names imported across modules, NEURON at the edges."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "noble_neuron"
#: data-flow order: a subpackage may import only from itself and the ones before it (lazily too)
ORDER = ["constants", "errors", "_version", "config_io", "detailed", "stimuli", "data", "features", "simulation",
         "surrogate", "recordings", "training", "evaluation", "neuron", "integrations", "pipeline", "cli"]
NEURON_MODULES = {"detailed.instantiate", "baselines.neuron_reduce", "detailed.mechanisms", "detailed.bluepyopt_models", "detailed.pv_family",
                  "simulation", "neuron", "integrations", "stimuli.synaptic_drive", "cli"}


def _module(path: Path) -> str:
    parts = ["noble_neuron", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, top_level_only: bool):
    """(imported module, names) of each package-internal import of `path`."""
    mod = _module(path)
    pkg = mod if path.stem == "__init__" else mod.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    for node in (tree.body if top_level_only else ast.walk(tree)):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
            yield target, [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("noble_neuron"):
            yield node.module, [a.name for a in node.names]


def _graph(top_level_only: bool) -> dict[str, set[str]]:
    files = {_module(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for mod, path in files.items():
        deps = set()
        for target, names in _imports(path, top_level_only):
            for n in names:  # `from . import x` imports the module x
                deps.add(f"{target}.{n}" if f"{target}.{n}" in files else target)
        graph[mod] = {d for d in deps if d in files and d != mod}
    return graph


def _cycles(graph):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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


def _layer(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_subpackages_import_only_from_earlier_stages_of_the_data_flow():
    wrong = [(m, d) for m, deps in _graph(top_level_only=False).items() for d in deps
             if _layer(m) in ORDER and _layer(d) in ORDER and ORDER.index(_layer(d)) > ORDER.index(_layer(m))]
    assert wrong == []


def test_no_import_cycles_not_even_through_function_level_imports():
    """Variants are dispatched to without cycles (model → streaming, train → training.streaming), and the
    engines use cells only through noble_neuron.neuron.port (cell → engine/network, never back)."""
    assert _cycles(_graph(top_level_only=True)) == []
    lazy = _cycles(_graph(top_level_only=False))
    assert lazy == [], [sorted(c) for c in lazy]


def test_no_private_names_imported_from_another_module():
    private = []
    for path in ROOT.rglob("*.py"):
        mod = _module(path)
        for target, names in _imports(path, top_level_only=False):
            if target != mod:
                private += [f"{mod}: {target}.{n}" for n in names if n.startswith("_") and n != "__version__"]
    assert private == []


def test_no_module_is_over_500_lines():
    """One concept per module: a module that grows past this is split (e.g. datagen → engines)."""
    long = {_module(p): n for p in ROOT.rglob("*.py") if (n := len(p.read_text().splitlines())) > 500}
    assert long == {}


def test_neuron_is_imported_only_at_the_edges():
    users = set()
    for path in ROOT.rglob("*.py"):
        text = path.read_text()
        if "from neuron import" in text or "import neuron" in text:
            users.add(_module(path).removeprefix("noble_neuron."))
    outside = {u for u in users if not any(u == e or u.startswith(e + ".") for e in NEURON_MODULES)}
    assert outside == set()

"""The package's import graph: modules import only from their own layer or lower ones, and no two
modules import each other, directly or around a circle. Read from the source (`ast`), imports inside
functions included, so a lazy import cannot hide an upward dependency."""

import ast
from pathlib import Path

import prefsift

ROOT = Path(prefsift.__file__).parent

# Lowest first: a module may import from its own layer and the layers before it.
LAYERS = [
    # errors, checks, registries, artifacts, faults, quiet logging, version, percentile windows
    {"core"},
    # pairs; the policy and its objectives; devices, processes, sharding
    {"data", "models", "runtime"},
    {"train", "eval"},
    {"scoring"},
    {"selection"},  # rules, margins, treatments, the arm kinds, the training rows of an arm
    {"lab"},
    # the pairs browser (prefsift view): reads pairs, scores and selections; the pipeline's report
    # embeds it
    {"browser"},
    {"audit"},  # prefsift audit: reads pairs (data), checks a scores table's rows (browser.frame)
    {"pipeline"},
    {"planning"},
    {"api"},
    {"cli", "__main__", ""},  # "" is prefsift/__init__.py
]


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _unit(module: str) -> str:
    """The layer unit a module belongs to: the longest listed prefix (`eval.judges` → `eval`)."""
    names = {n for layer in LAYERS for n in layer}
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in names:
            return ".".join(parts[:n])
    return "" if module == "" else parts[0]


def _layer(unit: str) -> int:
    for i, layer in enumerate(LAYERS):
        if unit in layer:
            return i
    raise AssertionError(f"module unit {unit!r} is in no layer: add it to LAYERS")


def _imports() -> dict[str, set[str]]:
    """module → the prefsift modules it imports (relative and absolute)."""
    graph = {}
    for path in ROOT.rglob("*.py"):
        mod = _module(path)
        is_pkg = path.name == "__init__.py"
        pkg = mod.split(".") if is_pkg else mod.split(".")[:-1]
        if mod == "":
            pkg = []
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else pkg
                    target = ".".join(base + ([node.module] if node.module else []))
                elif (node.module
                      and (node.module == "prefsift" or node.module.startswith("prefsift."))):
                    target = node.module[len("prefsift."):] if node.module != "prefsift" else ""
                else:
                    continue
                # `from . import x` imports the module x when there is one
                for alias in node.names:
                    sub = f"{target}.{alias.name}" if target else alias.name
                    is_module = (ROOT / sub.replace(".", "/")).with_suffix(".py").exists() or \
                        (ROOT / sub.replace(".", "/") / "__init__.py").exists()
                    found.add(sub if is_module else target)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("prefsift."):
                        found.add(alias.name[len("prefsift."):])
        found.discard(mod)
        graph[mod] = found
    return graph


def test_no_module_imports_from_a_higher_layer():
    upward = []
    for mod, targets in _imports().items():
        for t in targets:
            if _layer(_unit(t)) > _layer(_unit(mod)):
                upward.append(f"{mod or 'prefsift'} -> {t or 'prefsift'}")
    assert not upward, upward


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    # Tarjan-free check: a depth-first search that meets a unit on its own path has found a circle.
    state, circles = {}, []

    def visit(u, path):
        state[u] = "open"
        for v in sorted(graph.get(u, ())):
            if state.get(v) == "open":
                circles.append(path[path.index(v):] + [v] if v in path else [u, v])
            elif v not in state:
                visit(v, path + [v])
        state[u] = "done"

    for u in sorted(graph):
        if u not in state:
            visit(u, [u])
    return circles


def test_no_circle_between_units():
    """Between the layer units (a package as a whole: `scoring`, `pipeline`, ...)."""
    graph: dict[str, set[str]] = {}
    for mod, targets in _imports().items():
        u = _unit(mod)
        graph.setdefault(u, set()).update(_unit(t) for t in targets if _unit(t) != u)
    assert not _circles(graph)


def test_no_circle_between_files():
    """Between the files inside a package too (`pipeline/config.py` -> `pipeline/calibrate.py` ->
    ...)."""
    graph = _imports()
    files = {mod: {t for t in targets if t in graph} for mod, targets in graph.items()}
    assert not _circles(files)


def test_the_circle_finder_finds_circles():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _circles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_module_is_over_400_lines():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in ROOT.rglob("*.py")}
    assert max(sizes.values()) <= 400, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]


def test_the_cli_goes_through_the_public_api_only():
    """Every command is parse -> one call of `prefsift.api` -> print: the CLI imports nothing
    else."""
    allowed = {"api", "cli"}
    reach = {mod: sorted(t for t in targets if _unit(t) not in allowed
                         and t not in ("core.errors", "core.version"))
             for mod, targets in _imports().items() if _unit(mod) == "cli"}
    assert reach and not any(reach.values()), reach


# Heavy libraries: each takes about a second or more to import, or pulls one that does. A module
# imports them (or a prefsift module that imports them when it is loaded) inside the function
# that needs them, so that `prefsift --help` and the light commands start fast; every other
# import is at the top of its module, except an optional one (inside a try: a missing package
# then says what to install).
HEAVY = {"torch", "transformers", "trl", "peft", "accelerate", "datasets", "matplotlib", "scipy",
         "openai", "vaderSentiment", "gguf", "safetensors", "tokenizers", "huggingface_hub"}


def _loads_heavy() -> dict[str, bool]:
    """module → whether importing it loads a heavy library (through its top-level imports)."""
    top = {}
    for path in ROOT.rglob("*.py"):
        mod = _module(path)
        tree = ast.parse(path.read_text())
        body = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        names = set()
        for node in body:
            for sub in ast.walk(node):
                if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                if isinstance(sub, ast.Import):
                    names.update(a.name for a in sub.names)
                elif isinstance(sub, ast.ImportFrom) and not sub.level:
                    names.add(sub.module or "")
        top[mod] = names
    graph = _imports()
    heavy = {m: any(n.split(".")[0] in HEAVY for n in names) for m, names in top.items()}
    changed = True
    while changed:
        changed = False
        for m in heavy:
            if not heavy[m] and any(heavy.get(t) for t in graph.get(m, ()) if _is_top_level(m, t)):
                heavy[m] = changed = True
    return heavy


def _is_top_level(mod: str, target: str) -> bool:
    return target in _top_targets().get(mod, ())


_TOP_CACHE: dict = {}


def _top_targets() -> dict[str, set[str]]:
    """module → the prefsift modules it imports at its top level (not inside a function)."""
    if _TOP_CACHE:
        return _TOP_CACHE
    for path in ROOT.rglob("*.py"):
        mod = _module(path)
        tree = ast.parse(path.read_text())
        kept = ast.Module(body=[n for n in tree.body if not isinstance(n, (ast.FunctionDef,
                                                                          ast.AsyncFunctionDef))],
                          type_ignores=[])
        _TOP_CACHE[mod] = _targets_of(kept, mod, path.name == "__init__.py")
    return _TOP_CACHE


def _lazy_names() -> dict[str, dict[str, str]]:
    """package → {name: module} of the packages that import their names on first use (PEP 562's
    `__getattr__` over a `_PUBLIC` map): importing such a name loads its module."""
    out = {}
    for path in ROOT.rglob("__init__.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "_PUBLIC":
                pkg = _module(path)
                out[pkg] = {name: ".".join(pkg.split(".")[:-1] + [where[2:]])
                            if where.startswith("..") else f"{pkg}.{where}"
                            for name, where in ast.literal_eval(node.value).items()}
    return out


def _targets_of(tree, mod: str, is_pkg: bool) -> set[str]:
    pkg = mod.split(".") if is_pkg else mod.split(".")[:-1]
    lazy = _lazy_names()
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, ast.ImportFrom) and node.level:
            base = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else pkg
            target = ".".join(base + ([node.module] if node.module else []))
            found.add(target)
            for alias in node.names:
                found.add(lazy.get(target, {}).get(alias.name, f"{target}.{alias.name}"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("prefsift."):
            found.add(node.module[len("prefsift."):])
    return found


def test_function_level_imports_are_heavy_or_optional():
    heavy = _loads_heavy()
    light = []
    for path in ROOT.rglob("*.py"):
        mod = _module(path)
        tree = ast.parse(path.read_text())
        optional = {id(n) for t in ast.walk(tree) if isinstance(t, ast.Try)
                    for s in t.body for n in ast.walk(s)}
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if not isinstance(node, (ast.Import, ast.ImportFrom)) or id(node) in optional:
                    continue
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif node.level or (node.module or "").startswith("prefsift"):
                    names = ["prefsift." + t for t in _targets_of(ast.Module(body=[node],
                                                                             type_ignores=[]),
                                                                  mod, path.name == "__init__.py")]
                else:
                    names = [node.module or ""]
                if not any(n.split(".")[0] in HEAVY or heavy.get(n[len("prefsift."):])
                           for n in names):
                    light.append(f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)}")
    assert not light, "import these at the top of the module:\n" + "\n".join(sorted(set(light)))

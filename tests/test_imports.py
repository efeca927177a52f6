"""The package's own imports form no cycle (function-level imports of rarft modules included)."""

from __future__ import annotations

from pathlib import Path

from rarft.dvcgen import rarft_imports  # the same reader gives DVC each stage's code dependencies

SRC = Path(__file__).resolve().parents[1] / "src" / "rarft"


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by depth-first search, each as the modules along it."""
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return cycles


def test_the_cycle_finder_sees_function_level_imports(tmp_path):
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []
    f = SRC / "labels_compare.py"
    assert "labels" in rarft_imports(f)
    body = tmp_path / "x.py"
    body.write_text("def f():\n    from rarft.retrieval import load_colbert\n    import rarft.io\n")
    assert rarft_imports(body) == {"retrieval", "io"}


def test_src_rarft_has_no_import_cycle():
    graph = {p.stem: rarft_imports(p) for p in SRC.glob("*.py")}
    assert import_cycles(graph) == [], "import cycle(s) in src/rarft: " + "; ".join(
        " -> ".join(c) for c in import_cycles(graph))


def test_ruff_is_clean():
    """The project's ruff rules ([tool.ruff] in pyproject.toml) hold for src, tests and bench."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    done = subprocess.run([ruff, "check", "src", "tests", "bench"], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]

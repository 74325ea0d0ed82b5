"""The code's layout keeps its promises (docs/ARCHITECTURE.md): no module of
phasekit imports, at load time, a module that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

import phasekit

PACKAGE = Path(phasekit.__file__).parent


def _name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in PACKAGE.rglob("*.py")}
MODULES["phasekit._core"] = PACKAGE / "_core.pyi"  # the Rust extension


def _load_time_imports(module: str) -> set[str]:
    """The phasekit modules ``module`` imports when it loads: top-level
    imports (also under ``if``/``try``), not those inside functions or under
    ``if TYPE_CHECKING:``, which never run."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If):
                if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    found.add(sub if sub in MODULES else target)

    visit(ast.parse(path.read_text()).body)
    return {m for m in found if m in MODULES and m != module}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_no_module_imports_itself_back_at_load_time():
    graph = {m: _load_time_imports(m) for m in MODULES}
    assert graph["phasekit.jobs.sqlite._store"] >= {"phasekit.jobs._model"}  # the scan sees imports
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_only_the_library_reaches_library_db():
    """Jobs and commands use Library's typed methods; the connection to
    library.db (phasekit._core.LibraryDb) is the library package's alone."""
    import re

    reaching = re.compile(r"\._native\(|\._db\b|LibraryDb")
    outside = [
        f"{path.relative_to(PACKAGE)}:{n}: {line.strip()}"
        for path in PACKAGE.rglob("*.py")
        if path.parent.name != "library"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if reaching.search(line)
    ]
    assert outside == []


def test_the_job_system_has_no_sql_outside_its_backends():
    """The job system reaches storage through JobBackend; SQL lives in its
    backends only: phasekit/jobs/sqlite/ and phasekit/jobs/postgres/, and
    phasekit/jobs/sql/ (what both share)."""
    import re

    sql = re.compile(r"\bimport sqlite3\b|\b(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM)\b")
    jobs = PACKAGE / "jobs"
    outside = [
        f"{path.relative_to(PACKAGE)}:{n}: {line.strip()}"
        for path in jobs.rglob("*.py")
        if path.parent not in (jobs / "sqlite", jobs / "postgres", jobs / "sql")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if sql.search(line)
    ]
    assert outside == []
    # The same scan does see the backends' SQL.
    assert sql.search((jobs / "sqlite" / "_store.py").read_text())
    assert sql.search((jobs / "postgres" / "_store.py").read_text())


def test_only_the_backends_own_tests_reach_into_their_stores():
    """The job system's tests assert through the public API, so a second
    backend can run them unchanged: SQL on the jobs and a store's internals
    appear only in each backend's own tests (test_sqlite_*.py,
    test_postgres_*.py) and in backend_damage.py (the one place a test damages
    stored data)."""
    import re

    tests = Path(__file__).resolve().parent
    reaching = re.compile(
        r"\._(write|read|conn)\b|\bjob_(checkpoints|history)\b|jobs\.sqlite\b"
        r"|\b(FROM|UPDATE|INTO|JOIN) jobs\b"
    )
    allowed = {"backend_damage.py", Path(__file__).name}
    outside = [
        f"{path.name}:{n}: {line.strip()}"
        for path in sorted(tests.glob("*.py"))
        if path.name not in allowed and not path.name.startswith(("test_sqlite_", "test_postgres_"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if reaching.search(line)
    ]
    assert outside == []
    # The same scan does see what the SQLite backend's tests do.
    assert reaching.search((tests / "test_sqlite_history.py").read_text())

"""docs/configuration.md holds every environment variable the application reads, and only those.

The code side is found by reading the source (AST), not by importing it:

- ``env("X")`` and ``env.<cast>("X")`` (django-environ: str, bool, int, float, list, tuple,
  dict, json, url, db_url, cache_url, email_url, search_url, path, ...), with the name as the
  first argument or as ``var=``; a call without a name reads django-environ's default variable
  (``env.db()`` reads ``DATABASE_URL``, ``env.cache()`` ``CACHE_URL``, ``env.email()``
  ``EMAIL_URL``, ``env.search_url()`` ``SEARCH_URL``);
- ``os.environ.get("X")``, ``os.environ["X"]``, ``os.environ.setdefault("X", ...)`` (Django
  then reads it: ``DJANGO_SETTINGS_MODULE``), ``"X" in os.environ``, ``os.getenv("X")``, and
  the same on a mapping of the process environment handed around as ``environ``
  (``environ.get("X")``, as the local peers' launcher does);
- a module-level ``DEFAULT_PORTS = {"X": ...}``: the local peers' launcher reads each key from
  the environment in a loop (``ports()``), which no call above names.

Where: every Python module of the application: ``config/`` (settings, gunicorn, Celery, WSGI),
the apps, ``manage.py`` and the development tools (the local peers' launcher, the demo
commands), wherever the current layout puts them. Not read: ``tests/`` and ``benchmarks/``:
a name only they read (``CHROMIUM_PATH``, ``SCHEMATHESIS_SEED``, ``BENCH_KEEP_DB``, ...)
configures a test run or a benchmark, not the system, and is documented beside them
(docs/reliability.md, docs/performance.md); nor migrations.

Names computed at run time are not configuration names and cannot be listed: the variables a
chain in ``CHAINS_JSON`` names with ``operator_key_env`` / ``payout_key_env`` (documented in
the ``CHAINS_JSON`` row), and the log redaction's look-up of the values it hides.

The documentation side is the first column of the one table in docs/configuration.md: one
backticked name per row.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGURATION_PAGE = ROOT / "docs" / "configuration.md"
#: Top-level folders that are not the application (see the module docstring).
NOT_SCANNED = frozenset({"tests", "benchmarks", "node_modules", "var", "docs", "templates"})
#: django-environ methods that take a variable name first, and the variable each reads when
#: called without one.
ENV_DEFAULT_NAMES = {
    "db": "DATABASE_URL",
    "db_url": "DATABASE_URL",
    "cache": "CACHE_URL",
    "cache_url": "CACHE_URL",
    "email": "EMAIL_URL",
    "email_url": "EMAIL_URL",
    "search_url": "SEARCH_URL",
}
ENV_METHODS = frozenset(
    {
        "str",
        "bool",
        "int",
        "float",
        "list",
        "tuple",
        "dict",
        "json",
        "url",
        "path",
        "bytes",
        "get_value",
        *ENV_DEFAULT_NAMES,
    }
)
#: Module-level dicts whose keys are read from the environment in a loop.
INDIRECT_DICTS = frozenset({"DEFAULT_PORTS"})
NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")


# --- the code side --------------------------------------------------------------------------
def application_modules(root: Path = ROOT) -> list[Path]:
    out = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if parts[0] in NOT_SCANNED or parts[0].startswith("."):
            continue
        if "migrations" in parts or "node_modules" in parts:
            continue
        out.append(path)
    return out


def _literal(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _is_environ(node: ast.AST) -> bool:
    """``os.environ``, or a mapping of it passed around as ``environ``."""
    return _dotted(node) in ("os.environ", "environ")


def _name_argument(call: ast.Call) -> str | None:
    first = call.args[0] if call.args else None
    named = next((k.value for k in call.keywords if k.arg == "var"), None)
    return _literal(first) or _literal(named)


def names_read(source: str) -> set[str]:
    """The environment variable names one module reads (see the module docstring)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            dotted = _dotted(func)
            if dotted == "env":
                found.add(_name_argument(node) or "")
            elif isinstance(func, ast.Attribute) and _dotted(func.value) == "env":
                if func.attr in ENV_METHODS:
                    name = _name_argument(node) or ENV_DEFAULT_NAMES.get(func.attr)
                    found.add(name or "")
            elif dotted == "os.getenv":
                found.add(_literal(node.args[0]) if node.args else "")
            elif (
                isinstance(func, ast.Attribute)
                and func.attr in ("get", "setdefault")
                and _is_environ(func.value)
                and node.args
            ):
                found.add(_literal(node.args[0]) or "")
        elif isinstance(node, ast.Subscript) and _is_environ(node.value):
            found.add(_literal(node.slice) or "")
        elif isinstance(node, ast.Compare) and any(isinstance(o, ast.In) for o in node.ops):
            if any(_is_environ(c) for c in node.comparators):
                found.add(_literal(node.left) or "")
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            targets = {t.id for t in node.targets if isinstance(t, ast.Name)}
            if targets & INDIRECT_DICTS:
                found.update(_literal(k) or "" for k in node.value.keys)
    # "": a name computed at run time (see the module docstring), not a configuration name.
    return {name for name in found if name}


def code_names(modules: Iterable[Path]) -> dict[str, list[str]]:
    """Name -> the modules that read it."""
    out: dict[str, list[str]] = {}
    for path in modules:
        for name in names_read(path.read_text()):
            out.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return out


# --- the documentation side -----------------------------------------------------------------
def _tables(lines: list[str]) -> Iterator[list[str]]:
    table: list[str] = []
    for line in [*lines, ""]:
        if line.lstrip().startswith("|"):
            table.append(line.strip())
        elif table:
            yield table
            table = []


def table_names(text: str) -> list[str]:
    """The backticked name in the first column of each row of the page's one table."""
    tables = list(_tables(text.splitlines()))
    assert len(tables) == 1, f"docs/configuration.md must hold one table, not {len(tables)}"
    header, separator, *rows = tables[0]
    assert [c.strip().lower() for c in header.strip("|").split("|")][:3] == [
        "variable",
        "default",
        "meaning",
    ], header
    assert set(separator) <= set("|-: "), separator
    names = []
    for row in rows:
        first = row.strip("|").split("|")[0]
        cell = re.findall(r"`([^`]+)`", first)
        assert len(cell) == 1 and NAME_RE.match(cell[0]), f"one `NAME` per first cell: {row}"
        names.append(cell[0])
    return names


# --- the tests ------------------------------------------------------------------------------
def mismatch(code: dict[str, list[str]], documented: list[str]) -> str:
    missing = sorted(set(code) - set(documented))
    extra = sorted(set(documented) - set(code))
    problems = []
    if missing:
        lines = [f"  {name}  (read by {', '.join(code[name])})" for name in missing]
        problems.append("read by the code but not in docs/configuration.md:\n" + "\n".join(lines))
    if extra:
        problems.append(
            "in docs/configuration.md but read by no application module:\n"
            + "\n".join(f"  {name}" for name in extra)
        )
    return "\n".join(problems)


def test_the_configuration_table_lists_exactly_the_variables_the_code_reads():
    code = code_names(application_modules())
    documented = table_names(CONFIGURATION_PAGE.read_text())
    duplicates = sorted({n for n in documented if documented.count(n) > 1})
    assert not duplicates, f"listed twice in docs/configuration.md: {duplicates}"
    problem = mismatch(code, documented)
    assert not problem, problem


def test_the_settings_are_among_the_modules_read():
    scanned = {str(p.relative_to(ROOT)) for p in application_modules()}
    assert {"config/settings/base.py", "config/gunicorn.conf.py", "manage.py"} <= scanned
    assert not any(s.startswith(("tests/", "benchmarks/")) for s in scanned)
    # the settings alone read dozens; an empty or tiny set means the scan went blind
    assert len(code_names(application_modules())) > 80


def test_every_way_of_reading_a_variable_is_seen():
    source = """
import os
env("A_PLAIN")
env.int("A_INT", default=1)
env.json(var="A_KEYWORD")
env.db()
env.cache_url()
os.environ.get("A_OS_GET")
os.environ["A_OS_ITEM"]
os.environ.setdefault("A_SETDEFAULT", "x")
os.getenv("A_GETENV")
if "A_MEMBER" in os.environ:
    pass
def f(environ):
    return environ.get("A_MAPPING")
DEFAULT_PORTS = {"A_PORT": 1}
os.environ.get(computed_name)
settings_dict.get("NOT_THE_ENVIRONMENT")
"""
    assert names_read(source) == {
        "A_PLAIN",
        "A_INT",
        "A_KEYWORD",
        "DATABASE_URL",
        "CACHE_URL",
        "A_OS_GET",
        "A_OS_ITEM",
        "A_SETDEFAULT",
        "A_GETENV",
        "A_MEMBER",
        "A_MAPPING",
        "A_PORT",
    }


def test_a_name_on_either_side_only_is_reported():
    code = {"READ_ONLY_HERE": ["config/settings/base.py"], "BOTH": ["x.py"]}
    message = mismatch(code, ["BOTH", "DOCUMENTED_ONLY"])
    assert "READ_ONLY_HERE  (read by config/settings/base.py)" in message
    assert "DOCUMENTED_ONLY" in message.split("read by no application module:")[1]
    assert mismatch(code, ["BOTH", "READ_ONLY_HERE"]) == ""

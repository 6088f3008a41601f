"""Run a multi-statement SQL script in a migration, one statement at a time.

Alembic over asyncpg prepares each statement, and a prepared statement holds one command, so
revisions pass their raw SQL through :func:`execute_script`.
"""

from __future__ import annotations

from alembic import op


def split_statements(script: str) -> list[str]:
    """Split on semicolons that end a line, outside ``$$``-quoted bodies; drop comment lines."""
    statements: list[str] = []
    current: list[str] = []
    in_dollar = False
    for line in script.splitlines():
        stripped = line.strip()
        if not in_dollar and (not stripped or stripped.startswith("--")):
            continue
        current.append(line)
        if line.count("$$") % 2:
            in_dollar = not in_dollar
        if not in_dollar and stripped.endswith(";"):
            statements.append("\n".join(current).strip().rstrip(";"))
            current = []
    tail = "\n".join(current).strip()
    if tail:
        statements.append(tail)
    return statements


def execute_script(script: str) -> None:
    for statement in split_statements(script):
        op.execute(statement)

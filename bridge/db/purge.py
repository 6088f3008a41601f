"""SQL shared by the stores' retention purges."""

from __future__ import annotations


def first_kept(table: str, stamp: str) -> str:
    """An expression: the id of ``table``'s first row young enough to keep (``stamp`` within
    ``$1`` seconds), found in primary-key (arrival) order, or the largest id if none is.

    A purge deletes below it, so it reads the old rows only, never the whole table. Ids and
    times grow together near enough: a row a little out of order goes in a later purge.
    ``table`` and ``stamp`` are the caller's constants, never input.
    """
    return f"""COALESCE(
        (SELECT id FROM {table} WHERE {stamp} >= now() - make_interval(secs => $1)
         ORDER BY id LIMIT 1),
        9223372036854775807)"""

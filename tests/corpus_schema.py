"""A database's schema as SQLAlchemy's own inspector sees it, flattened for comparison.

Independent of schemashift's reflection on purpose: `snapshot` uses only `sa.inspect()`, and
`differences` lists what differs between two snapshots as readable lines.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

Snapshot = dict[str, object]  # "table.part.name" -> its attributes (a dict) or a value


def snapshot(url: str, tables: set[str]) -> Snapshot:
    """Everything the inspector reports about `tables` (and, on PostgreSQL, the enum types) at `url`."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            inspector = sa.inspect(connection)
            flat: Snapshot = {}
            names = sorted(set(inspector.get_table_names()) & tables)
            if names:
                _tables(inspector, connection.dialect, names, flat)
            if connection.dialect.name == "postgresql":
                for enum in inspector.get_enums():
                    flat[f"(enum {enum['name']})"] = tuple(enum["labels"])
            return flat
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    """The names of the tables at `url`."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return set(sa.inspect(connection).get_table_names())
    finally:
        engine.dispose()


def _tables(inspector: sa.Inspector, dialect: sa.Dialect, names: list[str], flat: Snapshot) -> None:
    """Each kind of object of all `names` at once (PostgreSQL answers each kind in one query)."""
    def every(kind: str) -> dict[str, Any]:
        found = getattr(inspector, f"get_multi_{kind}")(filter_names=names)
        return {table: value for (_schema, table), value in found.items()}

    for name, columns in every("columns").items():
        for column in columns:
            flat[f"{name}.column.{column['name']}"] = _column(column, dialect)
    for name, pk in every("pk_constraint").items():
        flat[f"{name}.primary_key"] = {"name": pk.get("name"), "columns": tuple(pk["constrained_columns"])}
    for name, fks in every("foreign_keys").items():
        for fk in fks:
            target = f"{fk['referred_table']}({', '.join(fk['referred_columns'])})"
            key = _fk_name(name, fk.get("name"), dialect) or f"({', '.join(fk['constrained_columns'])}) -> {target}"
            flat[f"{name}.foreign_key.{key}"] = {
                "columns": tuple(fk["constrained_columns"]), "references": target,
                "options": tuple(sorted((fk.get("options") or {}).items())),
            }
    for name, uniques in every("unique_constraints").items():
        for unique in uniques:
            key = unique.get("name") or f"({', '.join(unique['column_names'])})"
            flat[f"{name}.unique.{key}"] = {"columns": tuple(unique["column_names"])}
    for name, indexes in every("indexes").items():
        for index in indexes:
            flat[f"{name}.index.{index['name']}"] = {
                "columns": tuple(index["column_names"]), "expressions": tuple(index.get("expressions") or ()),
                "unique": bool(index["unique"]), "options": _options(index.get("dialect_options") or {}),
                "sorting": tuple(sorted((index.get("column_sorting") or {}).items())),
                "duplicates_constraint": index.get("duplicates_constraint"),
            }
    for name, checks in every("check_constraints").items():
        for check in checks:
            text = _spaces(check["sqltext"])
            flat[f"{name}.check.{check.get('name') or text}"] = {"sqltext": text}
    for name, options in every("table_options").items():
        if options:
            flat[f"{name}.options"] = _options(options)
    if dialect.name != "sqlite":
        for name, comment in every("table_comment").items():
            if comment.get("text"):
                flat[f"{name}.comment"] = comment["text"]


def _fk_name(table: str, name: str | None, dialect: sa.Dialect) -> str | None:
    """A foreign key's name, None for one InnoDB generated (``<table>_ibfk_<n>``): such a key is compared by content.

    InnoDB numbers unnamed keys in the order they are added, and `create_all` adds the keys of a table on a
    foreign-key cycle in a set's order, so the numbers say nothing about the schema.
    """
    if name and dialect.name == "mysql" and re.fullmatch(re.escape(table) + r"_ibfk_\d+", name):
        return None
    return name


def _column(column: dict[str, Any], dialect: sa.Dialect) -> dict[str, object]:
    type_ = column["type"]
    return {
        "type": type_.compile(dialect=dialect),
        "collation": getattr(type_, "collation", None),
        "nullable": column["nullable"],
        "default": _spaces(column["default"]) if column.get("default") is not None else None,
        "autoincrement": column.get("autoincrement"),
        "computed": tuple(sorted((column.get("computed") or {}).items())) or None,
        "identity": tuple(sorted((column.get("identity") or {}).items())) or None,
        "comment": column.get("comment"),
    }


def _options(options: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((key, _spaces(str(value))) for key, value in options.items()))


def _spaces(text: str) -> str:
    return re.sub(r"\s+", " ", str(text)).strip()


def differences(got: Snapshot, want: Snapshot, *, got_name: str = "schemashift",
                want_name: str = "create_all") -> list[str]:
    """Readable lines: an object only one side has, or each attribute of an object that differs."""
    lines = []
    tables = {key.split(".", 1)[0] for key in got} ^ {key.split(".", 1)[0] for key in want}
    for table in sorted(tables):
        side = got_name if any(key == table or key.startswith(table + ".") for key in got) else want_name
        lines.append(f"{table}: only in {side}")
    for key in sorted(set(got) | set(want)):
        if key.split(".", 1)[0] in tables:
            continue
        if key not in want:
            lines.append(f"{key}: only in {got_name} {_text(got[key])}")
        elif key not in got:
            lines.append(f"{key}: only in {want_name} {_text(want[key])}")
        elif isinstance(got[key], dict) and isinstance(want[key], dict):
            mine, theirs = got[key], want[key]
            lines.extend(f"{key}.{attr}: {got_name} {mine.get(attr)!r} != {want_name} {theirs.get(attr)!r}"
                         for attr in sorted(set(mine) | set(theirs)) if mine.get(attr) != theirs.get(attr))
        elif got[key] != want[key]:
            lines.append(f"{key}: {got_name} {got[key]!r} != {want_name} {want[key]!r}")
    return lines


def _text(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}={item!r}" for key, item in value.items() if item not in (None, (), False)) + "}"
    return repr(value)


def report(lines: list[str], what: str) -> str:
    """An assertion message for `lines`."""
    return f"{what}: {len(lines)} difference(s)\n  " + "\n  ".join(lines)

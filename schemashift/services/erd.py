"""Entity-relationship diagrams of a neutral schema: Mermaid ``erDiagram`` or Graphviz ``dot``.

`mermaid` and `dot` take a `Schema` (from the models, the migrations or a live
database) and return the diagram text: one entity per table with its columns
(type, PK/FK/UK marks, NOT NULL) and one relationship per foreign key, from the
referencing table to the referenced one. Views (and materialized views) are
entities too, linked by a dotted "uses" line to each table or view their
definition names. Output is sorted, so the same schema always gives the same text.
"""

from __future__ import annotations

import re

from schemashift.errors import SchemashiftError
from schemashift.model.objects import SchemaObject, ViewDef
from schemashift.model.schema import Column, ForeignKey, Schema, Table, qualify
from schemashift.services.compare import reflect_live
from schemashift.services.project import Project

FORMATS = ("mermaid", "dot")
_MERMAID_WORD = re.compile(r"[^A-Za-z0-9_\-()\[\]]+")


def erd(project: Project, *, fmt: str = "mermaid", live: bool = False) -> str:
    """A diagram of the models (or, with `live`, of the database) as Mermaid or Graphviz text."""
    if fmt not in FORMATS:
        raise SchemashiftError(f"erd --format takes {' or '.join(FORMATS)}, not {fmt!r}")
    keep = project.object_filter()  # what `exclude`/`include_object` leave out of diff, status… is left out here too
    if not live:
        return render(keep.apply(project.model_schema(), reflected=False), fmt)
    with project.connect() as connection:
        schema = reflect_live(connection, [None], set(project.recorder(connection).own_tables))
    return render(keep.apply(schema, reflected=True), fmt)


def render(schema: Schema, fmt: str) -> str:
    """The diagram of `schema` in format `fmt` (``mermaid`` or ``dot``)."""
    return mermaid(schema) if fmt == "mermaid" else dot(schema)


def _tables(schema: Schema) -> list[Table]:
    return sorted(schema.tables.values(), key=lambda table: (table.schema or "", table.name))


def _label(table: Table) -> str:
    return f"{table.schema}.{table.name}" if table.schema else table.name


def _target(table: Table, key: ForeignKey) -> str:
    schema = key.ref_schema if key.ref_schema is not None else table.schema
    return f"{schema}.{key.ref_table}" if schema else key.ref_table


def _marks(table: Table, column: Column) -> list[str]:
    """PK, FK and UK, as Mermaid names the keys a column belongs to."""
    marks = []
    if table.primary_key is not None and column.name in table.primary_key.columns:
        marks.append("PK")
    if any(column.name in key.columns for key in table.foreign_keys):
        marks.append("FK")
    if any(unique.columns == (column.name,) for unique in table.uniques):
        marks.append("UK")
    return marks


def _entity(name: str) -> str:
    """A Mermaid entity name: quoted where it is not a plain word."""
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else f'"{name}"'


def _mermaid_type(column: Column) -> str:
    text = _MERMAID_WORD.sub("-", column.type.describe()).strip("-") or "unknown"
    return text if text[0].isalpha() else f"t-{text}"


def _cardinality(table: Table, key: ForeignKey) -> str:
    """``}o--||`` (many to one) or ``|o--||`` when the key columns are unique; ``o`` when they may be NULL."""
    unique = any(u.columns == key.columns for u in table.uniques) or (
        table.primary_key is not None and table.primary_key.columns == key.columns)
    optional = any(column.nullable for column in table.columns if column.name in key.columns)
    left = ("|" if unique else "}") + ("o" if optional or not unique else "|")
    return f"{left}--||"


def _views(schema: Schema) -> list[tuple[str, str, list[str]]]:
    """(label, kind, labels of the tables and views it uses) of each view, sorted."""
    names = {table.name: _label(table) for table in schema.tables.values()}
    views = [obj for obj in schema.objects.values() if isinstance(obj, ViewDef)]
    names.update({view.name: qualify(view.name, view.schema) for view in views})
    found = []
    for view in sorted(views, key=lambda item: item.key):
        used = sorted({names[name] for name in _mentioned(view) if name in names and name != view.name})
        found.append((view.key, "materialized_view" if view.materialized else "view", used))
    return found


def _mentioned(obj: SchemaObject) -> frozenset[str]:
    mentioned = obj.mentions()
    return mentioned | frozenset(name.lower() for name in mentioned)


def mermaid(schema: Schema) -> str:
    """A Mermaid ``erDiagram``."""
    lines = ["erDiagram"]
    for table in _tables(schema):
        lines.append(f"    {_entity(_label(table))} {{")
        for column in table.columns:
            marks = ", ".join(_marks(table, column))
            comment = "" if column.nullable else ' "NOT NULL"'
            lines.append(f"        {_mermaid_type(column)} {column.name}{' ' + marks if marks else ''}{comment}")
        lines.append("    }")
    for table in _tables(schema):
        for key in sorted(table.foreign_keys, key=lambda k: (k.ref_table, k.columns)):
            label = ", ".join(key.columns)
            ends = f"{_entity(_label(table))} {_cardinality(table, key)} {_entity(_target(table, key))}"
            lines.append(f'    {ends} : "{label}"')
    for view, kind, used in _views(schema):
        lines.append(f"    {_entity(view)} {{")
        lines.append(f"        {kind} definition")
        lines.append("    }")
        lines.extend(f'    {_entity(view)} }}o..o{{ {_entity(name)} : "uses"' for name in used)
    return "\n".join(lines) + "\n"


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def dot(schema: Schema) -> str:
    """A Graphviz ``digraph`` with one HTML-table node per table."""
    lines = ["digraph schema {", "    rankdir=LR;", '    node [shape=plain, fontname="Helvetica"];']
    for table in _tables(schema):
        rows = [f'<tr><td colspan="2" bgcolor="lightgrey"><b>{_html(_label(table))}</b></td></tr>']
        for column in table.columns:
            marks = " ".join(_marks(table, column))
            name = f"{column.name} ({marks})" if marks else column.name
            null = "" if column.nullable else " NOT NULL"
            rows.append(f'<tr><td align="left" port="{_html(column.name)}">{_html(name)}</td>'
                        f'<td align="left">{_html(column.type.describe())}{null}</td></tr>')
        lines.append(f"    {_dot_quote(_label(table))} [label=<<table border=\"0\" cellborder=\"1\" cellspacing=\"0\">"
                     f"{''.join(rows)}</table>>];")
    for table in _tables(schema):
        for key in sorted(table.foreign_keys, key=lambda k: (k.ref_table, k.columns)):
            lines.append(f"    {_dot_quote(_label(table))} -> {_dot_quote(_target(table, key))} "
                         f"[label={_dot_quote(', '.join(key.columns))}];")
    for view, kind, used in _views(schema):
        label = _dot_quote(f"{view} ({kind.replace('_', ' ')})")
        lines.append(f"    {_dot_quote(view)} [shape=note, label={label}];")
        lines.extend(f"    {_dot_quote(view)} -> {_dot_quote(name)} [style=dashed, label=\"uses\"];" for name in used)
    lines.append("}")
    return "\n".join(lines) + "\n"


def history_graph(rows: list[tuple[str, str | None, str]]) -> list[str]:
    """The revision chain as text lines, head first: ``* rev  message`` joined by ``|``.

    `rows` are (revision, parent, message) from base to head.
    """
    lines: list[str] = []
    for index, (revision, parent, message) in enumerate(reversed(rows)):
        head = " (head)" if index == 0 else ""
        lines.append(f"* {revision}  {message}{head}")
        if parent is not None:
            lines.append("|")
    return lines


__all__ = ["FORMATS", "dot", "history_graph", "mermaid", "render"]

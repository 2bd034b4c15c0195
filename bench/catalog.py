"""The raw catalog baseline: a few bulk queries per database that fetch the facts a schema diff needs.

Tables and comments, columns (type, nullability, default, identity/generated),
primary keys, unique constraints, indexes (with their columns) and foreign keys
(with their columns, targets and actions), for every table of the current
database/schema at once. No parsing, no model building: this is the floor any
reflection-based diff pays.
"""

from __future__ import annotations

import sqlalchemy as sa

SQLITE = [
    "SELECT name, type, sql FROM sqlite_master WHERE type IN ('table', 'index') AND name NOT LIKE 'sqlite_%'",
    "SELECT m.name, p.cid, p.name, p.type, p.\"notnull\", p.dflt_value, p.pk, p.hidden "
    "FROM sqlite_master AS m JOIN pragma_table_xinfo(m.name) AS p "
    "WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'",
    "SELECT m.name, il.name, il.\"unique\", il.origin, il.partial, ii.seqno, ii.name "
    "FROM sqlite_master AS m JOIN pragma_index_list(m.name) AS il JOIN pragma_index_info(il.name) AS ii "
    "WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'",
    "SELECT m.name, f.id, f.seq, f.\"table\", f.\"from\", f.\"to\", f.on_update, f.on_delete "
    "FROM sqlite_master AS m JOIN pragma_foreign_key_list(m.name) AS f "
    "WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'",
]

POSTGRESQL = [
    "SELECT c.oid, c.relname, obj_description(c.oid, 'pg_class') FROM pg_class AS c "
    "JOIN pg_namespace AS n ON n.oid = c.relnamespace "
    "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')",
    "SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
    "pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated, col_description(c.oid, a.attnum), "
    "co.collname "
    "FROM pg_attribute AS a JOIN pg_class AS c ON c.oid = a.attrelid "
    "JOIN pg_namespace AS n ON n.oid = c.relnamespace "
    "LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
    "LEFT JOIN pg_collation AS co ON co.oid = a.attcollation AND a.attcollation <> 100 "
    "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped",
    "SELECT c.relname, con.conname, con.contype, con.conkey, con.confkey, fc.relname, fn.nspname, "
    "con.confupdtype, con.confdeltype, con.condeferrable, con.condeferred, "
    "CASE WHEN con.contype = 'c' THEN pg_get_constraintdef(con.oid) END "
    "FROM pg_constraint AS con JOIN pg_class AS c ON c.oid = con.conrelid "
    "JOIN pg_namespace AS n ON n.oid = c.relnamespace "
    "LEFT JOIN pg_class AS fc ON fc.oid = con.confrelid LEFT JOIN pg_namespace AS fn ON fn.oid = fc.relnamespace "
    "WHERE n.nspname = current_schema()",
    "SELECT c.relname, i.relname, ix.indisunique, ix.indisprimary, ix.indkey::int2[], "
    "pg_get_expr(ix.indexprs, ix.indrelid), pg_get_expr(ix.indpred, ix.indrelid), am.amname "
    "FROM pg_index AS ix JOIN pg_class AS i ON i.oid = ix.indexrelid JOIN pg_class AS c ON c.oid = ix.indrelid "
    "JOIN pg_namespace AS n ON n.oid = c.relnamespace JOIN pg_am AS am ON am.oid = i.relam "
    "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')",
]

MYSQL = [
    "SELECT TABLE_NAME, TABLE_COMMENT, ENGINE, TABLE_COLLATION FROM information_schema.TABLES "
    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'",
    "SELECT TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA, "
    "COLUMN_COMMENT, COLLATION_NAME, GENERATION_EXPRESSION FROM information_schema.COLUMNS "
    "WHERE TABLE_SCHEMA = DATABASE()",
    "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME, SUB_PART, INDEX_TYPE "
    "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE()",
    # Separate queries on purpose: MariaDB joins information_schema views by scanning, 20x slower.
    "SELECT TABLE_NAME, CONSTRAINT_NAME, CONSTRAINT_TYPE FROM information_schema.TABLE_CONSTRAINTS "
    "WHERE TABLE_SCHEMA = DATABASE()",
    "SELECT TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, ORDINAL_POSITION, REFERENCED_TABLE_SCHEMA, "
    "REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
    "WHERE TABLE_SCHEMA = DATABASE()",
    "SELECT TABLE_NAME, CONSTRAINT_NAME, UPDATE_RULE, DELETE_RULE FROM information_schema.REFERENTIAL_CONSTRAINTS "
    "WHERE CONSTRAINT_SCHEMA = DATABASE()",
    "SELECT CONSTRAINT_NAME, TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
    "WHERE CONSTRAINT_SCHEMA = DATABASE()",
]

QUERIES = {"sqlite": SQLITE, "postgresql": POSTGRESQL, "mysql": MYSQL, "mariadb": MYSQL}


def fetch_catalog(connection: sa.Connection) -> int:
    """Run the baseline queries for `connection`'s database and fetch every row; returns the row count."""
    rows = 0
    for query in QUERIES[connection.dialect.name]:
        rows += len(connection.exec_driver_sql(query).fetchall())
    if connection.in_transaction():
        connection.rollback()
    return rows

"""Fast `status` and no-op `upgrade` at head: no SQLAlchemy, no migration modules.

The CLI calls `fast_status` / `fast_upgrade` before the full path. They answer
only when everything is clean and certain: the manifest matches the folder
(`manifest.verified_entries`), the database's version table lists exactly the
manifest's revisions with the same checksums, all applied, and (for `status`)
the live catalog fingerprint equals the one stored when the full drift check
last found no drift at head. Then they print what the full path would print and
return the exit code; on any doubt (an unusual URL, a driver error, a missing
table or column, pending or partial migrations, a stale manifest, …) they return
None and the full path runs and gives its proper answers and errors.

The URL schemes read here, and how (the DB-API driver the URL names, or libpq
directly for ``postgresql+psycopg``), are each database's: its registry line
(`schemashift.dialects.registry`) lists the schemes, its light ``catalog`` module
connects and knows the SQL.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from schemashift.dialects.catalog import Target, qualified
from schemashift.dialects.registry import DATABASES, for_driver
from schemashift.errors import mask_secrets
from schemashift.history.manifest import Summary, pairs_digest
from schemashift.runtime.fingerprint import fingerprint, parse_stored
from schemashift.runtime.fleetreport import FleetReport, TenantResult

_URL = re.compile(
    r"(?P<driver>[\w+]+)://(?:(?P<user>[^:/]*)(?::(?P<password>[^@]*))?@)?"
    r"(?:\[(?P<ipv6>[^/?]+)\]|(?P<host>[^/:?]+))?(?::(?P<port>[^/?]*))?(?:/(?P<database>[^?]*))?(?:\?(?P<query>.*))?$",
    re.S,
)


def parse_url(url: str) -> Target | None:
    """The parts of a URL whose scheme a registered database's fast path reads; None for anything else."""
    match = _URL.match(url.strip())
    entry = for_driver(match["driver"]) if match else None
    if not match or entry is None:
        return None
    query: dict[str, str] = {}
    if match["query"]:
        from urllib.parse import parse_qsl

        for key, value in parse_qsl(match["query"]):
            if key in query:
                return None  # repeated keys (several hosts, …): not for the fast path
            query[key] = value
    try:
        port = int(match["port"]) if match["port"] else None
    except ValueError:
        return None

    def text(name: str) -> str | None:
        value = match[name]
        if value is None or "%" not in value:
            return value
        from urllib.parse import unquote

        return unquote(value)

    return Target(entry.name, match["ipv6"] or match["host"], port, text("user"), text("password"),
                  text("database"), query)


# -- connections --------------------------------------------------------------


def connect(target: Target) -> Any:
    """A DB-API connection for `target` (raises on any failure)."""
    return catalog(target).connect(target)


def catalog(target: Target) -> ModuleType:
    """The light catalog module of `target`'s database."""
    return DATABASES[target.backend].catalog()


# -- the checks ---------------------------------------------------------------------


@dataclass
class Clean:
    """What the fast path found: the database is at `head`, everything applied and unedited."""

    env: str
    url: str
    head: str
    schema_matches: bool


def _summary(cursor: Any, facts: ModuleType, table: str, schema: str | None, head: str,
             drift: bool) -> tuple[int, int, str, str | None]:
    """Rows, rows not applied, a digest of the sorted ``revision checksum`` pairs, the head's fingerprint."""
    name = qualified(table, schema, facts.QUOTE)
    if facts.PAIRS_SQL is None:  # reading the rows is cheap here
        columns = "revision, checksum, state" + (", fingerprint" if drift else "")
        cursor.execute(f"SELECT {columns} FROM {name}")
        rows = cursor.fetchall()
        stored = next((row[3] for row in rows if row[0] == head), None) if drift else None
        pairs = pairs_digest(f"{row[0]} {row[1]}" for row in rows)
        return len(rows), sum(row[2] != "applied" for row in rows), pairs, stored
    facts.prepare(cursor)
    fingerprint_sql = "MAX(CASE WHEN revision = %s THEN fingerprint END)" if drift else "NULL"
    cursor.execute(f"SELECT COUNT(*), SUM(CASE WHEN state = 'applied' THEN 0 ELSE 1 END), {facts.PAIRS_SQL}, "
                   f"{fingerprint_sql} FROM {name}", [head] if drift else [])
    count, unapplied, digest, stored = cursor.fetchone()
    return int(count), int(unapplied or 0), digest or "", stored


def check(args: Any, *, drift: bool) -> Clean | None:
    """The clean state of the database named by `args` (CLI options), or None when not certain."""
    try:
        return _check(args, drift=drift)
    except Exception:  # noqa: BLE001 - deliberately broad: the fast path never fails a command: the full path runs instead
        return None


def _check(args: Any, *, drift: bool) -> Clean | None:
    from schemashift.config import load_config
    from schemashift.history import manifest

    config = load_config(args.config)  # a configuration error: the full path reports it
    env = config.env(args.env, url=args.url)
    url: str | None = args.url or env.url
    target = parse_url(url) if url else None
    if url is None or target is None or (env.schema and not catalog(target).SUPPORTS_SCHEMAS):
        return None
    def verified() -> Summary | None:
        return manifest.verified_summary(config.migrations_dir, config.root)

    summary = verified() if drift else None
    if drift and (summary is None or summary.head is None):
        return None
    if not (Path(config.migrations_dir) / manifest.MANIFEST_NAME).is_file():
        return None  # no manifest: nothing to trust, not even worth connecting
    connection = connect(target)  # a driver error: the full path reports it properly
    try:
        return _check_database(connection, target, env, summary or verified, drift, mask_secrets(url))
    finally:
        connection.close()


def _check_database(connection: Any, target: Target, env: Any, expected: Summary | Callable[[], Summary | None],
                    drift: bool, masked: str) -> Clean | None:
    """The clean state of the database, `expected` being the verified manifest's summary or (without `drift`)
    what gives it: then the files are checked only once the database has applied revisions (an empty one,
    about to be built, is for the full path, which reads the files anyway)."""
    cursor = connection.cursor()
    facts = catalog(target)
    if env.schema:
        facts.use_schema(cursor, env.schema)
    head = expected.head if isinstance(expected, Summary) else None
    if drift and head is None:
        return None
    count, unapplied, digest, value = _summary(cursor, facts, env.version_table, env.schema, head or "", drift)
    if not count:
        return None  # nothing applied yet (or a bare version table): the full path
    summary = expected if isinstance(expected, Summary) else expected()
    if summary is None or summary.head is None:
        return None
    head = summary.head
    if count != summary.count or unapplied or digest != summary.pairs:
        return None  # pending, partial, edited, unknown or missing revisions: the full path explains
    matches = False
    if drift:
        stored = parse_stored(value)
        if stored is None:
            return None
        digest, extra = stored
        # the lock table's name is runtime.locks.lock_table_name's, not imported: no SQLAlchemy here
        exclude = [env.version_table, f"{env.version_table}_history", f"{env.version_table}_lock"]
        if fingerprint(cursor, target.backend, [None, *extra], exclude) != digest:
            return None
        matches = True
    return Clean(env.name, masked, head, matches)


# -- a fleet of schema tenants -------------------------------------------------------------

#: Tenants' version tables summarised per UNION ALL, and connections reading such chunks at once.
_CHUNK = 250
_CONNECTIONS = 4


def fast_fleet_upgrade(args: Any) -> FleetReport | None:
    """The report of a no-op ``upgrade --all-tenants`` (or ``--tenant``) to head when every tenant schema is
    clean at head, from one libpq query per 500 tenants; else None (the full fleet path runs)."""
    if getattr(args, "sql", False) or getattr(args, "dry_run", False) or getattr(args, "target", "head") != "head":
        return None
    if getattr(args, "from_revision", None) is not None:
        return None
    try:
        return _fleet_check(args)
    except Exception:  # noqa: BLE001 - deliberately broad: the fast path never fails a command: the full path runs
        return None


def _fleet_check(args: Any) -> FleetReport | None:
    import time

    from schemashift.config import load_config
    from schemashift.history import manifest

    started = time.perf_counter()
    config = load_config(args.config)
    env = config.env(args.env, url=args.url)
    schemas = _tenant_schemas(env, args.tenants, args.all_tenants)
    url: str | None = args.url or env.url
    target = parse_url(url) if url else None
    if not schemas or target is None or not catalog(target).SUPPORTS_SCHEMAS:
        return None
    summary = manifest.verified_summary(config.migrations_dir, config.root)
    if summary is None or summary.head is None:
        return None
    chunks = [schemas[start:start + _CHUNK] for start in range(0, len(schemas), _CHUNK)]
    if len(chunks) == 1:
        clean = _chunk_clean(target, env.version_table, chunks[0], summary)
    else:  # the server reads the chunks on connections of their own at once (libpq lets go of the GIL)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(_CONNECTIONS, len(chunks))) as pool:
            clean = all(pool.map(lambda chunk: _chunk_clean(target, env.version_table, chunk, summary), chunks))
    if not clean:
        return None
    head = summary.head
    results = [TenantResult(schema, 0, head, 0.0, "nothing to do") for schema in schemas]
    return FleetReport("upgrade", results, time.perf_counter() - started)


def _chunk_clean(target: Target, table: str, schemas: list[str], expected: Summary) -> bool:
    """True when the version table of each of `schemas` lists exactly `expected`'s revisions, all applied.

    The rows themselves are read (a plain scan per table, several times cheaper for the
    server than an aggregate per table) and summarised here as the manifest is."""
    facts = catalog(target)
    connection = connect(target)
    try:
        cursor = connection.cursor()
        cursor.execute(" UNION ALL ".join(
            f"SELECT {index}, revision, checksum, state FROM {qualified(table, schema, facts.QUOTE)}"
            for index, schema in enumerate(schemas)))
        rows = cursor.fetchall()
    finally:
        connection.close()
    by_schema: dict[int, list[tuple[str, str, str]]] = {index: [] for index in range(len(schemas))}
    for index, revision, checksum, state in rows:
        by_schema[int(index)].append((revision, checksum, state))
    return all(len(found) == expected.count and all(state == "applied" for _, _, state in found)
               and pairs_digest(f"{revision} {checksum}" for revision, checksum, _ in found) == expected.pairs
               for found in by_schema.values())


def _tenant_schemas(env: Any, names: list[str] | None, every: bool) -> list[str] | None:
    """The tenant schemas selected, as `schemashift.services.fleet.select_tenants` picks them; None when any is
    a database of its own, comes from a query or a function, or is unknown (the full path explains)."""
    if env.tenants_query or env.tenants_from or any(tenant.url for tenant in env.tenants):
        return None
    known = [tenant.name for tenant in env.tenants]
    if every and not names:
        return known or None
    if not names:
        return None
    chosen = list(dict.fromkeys(names))
    return chosen if not known or set(chosen) <= set(known) else None


# -- the commands ---------------------------------------------------------------------


def fast_status(args: Any, out: Callable[[str], None] = print) -> int | None:
    """Print `status` and return 0 when the database is clean at head; else None (run the full path)."""
    clean = check(args, drift=True)
    if clean is None:
        return None
    report = {"env": clean.env, "url": clean.url, "current": clean.head, "head": clean.head, "pending": [],
              "problems": [], "schema_matches": True, "differences": [], "changes": [], "unknown_revisions": [],
              "notes": [], "exit_code": 0}
    if getattr(args, "json", False):
        import json

        out(json.dumps(report, indent=2, default=str))
    else:
        for line in (f"Environment: {clean.env} ({clean.url})", f"Current revision: {clean.head}",
                     f"Head revision: {clean.head}", "Pending: 0", "Live schema matches the migrations."):
            out(line)
    return 0


def fast_upgrade(args: Any, out: Callable[[str], None] = print) -> int | None:
    """Print the no-op answer of `upgrade` to head and return 0 when nothing is pending; else None."""
    if getattr(args, "sql", False) or getattr(args, "dry_run", False) or getattr(args, "target", "head") != "head":
        return None
    if getattr(args, "from_revision", None) is not None:
        return None
    clean = check(args, drift=False)
    if clean is None:
        return None
    out(f"Nothing to do: the database is at {clean.head}.")
    return 0

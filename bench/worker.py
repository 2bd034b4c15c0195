"""In-process measurements, run in a fresh child process per tool so that memory and caches stay separate.

    python bench/worker.py '{"task": "alembic", "url": "...", "n": 2000, "repeat": 3}'

Tasks: ``alembic`` (Alembic's `compare_metadata` with compare_type and
compare_server_default), ``schemashift`` (`schemashift.api.compare`: reflect + dialect normalize + diff) and
``catalog`` (the raw catalog queries of `catalog.py`). The database holds version 1
of the synthetic models and is compared with version 2. Models are built and the
connection opened before the clock starts; every timed run starts from a cold
inspector/reflection cache. Prints one JSON object: ``{"runs": [...], "detail": ...}``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synth import build_metadata  # noqa: E402


def alembic_diff(connection: sa.Connection, metadata: sa.MetaData) -> Callable[[], str]:
    """Alembic's autogenerate comparison of the live database with `metadata`."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    def run() -> str:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        differences = compare_metadata(context, metadata)
        return f"{len(differences)} difference(s)"

    return run


def schemashift_diff(connection: sa.Connection, metadata: sa.MetaData) -> Callable[[], str]:
    """schemashift's live diff, `schemashift.api.compare`: reflect, normalize both sides with the dialect, diff."""
    from schemashift.api import compare

    def run() -> str:
        return f"{len(compare(connection, metadata))} operation(s)"

    return run


def catalog_queries(connection: sa.Connection, metadata: sa.MetaData) -> Callable[[], str]:
    """The raw catalog queries baseline."""
    from catalog import fetch_catalog

    def run() -> str:
        return f"{fetch_catalog(connection)} catalog row(s)"

    return run


TASKS: dict[str, Callable[[sa.Connection, sa.MetaData], Callable[[], str]]] = {
    "alembic": alembic_diff, "schemashift": schemashift_diff, "catalog": catalog_queries,
}


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the task described by `spec` and return its timings."""
    metadata = build_metadata(spec["n"], changed=True)
    engine = sa.create_engine(spec["url"], poolclass=sa.pool.NullPool)
    runs: list[float] = []
    detail = ""
    try:
        with engine.connect() as connection:
            task = TASKS[spec["task"]](connection, metadata)
            for _ in range(spec["repeat"]):
                start = time.perf_counter()
                detail = task()
                runs.append(time.perf_counter() - start)
            if spec.get("profile"):
                import cProfile

                profiler = cProfile.Profile()
                profiler.runcall(task)
                profiler.dump_stats(spec["profile"])
    finally:
        engine.dispose()
    return {"runs": runs, "detail": detail}


def main() -> int:
    """Entry point: one JSON spec argument, one JSON result line; errors as one stderr line."""
    try:
        result = measure(json.loads(sys.argv[1]))
    except Exception as exc:  # noqa: BLE001 - reported as a one-line failure by the parent
        message = " ".join(str(exc).split())[:250]
        print(f"{type(exc).__name__}: {message}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

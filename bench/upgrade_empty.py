"""Upgrade from empty through K revisions, Alembic then schemashift on each backend, nothing else.

    python bench/upgrade_empty.py 3000 sqlite,postgresql,mysql

The same chain, commands and checks as the "upgrade from empty" rows of `bench/run.py`
(`tasks.write_chain_projects`, `tasks.chain`), without the status/no-op/offline rows: one JSON line per
backend with both times, the ratio (Alembic / schemashift) and the 1-minute load before and after.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import projects  # noqa: E402
import tasks  # noqa: E402
from dbs import Databases  # noqa: E402


def main(k: int, backends: list[str]) -> None:
    """Measure each backend in turn, both tools side by side."""
    work = Path(tempfile.mkdtemp(prefix="schemashift-upgrade-empty-"))
    databases = Databases(work)
    bench = tasks.Bench(tasks.FULL, backends, work, databases, print)
    chain = tasks.write_chain_projects(bench, k)
    try:
        for backend in backends:
            alembic_url, schemashift_url = databases.create(backend, f"al{k}"), databases.create(backend, f"ss{k}")
            ini = projects.write_alembic_ini(work / f"chain{k}_{backend}.ini", chain.alembic_scripts, alembic_url)
            before = os.getloadavg()[0]
            alembic = tasks._verified(bench.time(bench.alembic("-c", str(ini), "upgrade", "head"), 1), alembic_url, k)
            ours = tasks._verified(bench.time(bench.schemashift("upgrade", "--yes", "--url", schemashift_url), 1,
                                              cwd=chain.schemashift_project), schemashift_url, k)
            ratio = alembic.median / ours.median if alembic.ok and ours.ok else None  # type: ignore[operator]
            print(json.dumps({"backend": backend, "k": k, "alembic": alembic.median, "schemashift": ours.median,
                              "ratio": ratio, "error": alembic.error or ours.error,
                              "load": [round(before, 1), round(os.getloadavg()[0], 1)]}), flush=True)
    finally:
        databases.drop_all()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000,
         (sys.argv[2] if len(sys.argv) > 2 else "sqlite,postgresql,mysql").split(","))

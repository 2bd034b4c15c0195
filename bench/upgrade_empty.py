"""Upgrade from empty through K revisions, Alembic then schemashift on each backend, nothing else.

    python bench/upgrade_empty.py 3000 sqlite,postgresql,mysql [--runs N]

The same chain, commands and checks as the "upgrade from empty" rows of `bench/run.py`
(`tasks.write_chain_projects`, `tasks.chain`), without the status/no-op/offline rows: one JSON line per
backend with both times, the ratio (Alembic / schemashift) and the 1-minute load before and after.

With ``--runs N`` each tool upgrades N fresh databases one after the other from the same freshly
written project: the first run is cold (nothing cached: Alembic has no ``__pycache__`` for its
revision files, schemashift no ``.schemashift-cache``), the later ones warm (what a developer or a test
suite re-creating its database meets). The line then also gives the warm runs' median and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import projects  # noqa: E402
import tasks  # noqa: E402
from dbs import Databases  # noqa: E402
from measure import Timing  # noqa: E402


def main(k: int, backends: list[str], runs: int = 1) -> None:
    """Measure each backend in turn, both tools side by side."""
    work = Path(tempfile.mkdtemp(prefix="schemashift-upgrade-empty-"))
    databases = Databases(work)
    bench = tasks.Bench(tasks.FULL, backends, work, databases, print)
    chain = tasks.write_chain_projects(bench, k)
    try:
        for backend in backends:
            ini_path = work / f"chain{k}_{backend}.ini"
            before = os.getloadavg()[0]
            alembic: list[Timing] = []
            ours: list[Timing] = []
            for number in range(runs):  # alternate, so that a change of load hits both tools alike
                alembic_url = databases.create(backend, f"al{k}_{number}")
                ini = projects.write_alembic_ini(ini_path, chain.alembic_scripts, alembic_url)
                alembic.append(tasks._verified(bench.time(bench.alembic("-c", str(ini), "upgrade", "head"), 1),
                                               alembic_url, k))
                url = databases.create(backend, f"ss{k}_{number}")
                ours.append(tasks._verified(bench.time(bench.schemashift("upgrade", "--yes", "--url", url), 1,
                                                       cwd=chain.schemashift_project), url, k))
            print(json.dumps(_line(backend, k, alembic, ours, before)), flush=True)
    finally:
        databases.drop_all()


def _line(backend: str, k: int, alembic: list[Timing], ours: list[Timing], before: float) -> dict[str, object]:
    """The JSON line of one backend: the first (cold) run, and with more runs the warm runs' medians."""
    error = next((t.error for t in [*alembic, *ours] if t.error), None)
    first_al, first_ss = alembic[0].median, ours[0].median
    line: dict[str, object] = {"backend": backend, "k": k, "alembic": first_al, "schemashift": first_ss,
                               "ratio": _ratio(first_al, first_ss, error), "error": error,
                               "load": [round(before, 1), round(os.getloadavg()[0], 1)]}
    if len(ours) > 1 and error is None:
        warm_al = statistics.median(t.median for t in alembic[1:])  # type: ignore[misc]
        warm_ss = statistics.median(t.median for t in ours[1:])  # type: ignore[misc]
        line.update({"warm_alembic": round(warm_al, 3), "warm_schemashift": round(warm_ss, 3),
                     "warm_ratio": _ratio(warm_al, warm_ss, None), "warm_runs": len(ours) - 1,
                     "runs_alembic": [t.median for t in alembic], "runs_schemashift": [t.median for t in ours]})
    return line


def _ratio(alembic: float | None, ours: float | None, error: str | None) -> float | None:
    return round(alembic / ours, 2) if alembic and ours and error is None else None


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("k", nargs="?", type=int, default=3000)
    parser.add_argument("backends", nargs="?", default="sqlite,postgresql,mysql")
    parser.add_argument("--runs", type=int, default=1, help="fresh databases per tool; the first run is cold")
    args = parser.parse_args()
    main(args.k, args.backends.split(","), args.runs)

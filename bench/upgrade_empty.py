"""Upgrade from empty through K revisions, Alembic then schemashift on each backend, nothing else.

    python bench/upgrade_empty.py 3000 sqlite,postgresql,mysql [--runs N]

The same chain, commands and checks as the "upgrade from empty" rows of `bench/run.py`
(`tasks.write_chain_projects`, `tasks.chain`), without the status/no-op/offline rows: one JSON line per
backend with both times, the ratio (Alembic / schemashift) and the 1-minute load before and after.

With ``--runs N`` each tool upgrades N fresh databases one after the other from the same freshly
written project: the first run is cold (nothing cached: Alembic has no ``__pycache__`` for its
revision files, schemashift no ``.schemashift-cache``), the later ones warm (what a developer or a test
suite re-creating its database meets). The line then also gives the warm runs' median and their ratio.
With ``--cold C`` there are C cold pairs (the others on copies of the written project made without those
caches, as a clean checkout is), alternating with the warm ones: the cold figures are then medians too
(one cold run is one sample of a noisy minute).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import projects  # noqa: E402
import tasks  # noqa: E402
from dbs import Databases  # noqa: E402
from measure import Timing  # noqa: E402


def main(k: int, backends: list[str], runs: int = 1, cold: int = 1) -> None:
    """Measure each backend in turn, both tools side by side."""
    work = Path(tempfile.mkdtemp(prefix="schemashift-upgrade-empty-"))
    databases = Databases(work)
    bench = tasks.Bench(tasks.FULL, backends, work, databases, print)
    chain = tasks.write_chain_projects(bench, k)
    try:
        for backend in backends:
            before = os.getloadavg()[0]
            colds: list[tuple[Timing, Timing]] = []
            warms: list[tuple[Timing, Timing]] = []
            for number, kind in enumerate(_order(runs, cold)):  # alternate, so that a change of load hits both alike
                scripts, project = ((chain.alembic_scripts, chain.schemashift_project) if number == 0 or kind == "warm"
                                    else _clean_copies(chain, work / f"cold-{backend}-{number}"))
                pair = _pair(bench, databases, backend, k, number, scripts, project, work / f"chain{k}_{backend}.ini")
                (colds if kind == "cold" else warms).append(pair)
            print(json.dumps(_line(backend, k, colds, warms, before)), flush=True)
    finally:
        databases.drop_all()


def _order(runs: int, cold: int) -> list[str]:
    """The kinds of the pairs in the order they run: a cold one first (the written project), then warm and cold
    alternating while both remain."""
    warm, cold = max(runs, 1) - 1, max(cold, 1) - 1
    order = ["cold"]
    while warm or cold:
        if warm:
            order.append("warm")
            warm -= 1
        if cold:
            order.append("cold")
            cold -= 1
    return order


def _clean_copies(chain: tasks.ChainProjects, folder: Path) -> tuple[Path, Path]:
    """Both projects copied into `folder` without what a run caches (a clean checkout)."""
    skip = shutil.ignore_patterns("__pycache__", ".schemashift-cache")
    scripts = shutil.copytree(chain.alembic_scripts, folder / "alembic", ignore=skip)
    project = shutil.copytree(chain.schemashift_project, folder / "schemashift", ignore=skip)
    return scripts, project


def _pair(bench: tasks.Bench, databases: Databases, backend: str, k: int, number: int, scripts: Path,
          project: Path, ini_path: Path) -> tuple[Timing, Timing]:
    """Alembic then schemashift, each upgrading a fresh database of `backend` from empty."""
    alembic_url = databases.create(backend, f"al{k}_{number}")
    ini = projects.write_alembic_ini(ini_path, scripts, alembic_url)
    alembic = tasks._verified(bench.time(bench.alembic("-c", str(ini), "upgrade", "head"), 1), alembic_url, k)
    url = databases.create(backend, f"ss{k}_{number}")
    ours = tasks._verified(bench.time(bench.schemashift("upgrade", "--yes", "--url", url), 1, cwd=project), url, k)
    return alembic, ours


def _line(backend: str, k: int, colds: list[tuple[Timing, Timing]], warms: list[tuple[Timing, Timing]],
          before: float) -> dict[str, object]:
    """The JSON line of one backend: the cold runs (their medians), and with warm runs their medians."""
    error = next((t.error for pair in [*colds, *warms] for t in pair if t.error), None)
    line: dict[str, object] = {"backend": backend, "k": k, "error": error,
                               "load": [round(before, 1), round(os.getloadavg()[0], 1)]}
    for prefix, pairs in (("", colds), ("warm_", warms)):
        if not pairs or error is not None:
            continue
        alembic = statistics.median(a.median for a, _ in pairs)  # type: ignore[type-var]
        ours = statistics.median(o.median for _, o in pairs)  # type: ignore[type-var]
        line.update({f"{prefix}alembic": round(alembic, 3), f"{prefix}schemashift": round(ours, 3),
                     f"{prefix}ratio": _ratio(alembic, ours, None), f"{prefix}runs": len(pairs),
                     f"{prefix}runs_alembic": [a.median for a, _ in pairs],
                     f"{prefix}runs_schemashift": [o.median for _, o in pairs]})
    if error is not None:
        line["ratio"] = None
    return line


def _ratio(alembic: float | None, ours: float | None, error: str | None) -> float | None:
    return round(alembic / ours, 2) if alembic and ours and error is None else None


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("k", nargs="?", type=int, default=3000)
    parser.add_argument("backends", nargs="?", default="sqlite,postgresql,mysql")
    parser.add_argument("--runs", type=int, default=1, help="fresh databases per tool; the first run is cold")
    parser.add_argument("--cold", type=int, default=1,
                        help="cold pairs in all: the first run, and C-1 more on clean copies of the project")
    args = parser.parse_args()
    main(args.k, args.backends.split(","), args.runs, args.cold)

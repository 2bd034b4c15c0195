"""Print the scenarios where schemashift detects a change that Alembic's autogenerate misses.

Run from the repository root: ``.venv/bin/python tests/alembic_gap_report.py [--backend NAME ...]``.
For every scenario of the corpus (``tests/scenarios.py``) on SQLite and, when
their servers answer, PostgreSQL and MariaDB (the test suite's servers, see
``tests/conftest.py``): a throw-away database is upgraded to the scenario's v1
models with schemashift, then compared with the v2 models by Alembic's
``compare_metadata`` (``compare_type`` and ``compare_server_default`` on) and by
``schemashift diff``. The table lists each scenario where a schemashift
difference has no Alembic counterpart, with the backends where that happens;
``--markdown`` prints it as a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import BACKENDS, create_database, drop_database, server_error  # noqa: E402
from scenario_harness import compare_with_alembic, shared_engine, write_project  # noqa: E402
from scenarios import SCENARIOS, applicable  # noqa: E402

Gaps = dict[str, dict[str, list[str]]]


@dataclass
class Report:
    """Findings as scenario -> backend -> descriptions, and how many scenarios ran per backend."""

    missed_by_alembic: Gaps = field(default_factory=lambda: defaultdict(dict))
    missed_by_schemashift: Gaps = field(default_factory=lambda: defaultdict(dict))
    alembic_false_alarms: Gaps = field(default_factory=lambda: defaultdict(dict))
    counts: dict[str, int] = field(default_factory=dict)


def collect(backends: list[str], out=print) -> Report:  # type: ignore[no-untyped-def]
    """Run every applicable scenario on each reachable backend in `backends`."""
    report = Report()
    counts: dict[str, int] = {}
    for backend in backends:
        error = server_error(backend)
        if error:
            out(f"# {backend}: skipped ({error})")
            continue
        name = f"ss_gap_report_{uuid.uuid4().hex[:8]}"
        with tempfile.TemporaryDirectory() as folder:
            url = create_database(backend, name, Path(folder))
            engine = shared_engine(url)
            try:
                config = write_project(Path(folder) / "project", url, SCENARIOS)
                scenarios = [s for s in applicable(backend) if not s.xfail_reason(backend)]
                report.counts[backend] = len(scenarios)
                for scenario in scenarios:
                    comparison = compare_with_alembic(config, engine, scenario)
                    found = {
                        "missed_by_alembic": [op.describe() for op in comparison.missed_by_alembic],
                        "missed_by_schemashift": [d.label() for d in comparison.missed_by_schemashift],
                        "alembic_false_alarms": [d.label() for d in comparison.alembic_noise],
                    }
                    for kind, lines in found.items():
                        if lines:
                            getattr(report, kind)[scenario.name][backend] = lines
            finally:
                engine.dispose()
                drop_database(backend, name)
    return report


def _rows(gaps: Gaps) -> list[tuple[str, str, str]]:
    rows = []
    for scenario in [s.name for s in SCENARIOS if s.name in gaps]:
        by_backend = gaps[scenario]
        # backends with the same finding are listed together
        grouped: dict[str, list[str]] = defaultdict(list)
        for backend, found in by_backend.items():
            grouped["; ".join(found)].append(backend)
        for found, where in grouped.items():
            rows.append((scenario, ", ".join(where), found))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", action="append", choices=BACKENDS, help="only these backends (repeatable)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    report = collect(args.backend or list(BACKENDS))
    rows = _rows(report.missed_by_alembic)
    ran = ", ".join(f"{backend}: {count}" for backend, count in report.counts.items())
    _table(rows, "schemashift reports, Alembic does not", args.markdown)
    print(f"\n{len({r[0] for r in rows})} scenario(s) with changes Alembic misses; scenarios run per backend: {ran}")
    if report.alembic_false_alarms:
        print("\nAlembic's false alarms (reported against the very models the database was built from):\n")
        _table(_rows(report.alembic_false_alarms), "Alembic reports", args.markdown)
    if report.missed_by_schemashift:
        print("\nAlembic differences schemashift does NOT report (should be none):\n")
        _table(_rows(report.missed_by_schemashift), "Alembic reports", args.markdown)
        return 1
    return 0


def _table(rows: list[tuple[str, str, str]], heading: str, markdown: bool) -> None:
    if markdown:
        print(f"| scenario | backends | {heading} |")
        print("|---|---|---|")
        for scenario, where, found in rows:
            print(f"| `{scenario}` | {where} | {found} |")
        return
    width = max((len(r[0]) for r in rows), default=10)
    backends_width = max((len(r[1]) for r in rows), default=10)
    for scenario, where, found in rows:
        print(f"{scenario:<{width}}  {where:<{backends_width}}  {found}")


if __name__ == "__main__":
    sys.exit(main())

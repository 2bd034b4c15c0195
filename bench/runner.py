"""The runner task: the pytest plugin's `MigrationRunner` stepping through 100 revisions, against one `upgrade`.

Both work on the same 100-revision chain (`synth.chain_steps`: a small table every
fourth revision, else a column), each on a fresh database, in a child process of its
own with the project loaded before the clock starts: ``stepwise`` is one
`schemashift.api.upgrade(step_by_step=True)` from empty to head (every migration run),
``plain`` is one `schemashift.api.upgrade` from empty (a fresh build from the head
schema: no migration runs), ``runner`` is 100 calls of ``runner.upgrade("+1")``, as a
data-migration test steps. The three modes take turns, run after run, so a change of
the shared machine's load hits them alike. Two rows: the runner against the
step-by-step upgrade (the target, issue 15: at most 1.2, since stepping runs every
migration as it does) and against the fresh build (for information). Alembic has no
counterpart (pytest-alembic drives Alembic's own upgrade).

    python bench/runner.py '{"mode": "runner", "url": "...", "project": "..."}'   # the child: prints seconds
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import Timing, failed, run_process

if TYPE_CHECKING:
    from tasks import Bench

#: Revisions stepped through.
K = 100


def write_project(folder: Path, k: int = K) -> Path:
    """A schemashift project holding the k-revision chain; returns the project folder."""
    import projects
    from synth import chain_steps

    projects.write_schemashift_chain(projects.write_schemashift_project(folder, None), chain_steps(k))
    return folder


def runner_task(bench: Bench, backend: str) -> None:
    """Time the plain upgrade and the stepping runner on `backend`, each on fresh databases."""
    project = write_project(bench.work / f"runner_{backend}")
    repeat = max(2, bench.sizes.repeat_read // 2)
    stepwise, plain, stepped = _timed(bench, backend, project, ("stepwise", "plain", "runner"), repeat)
    none = failed("no counterpart (pytest-alembic runs Alembic's upgrade)")
    ratio = _ratio(stepped, stepwise)
    bench.add("pytest runner: 100 single steps vs one step-by-step upgrade", backend, f"K={K}", none, stepped,
              baseline=stepwise, target="runner <= 1.2x `upgrade --step-by-step` (S / base)",
              met=None if ratio is None else ratio <= 1.2,
              notes="" if ratio is None else f"runner / step-by-step = {ratio:.2f}")
    fresh = _ratio(stepped, plain)
    bench.add("pytest runner: 100 single steps vs one upgrade (fresh build)", backend, f"K={K}", none, stepped,
              baseline=plain, target="for information (a fresh build runs no migration)", met=None,
              notes="" if fresh is None else f"runner / fresh upgrade = {fresh:.2f}")


def _ratio(timing: Timing, baseline: Timing) -> float | None:
    return timing.median / baseline.median if timing.ok and baseline.ok else None  # type: ignore[operator]


def _timed(bench: Bench, backend: str, project: Path, modes: tuple[str, ...], repeat: int) -> list[Timing]:
    """`repeat` runs of each mode, the modes taking turns (a change of the shared machine's load hits them alike)."""
    timings = {mode: Timing() for mode in modes}
    for run in range(repeat):
        for mode in modes:
            if timings[mode].error is None:
                timings[mode] = _sample(bench, backend, project, mode, run, timings[mode])
    return [timings[mode] for mode in modes]


def _sample(bench: Bench, backend: str, project: Path, mode: str, run: int, timing: Timing) -> Timing:
    """`timing` with one more run of `mode` on a fresh database (or the failure)."""
    url = bench.dbs.create(backend, f"runner_{mode}{run}")
    spec = json.dumps({"mode": mode, "url": url, "project": str(project)})
    sample = run_process([sys.executable, str(Path(__file__).resolve()), spec], cwd=project, env=bench.env(),
                         timeout=bench.sizes.timeout)
    if sample.returncode != 0:
        return failed(f"{mode}: {sample.last_line()}")
    timing.runs.append(float(json.loads(sample.stdout.strip().splitlines()[-1])["seconds"]))
    timing.add_rss(sample.rss_mib)
    return timing


def measure(mode: str, url: str, project: str) -> float:
    """Seconds to bring the empty database `url` to head: one upgrade (``plain``: fresh build, ``stepwise``: step
    by step) or K runner steps."""
    from schemashift import api
    from schemashift.config import load_config
    from schemashift.pytest_plugin import MigrationRunner, open_scratch_project

    config = load_config(Path(project) / "schemashift.toml")
    opened = open_scratch_project(config, url, None)
    steps = len(opened.history().chain)
    started = time.perf_counter()
    if mode in ("plain", "stepwise"):
        api.upgrade(opened, "head", yes=True, out=lambda line: None, step_by_step=mode == "stepwise")
    else:
        runner = MigrationRunner(opened)
        try:
            for _ in range(steps):
                runner.upgrade("+1")
        finally:
            runner.dispose()
    return time.perf_counter() - started


if __name__ == "__main__":
    options = json.loads(sys.argv[1])
    print(json.dumps({"seconds": measure(options["mode"], options["url"], options["project"])}))

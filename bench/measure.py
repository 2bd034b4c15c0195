"""Timing helpers: run a command as a child process and read its wall time and peak memory.

Peak memory is the child's maximum resident set size as the kernel reports it for
that one child (`os.wait4`, the per-child form of `getrusage(RUSAGE_CHILDREN)`),
so each sample is a whole-process figure: interpreter start, imports and work.
Wall time is measured by the launcher around fork-exec-wait, so the launcher's own
start-up is not counted.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence


@dataclass
class Sample:
    """One finished child process."""

    seconds: float
    rss_mib: float
    returncode: int
    stdout: str
    stderr: str

    def last_line(self) -> str:
        """The last non-empty line of stderr (else stdout), for failure messages."""
        for text in (self.stderr, self.stdout):
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            if lines:
                return lines[-1][:300]
        return f"exit code {self.returncode}"


#: A minimal launcher (run with ``python -S -I``): forks the measured command, waits for it with
#: `os.wait4` and writes "seconds maxrss exitcode" to the file named by its first argument. The
#: launcher keeps the child's peak RSS honest: Linux carries the high-water RSS of the process that
#: forked (or vforked) across exec, so forking directly from this big benchmark process would report
#: the benchmark's own size for every child.
LAUNCHER = """
import os, sys, time
report, argv = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
with open(report, "w") as handle:
    handle.write(f"{seconds} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


def run_process(argv: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
                timeout: float = 900.0) -> Sample:
    """Run `argv` to completion and return its wall time, peak RSS, exit code and output."""
    with tempfile.TemporaryDirectory(prefix="ssbench-run-") as temp:
        report = Path(temp) / "rusage"
        out_path, err_path = Path(temp) / "stdout", Path(temp) / "stderr"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            process = subprocess.Popen([sys.executable, "-S", "-I", "-c", LAUNCHER, str(report), *argv], cwd=cwd,
                                       env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
            try:
                process.wait(timeout=timeout)
                timed_out = False
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                timed_out = True
        stdout = out_path.read_text("utf-8", "replace")
        stderr = err_path.read_text("utf-8", "replace")
        fields = report.read_text().split() if report.exists() else []
    if timed_out or len(fields) != 3:
        why = f"timed out after {timeout:.0f} s" if timed_out else f"launcher failed (exit {process.returncode})"
        return Sample(timeout if timed_out else 0.0, 0.0, -1, stdout, stderr + "\n" + why)
    return Sample(float(fields[0]), _rss_mib(int(fields[1])), int(fields[2]), stdout, stderr)


def _rss_mib(maxrss: int) -> float:
    """ru_maxrss in MiB (kilobytes on Linux, bytes on macOS)."""
    return maxrss / (1024 * 1024) if sys.platform == "darwin" else maxrss / 1024


@dataclass
class Timing:
    """Repeated measurements of one thing: seconds per run and the highest peak RSS seen."""

    runs: list[float] = field(default_factory=list)
    rss_mib: float | None = None
    error: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        """True when every run succeeded."""
        return self.error is None and bool(self.runs)

    @property
    def median(self) -> float | None:
        """Median seconds, None when failed."""
        return statistics.median(self.runs) if self.ok else None

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "status": "ok" if self.ok else f"failed: {self.error or 'no runs'}",
            "median": self.median, "min": min(self.runs) if self.ok else None,
            "max": max(self.runs) if self.ok else None, "runs": self.runs,
            "peak_rss_mib": self.rss_mib, "detail": self.detail,
        }

    def add_rss(self, value: float | None) -> None:
        """Keep the highest peak RSS."""
        if value is not None:
            self.rss_mib = value if self.rss_mib is None else max(self.rss_mib, value)


def time_process(argv: Sequence[str], *, repeat: int, warmup: bool = False, ok_codes: Sequence[int] = (0,),
                 cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 900.0,
                 after_each: Callable[[], None] | None = None,
                 check: Callable[[Sample], str | None] | None = None) -> Timing:
    """Run `argv` `repeat` times (plus one untimed warm-up run with `warmup`) and collect a Timing.

    A run whose exit code is not in `ok_codes` stops the measurement with its last
    output line as the error, as does one for which `check` returns a message.
    `after_each` runs after every run (to undo side effects).
    """
    timing = Timing()
    for number in range(repeat + (1 if warmup else 0)):
        sample = run_process(argv, cwd=cwd, env=env, timeout=timeout)
        if after_each is not None:
            after_each()
        problem = sample.last_line() if sample.returncode not in ok_codes else (check(sample) if check else None)
        if problem is not None:
            timing.error = problem
            return timing
        if warmup and number == 0:
            continue
        timing.runs.append(sample.seconds)
        timing.add_rss(sample.rss_mib)
    return timing


def failed(message: str) -> Timing:
    """A Timing that records a failure."""
    return Timing(error=" ".join(message.split())[:300] or "failed")

"""What a MariaDB error log says about the server's last crash, in a few lines.

Used by the test summary (tests/conftest.py) and by `.ci/run` on a failed run
(`python tests/services/server_log.py LOG`), so that a server that died mid-run says why:
the lines before the signal (an InnoDB assertion, a fatal semaphore wait), the signal, the
first frames of the stack and the statement it was running.
"""

from __future__ import annotations

import sys
from pathlib import Path

#: A line that starts a crash report.
CRASH_MARKS = ("got signal", "[FATAL]", "Failing assertion")
#: Lines of the report kept whole; the rest (mostly the stack) is cut after `STACK_FRAMES` lines.
KEPT = ("Query (", "Connection ID", "Status:", "Server version", "Thread pointer")
STACK_FRAMES = 40
#: Noise that says nothing about a crash.
NOISE = ("Aborted connection", "Access denied")


def crash_report(text: str, before: int = 12) -> list[str]:
    """The last crash in `text` (an error log), or its last lines when it holds no crash."""
    lines = [line for line in text.splitlines() if not any(noise in line for noise in NOISE)]
    starts = [number for number, line in enumerate(lines) if any(mark in line for mark in CRASH_MARKS)]
    if not starts:
        return lines[-30:]
    first = starts[0] if len(starts) == 1 else _first_of_last_crash(lines, starts)
    report = lines[max(0, first - before):first + 1]
    frames = 0
    for line in lines[first + 1:]:
        if not line.strip() or line.startswith("Optimizer switch"):
            continue
        if line.startswith("Writing a core file") or line.startswith("Resource Limits"):
            break
        if any(kept in line for kept in KEPT):
            report.append(line)
        elif frames < STACK_FRAMES:
            frames += 1
            report.append(line)
    return report


def _first_of_last_crash(lines: list[str], starts: list[int]) -> int:
    """The first marked line of the last crash (marks less than 40 lines apart belong to one crash)."""
    first = starts[-1]
    for number in reversed(starts[:-1]):
        if first - number > 40:
            break
        first = number
    return first


def main(paths: list[str]) -> None:
    """Print the crash report of each readable log."""
    for path in paths:
        try:
            text = Path(path).read_text(errors="replace")
        except OSError:
            continue
        print(f"--- {path}")
        print("\n".join(crash_report(text)))


if __name__ == "__main__":
    main(sys.argv[1:])

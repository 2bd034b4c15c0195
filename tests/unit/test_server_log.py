"""The suite's report of a MariaDB crash (tests/services/server_log.py) keeps what says why, and little else."""

from __future__ import annotations

from services.server_log import crash_report

CRASH = """\
2026-12-06 23:01:02 55 [Warning] Aborted connection 55 to db: 'x' user: 'root' host: 'localhost'
2026-12-06 23:01:03 0 [Note] InnoDB: Buffer pool(s) load completed
2026-12-06 23:01:04 0 [ERROR] [FATAL] InnoDB: innodb_fatal_semaphore_wait_threshold was exceeded for dict_sys.latch
261206 23:01:04 [ERROR] mysqld got signal 6 ;
Sorry, we probably made a mistake, and this is a bug.

Server version: 10.11.19-MariaDB-0+deb12u1 source revision: x
Thread pointer: 0x7f0000
/usr/sbin/mariadbd(my_print_stacktrace+0x2e)[0x55]
/usr/sbin/mariadbd(handle_fatal_signal+0x485)[0x55]
Query (0x7f22): ALTER TABLE t ADD COLUMN x INT
Connection ID (thread ID): 1234
Status: NOT_KILLED

Optimizer switch: index_merge=on
Writing a core file...
Working directory at /var/lib/mysql
Resource Limits (excludes unlimited resources):
Max open files            20000                20000                files
"""


def test_the_report_keeps_the_cause_the_stack_and_the_statement() -> None:
    report = crash_report("2026-12-06 22:00:00 0 [Note] started\n" * 100 + CRASH)
    assert report[0].endswith("Buffer pool(s) load completed") or "[Note] started" in report[0]
    assert any("innodb_fatal_semaphore_wait_threshold" in line for line in report)
    assert "Query (0x7f22): ALTER TABLE t ADD COLUMN x INT" in report
    assert "Status: NOT_KILLED" in report
    assert not any("Aborted connection" in line or "Optimizer switch" in line or "Max open files" in line
                   for line in report)


def test_a_log_without_a_crash_gives_its_last_lines() -> None:
    log = "".join(f"line {number}\n" for number in range(100))
    assert crash_report(log) == [f"line {number}" for number in range(70, 100)]

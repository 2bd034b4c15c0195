"""Throw-away database services the test suite starts itself: PgBouncer and a MariaDB Galera cluster.

Each service runs from its Debian binary in a private temporary directory on free loopback
ports, and is stopped by its process id. The pytest fixtures that use them live in
tests/conftest.py; this package holds no pytest state.
"""

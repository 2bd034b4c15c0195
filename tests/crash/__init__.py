"""Crash layer: crash injection, concurrency, repair safety and timeouts."""

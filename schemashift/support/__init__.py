"""Small utilities with no schemashift dependencies: GC pauses, a libpq client, progress output."""

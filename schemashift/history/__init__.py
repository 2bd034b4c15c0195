"""Migration files: loading, the revision chain, the manifest, the local cache, writing and rebasing.

Modules, bottom to top (each imports only those before it; none imports `schemashift.planning`):
`files` (names, numbers, checksums), `records` (what the version table records) and `cache` (the
local, untracked cache) use the standard library only; `loader` (one file -> `Migration`), `chain`
(`History`), `snapshot` (``schemashift.head``, the committed schema at the end of the fresh prefix),
`manifest` (``schemashift.sum`` and the lazy, cached load of a folder), `writer` (new files) and
`rebase` (forks made linear).
"""

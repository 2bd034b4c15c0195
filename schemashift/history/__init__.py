"""Migration files: loading, the revision chain, the manifest, the local cache, writing and rebasing."""

"""Reading a live database into the neutral model (the per-database readers live in `schemashift.dialects`)."""

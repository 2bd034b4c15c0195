"""Property layer: Hypothesis round trips (rendering; random schema changes down and up on every database)."""

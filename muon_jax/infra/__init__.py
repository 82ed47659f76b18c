"""Run infrastructure below every other package: config fields with doc and range, atomic
results writing and provenance, progress with ETA, benchmark timing."""

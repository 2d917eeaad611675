"""Storage connections and syncs: a source storage's objects kept as a dataset's data rows."""

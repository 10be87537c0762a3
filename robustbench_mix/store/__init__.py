"""The results contract: the columns of runs.csv, schema-checked loading, merging under a lock, summaries."""

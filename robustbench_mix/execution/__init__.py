"""Running runs: one run end to end, executors (local, Ray), run locks, the time limit, a grid and its dry run."""

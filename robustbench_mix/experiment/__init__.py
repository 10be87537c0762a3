"""What a run is: the frozen, hashed ``Experiment`` (its run id and migrations), ``RunOptions``, validation
against the parts' registries, grids of runs and the presets as data."""

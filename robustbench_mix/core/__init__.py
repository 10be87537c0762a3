"""The floor every layer stands on: errors, the registry, atomic writes, the units (the epsilon rule and the
``Norm`` enum), the device policy, the torch-file reader and the version. Imports nothing of the package above it."""

"""Plugins: a user's own methods, models, attacks and corruptions, registered with the public decorators
(``register_method``, ``register_model``, ``register_attack``, ``register_corruption``,
``register_dataset``; api.py) in a file or module
of their own, loaded by every command (``--plugin``, ``$ROBUSTBENCH_MIX_PLUGINS``, the entry-point group
``robustbench_mix.plugins``; loading.py) and held to the registries' contracts (contracts.py,
``python -m robustbench_mix.check``). docs/own-method.md is the user's page."""

from robustbench_mix.plugins.api import (
    beta,
    register_attack,
    register_corruption,
    register_dataset,
    register_method,
    register_model,
)
from robustbench_mix.plugins.loading import ENV, GROUP, load_plugins, loaded_specs, plugin_specs, unload_all

__all__ = ["ENV", "GROUP", "beta", "load_plugins", "loaded_specs", "plugin_specs", "register_attack",
           "register_corruption", "register_dataset", "register_method", "register_model", "unload_all"]

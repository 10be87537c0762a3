"""Plugins written into tmp_path as a user writes them, and registries left as they were after each test."""

import textwrap

import pytest
from plugin_text import PLUGIN

from robustbench_mix.plugins import unload_all


@pytest.fixture(autouse=True)
def no_plugins_after(monkeypatch):
    """Each test starts and ends with only the built-in entries (and no plugins from the environment)."""
    monkeypatch.delenv("ROBUSTBENCH_MIX_PLUGINS", raising=False)
    unload_all()
    yield
    unload_all()


@pytest.fixture
def write_plugin(tmp_path):
    def write(text: str = PLUGIN, name: str = "my_plugin.py"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write

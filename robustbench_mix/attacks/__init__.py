"""Attacks in [0, 1] pixel space (registry ``ATTACKS``), one module per family: linf, l2, autoattack, adapters."""

from robustbench_mix.attacks import autoattack, l2, linf  # noqa: F401 - register the attacks
from robustbench_mix.attacks.base import ATTACKS, Attack, get_attack

__all__ = ["ATTACKS", "Attack", "get_attack"]

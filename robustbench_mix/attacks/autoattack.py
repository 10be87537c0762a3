"""AutoAttack (Croce & Hein, ICML 2020), the official implementation (pyautoattack), standard version."""

from __future__ import annotations

import contextlib

import torch

from robustbench_mix.attacks.base import register_attack
from robustbench_mix.core.errors import UsageError
from robustbench_mix.core.units import Norm


def autoattack_class():
    try:
        from pyautoattack import AutoAttack
    except ImportError:
        raise UsageError("attack 'autoattack' needs the pyautoattack package (the maintained release of the "
                         "official AutoAttack): pip install 'robustbench_mix[autoattack]'") from None
    return AutoAttack


class _Float32Logits(torch.nn.Module):
    """The model, run under the caller's autocast (``--attack-precision bf16``), returning float32 logits.
    AutoAttack itself runs outside autocast: under it, its own arithmetic mixes bf16 and float32 tensors
    (Square's loss buffers: an error), so only the model's forward is in bf16, as for the other attacks."""

    def __init__(self, model: torch.nn.Module, device_type: str, dtype: torch.dtype | None):
        super().__init__()
        self.model, self.device_type, self.dtype = model, device_type, dtype

    def forward(self, x):
        amp = (torch.autocast(self.device_type, dtype=self.dtype) if self.dtype is not None
               else contextlib.nullcontext())
        with amp:
            return self.model(x).float()


# AutoAttack's standard version targets the 9 most likely other classes in APGD-T and FAB-T (CIFAR-10's all)
AUTOATTACK_TARGETS = 9
# APGD-T's targeted DLR loss divides by the gap between the largest and the 3rd and 4th largest logits
DLR_TARGETED_MIN_CLASSES = 4


def autoattack_for(model, eps: float, num_classes: int, device, norm: Norm = Norm.LINF):
    """The standard AutoAttack, adapted where a class count below 10 makes it fail: APGD-T and FAB-T target the
    ``num_classes - 1`` other classes (the standard version asks for 9, more than exist), and with fewer than 4
    classes APGD-T is left out, since its targeted DLR loss needs 4 logits (pyautoattack's own class-count check
    says both, then raises an IndexError). With 10 or more classes it is the standard version unchanged."""
    kind = torch.device(device).type
    dtype = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else None
    # without autocast the model is given as it is: the wrapper's per-forward cost made the suite 1.09x the
    # official call on a small model, 1.00x without it (experiments/autoattack_parity)
    net = model if dtype is None else _Float32Logits(model, kind, dtype)
    adversary = autoattack_class()(net, eps=eps, norm=norm, version="standard", device=device, seed=0)
    adversary.verbose = False
    targets = min(AUTOATTACK_TARGETS, num_classes - 1)
    adversary.apgd_targeted.n_target_classes = adversary.fab.n_target_classes = targets
    if num_classes < DLR_TARGETED_MIN_CLASSES:
        adversary.attacks_to_run = [a for a in adversary.attacks_to_run if a != "apgd-t"]
    return adversary


# the standard version's budget per image, in forward-backward passes: APGD-CE 100 iterations, APGD-T and FAB-T
# 100 for each of their 9 targets, Square 5,000 queries (forwards, about a third of a forward-backward each);
# each attack runs only on the points the ones before it left, so a model that the first breaks costs far less
AUTOATTACK_BUDGET = 100 + 2 * AUTOATTACK_TARGETS * 100 + 5000 // 3


def _budget(steps: int) -> int:
    return AUTOATTACK_BUDGET


def _run_autoattack(model, x, y, eps, norm):
    if eps == 0:
        return x.clone()
    with torch.no_grad():
        num_classes = model(x[:1]).shape[1]
    adversary = autoattack_for(model, eps, num_classes, x.device, norm)
    with torch.autocast(x.device.type, enabled=False):
        x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=len(x))
    return x_adv.detach()


@register_attack("autoattack", random_start=False, iterative=True, needs=autoattack_class, budget=_budget)
def autoattack(model, x, y, eps, steps=10, step_size=None, loss="ce"):
    """The standard L-infinity AutoAttack (Croce & Hein, ICML 2020: APGD-CE, APGD-T, FAB-T and Square with
    5,000 queries, each on the points the previous ones left) from pyautoattack. It sets its own steps and
    restarts (``steps``, ``step_size`` and ``--attack-restarts`` do not apply); about 100x a PGD-10 on robust
    points, far less on points the first attack breaks. Data with fewer than 10 classes: see
    :func:`autoattack_for`."""
    return _run_autoattack(model, x, y, eps, Norm.LINF)


@register_attack("autoattack_l2", random_start=False, iterative=True, needs=autoattack_class, norm=Norm.L2,
                 budget=_budget)
def autoattack_l2(model, x, y, eps, steps=10, step_size=None, loss="ce"):
    """The standard AutoAttack in its L2 threat model (``eps`` an L2 radius, 0.5 on CIFAR-10 as RobustBench), as
    :func:`autoattack` otherwise."""
    return _run_autoattack(model, x, y, eps, Norm.L2)

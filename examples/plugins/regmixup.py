"""RegMixup (Pinto, Yang, Lim, Torr, Dokania: "Using Mixup as a Regularizer Can Surprisingly Improve Accuracy and
Out-of-Distribution Robustness", NeurIPS 2022) as a plugin, written with robustbench_mix's public API only.

What is followed: RegMixup keeps the clean batch's cross-entropy and adds mixup's loss as a regularizer,
L = CE(f(x), y) + eta * CE_mix(f(x~), y~), with x~ = lam * x + (1 - lam) * x[perm], lam ~ Beta(alpha, alpha) once per
batch, and eta = 1. Unlike mixup it wants a large alpha (lam near 1/2: strongly mixed, high-entropy targets); 10 is
the value of the paper's CIFAR-10 setting, the default here. The clean and the mixed batch go through the model in
one forward of their concatenation, and the loss is the mean over its 2B examples, as in the authors' public code
as remembered here (not checked against it: no network); so the loss is (CE + CE_mix) / 2, eta = 1 up to that
factor of 1/2, and at alpha 0 (lam = 1, no mixing) it is exactly ERM's loss: erm_multiple stays 1.

    python -m robustbench_mix.check --plugin examples/plugins/regmixup.py
    python -m robustbench_mix.suite --plugin examples/plugins/regmixup.py --methods erm,mixup,regmixup --seeds 0,1,2
"""

import torch
import torch.nn.functional as F

import robustbench_mix as rbm


@rbm.register_method("regmixup", uses_alpha=True, default=10.0, title="RegMixup")
def regmixup(model, x, y, num_classes, alpha, generator):
    """The batch's RegMixup loss; every random number comes from ``generator`` (lam and the partners)."""
    lam = rbm.beta(alpha, generator)
    perm = torch.randperm(len(x), generator=generator, device=generator.device)
    out = model(torch.cat([x, lam * x + (1.0 - lam) * x[perm]])).float()
    clean, mixed = out[:len(x)], out[len(x):]
    ce_clean = F.cross_entropy(clean, y, reduction="sum")
    ce_mix = lam * F.cross_entropy(mixed, y, reduction="sum") + (1.0 - lam) * F.cross_entropy(mixed, y[perm],
                                                                                            reduction="sum")
    return (ce_clean + ce_mix) / (2 * len(x))

"""The plugin file the tests write: what a user writes."""

# a method, a model and an attack in one file outside the package, with the public API only
PLUGIN = '''
import torch
import torch.nn as nn
import torch.nn.functional as F

import robustbench_mix as rbm


@rbm.register_method("my_mix", uses_alpha=True, default=1.0)
def my_mix(model, x, y, num_classes, alpha, generator):
    lam = rbm.beta(alpha, generator)
    perm = torch.randperm(len(x), generator=generator, device=generator.device)
    out = model(lam * x + (1 - lam) * x[perm])
    return lam * F.cross_entropy(out, y) + (1 - lam) * F.cross_entropy(out, y[perm])


@rbm.register_model("my_net")
def my_net(num_classes, in_shape):
    c, h, w = in_shape
    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 32), nn.ReLU(), nn.Linear(32, num_classes))


@rbm.register_attack("my_fgsm", norm="Linf")
def my_fgsm(model, x, y, eps, steps, step_size):
    x = x.clone().requires_grad_(True)
    g, = torch.autograd.grad(F.cross_entropy(model(x), y), x)
    return (x + eps * g.sign()).clamp(0, 1).detach()
'''

"""L-infinity and L2 attacks in [0, 1] pixel space (the model normalizes inside), batched on the device.

Each attack is ``fn(model, x, y, eps, steps, step_size, loss) -> x_adv``; its ``norm`` trait says which threat
model it is. L-infinity (``fgsm``, ``ifgsm``, ``pgd``, ``pgd_margin``, ``autoattack``): ``eps`` and ``step_size``
are fractions of the pixel range (8/255), the largest change of any one value. L2 (``fgm_l2``, ``pgd_l2``,
``autoattack_l2``): ``eps`` is the radius of the L2 ball over all C*H*W values of an image in [0, 1] pixel space,
RobustBench's convention (0.5 on CIFAR-10); it has no /255 form. The loops never call ``.item()``, so they
queue on the GPU without host synchronization. ``ta:NAME`` names any torchattacks attack (optional extra
``[torchattacks]``).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import UsageError
from .registry import Registry

LOSSES = ("ce", "margin")


@dataclass(frozen=True)
class Attack:
    """An attack and the traits the evaluation and the sanity checks ask about: ``random_start`` (restarts
    make sense, and the gradient-masking check at a large epsilon runs it), ``iterative`` (it must be at
    least as strong as the one-step attack of its norm), ``norm`` ("Linf" or "L2": which epsilon grid it runs
    on and which ball the checks hold it to). Calling it runs the attack."""

    fn: Callable[..., torch.Tensor]
    random_start: bool
    iterative: bool
    needs: Callable[[], object] | None = None  # raises UsageError when an optional package is missing
    norm: str = "Linf"

    def __call__(self, model, x, y, eps, steps=10, step_size=None, loss="ce"):
        return self.fn(model, x, y, eps, steps=steps, step_size=step_size, loss=loss)


ATTACKS: Registry[Attack] = Registry("attack")


NORMS = ("Linf", "L2")
# the per-example worst case over the white-box attacks of each norm (rows of their own)
WORST = {"worst": "Linf", "worst_l2": "L2"}
# the one-step attack of each norm, which every iterative attack of that norm must beat
ONE_STEP = {"Linf": "fgsm", "L2": "fgm_l2"}


def register_attack(name: str, *, random_start: bool, iterative: bool, needs: Callable[[], object] | None = None,
                    norm: str = "Linf"):
    """Register ``fn`` as attack ``name`` with its traits; the function itself stays importable."""
    assert norm in NORMS, norm

    def deco(fn):
        ATTACKS.register(name)(Attack(fn, random_start, iterative, needs, norm))
        return fn

    return deco


def attack_loss(logits: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "ce":
        return F.cross_entropy(logits, y)  # mean, like torchattacks, so both take identical steps
    # Carlini-Wagner margin: best wrong logit minus true logit; not saturated by soft-target training.
    true = logits.gather(1, y[:, None]).squeeze(1)
    wrong = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    return (wrong - true).sum()


def input_grad(model, x, y, loss: str) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    return torch.autograd.grad(attack_loss(model(x), y, loss), x)[0]


def project(x_adv, x, eps):
    """Back into the eps-ball around x and into [0, 1]."""
    return torch.clamp(x + torch.clamp(x_adv - x, -eps, eps), 0.0, 1.0)


def l2_norms(v: torch.Tensor) -> torch.Tensor:
    """Each example's L2 norm over all its values, shaped to broadcast against ``v``."""
    return v.flatten(1).norm(p=2, dim=1).view(-1, *([1] * (v.dim() - 1)))


def project_l2(x_adv, x, eps):
    """Back into the L2 ball of radius eps around x (each example's perturbation scaled down, never up) and into
    [0, 1]; clamping only moves values towards x, so the result stays in the ball. As torchattacks' PGDL2, with a
    zero perturbation left as it is (eps 0 gives x, not 0/0)."""
    delta = x_adv - x
    norms = l2_norms(delta)
    factor = torch.where(norms > 0, eps / norms, torch.ones_like(norms))
    return torch.clamp(x + delta * torch.min(factor, torch.ones_like(norms)), 0.0, 1.0)


def unit_l2(g: torch.Tensor) -> torch.Tensor:
    """``g`` divided by its per-example L2 norm (+1e-10, as torchattacks, so a zero gradient stays zero)."""
    return g / (l2_norms(g) + 1e-10)


@register_attack("fgsm", random_start=False, iterative=False)
def fgsm(model, x, y, eps, steps=1, step_size=None, loss="ce"):
    """Goodfellow et al. (2015): one signed-gradient step of size eps."""
    return torch.clamp(x + eps * input_grad(model, x, y, loss).sign(), 0.0, 1.0).detach()


def _iterate(model, x, y, eps, steps, step_size, loss, random_start):
    x_adv = x.clone()
    if random_start:
        x_adv = torch.clamp(x_adv + torch.empty_like(x_adv).uniform_(-eps, eps), 0.0, 1.0)
    for _ in range(steps):
        x_adv = project(x_adv + step_size * input_grad(model, x_adv, y, loss).sign(), x, eps).detach()
    return x_adv


@register_attack("ifgsm", random_start=False, iterative=True)
def ifgsm(model, x, y, eps, steps=10, step_size=None, loss="ce"):
    """Iterative FGSM / BIM (Kurakin et al., 2017), the paper's 'I-FGSM': no random start."""
    return _iterate(model, x, y, eps, steps, step_size, loss, random_start=False)


@register_attack("pgd", random_start=True, iterative=True)
def pgd(model, x, y, eps, steps=10, step_size=None, loss="ce"):
    """PGD (Madry et al., 2018): uniform random start in the eps-ball, then projected signed steps."""
    return _iterate(model, x, y, eps, steps, step_size, loss, random_start=True)


@register_attack("pgd_margin", random_start=True, iterative=True)
def pgd_margin(model, x, y, eps, steps=10, step_size=None, loss="margin"):
    """PGD on the Carlini-Wagner margin: soft-target training (mixup) can flatten CE without adding
    robustness, so report the stronger of the two (the ``worst`` rows)."""
    return _iterate(model, x, y, eps, steps, step_size, "margin", random_start=True)


@register_attack("fgm_l2", random_start=False, iterative=False, norm="L2")
def fgm_l2(model, x, y, eps, steps=1, step_size=None, loss="ce"):
    """The fast gradient method in L2 (Goodfellow et al., 2015; Miyato et al., 2016): one step of L2 length eps
    along the gradient, the one-step baseline every iterative L2 attack must beat."""
    return torch.clamp(x + eps * unit_l2(input_grad(model, x, y, loss)), 0.0, 1.0).detach()


@register_attack("pgd_l2", random_start=True, iterative=True, norm="L2")
def pgd_l2(model, x, y, eps, steps=10, step_size=None, loss="ce"):
    """PGD in L2 (Madry et al., 2018), exactly torchattacks' PGDL2: a random start at a normal direction scaled to
    radius uniform(0, 1) * eps, then steps of L2 length step_size along the normalized gradient, each projected
    back into the ball and the box. The same RNG draws in the same order, so a seeded run equals PGDL2's."""
    delta = torch.empty_like(x).normal_()
    r = torch.zeros_like(l2_norms(delta)).uniform_(0, 1)
    x_adv = torch.clamp(x + delta * (r / l2_norms(delta) * eps), 0.0, 1.0).detach()
    for _ in range(steps):
        x_adv = project_l2(x_adv + step_size * unit_l2(input_grad(model, x_adv, y, loss)), x, eps).detach()
    return x_adv


def check_attack_name(name: str) -> None:
    if name.startswith("ta:"):
        torchattacks_class(name[3:])
    elif ATTACKS.get(name).needs is not None:
        ATTACKS.get(name).needs()


def torchattacks_class(name: str):
    try:
        import torchattacks
    except ImportError:
        raise UsageError(f"attack 'ta:{name}' needs torchattacks: pip install 'robustbench_mix[torchattacks]' "
                         "(optional because torchattacks 3.5.1 pins requests~=2.25.1)") from None
    cls = getattr(torchattacks, name, None)
    if not (inspect.isclass(cls) and issubclass(cls, torchattacks.attack.Attack)):
        known = sorted(n for n, c in vars(torchattacks).items()
                       if inspect.isclass(c) and issubclass(c, torchattacks.attack.Attack) and n != "Attack")
        from .registry import unknown
        raise UsageError(unknown("torchattacks attack", name, known))
    return cls


def _torchattacks_fn(name: str):
    def run(model, x, y, eps, steps=10, step_size=None, loss="ce"):
        cls = torchattacks_class(name)
        params = inspect.signature(cls).parameters
        kw = {"eps": eps, "steps": steps, "alpha": step_size, "n_classes": None}
        if "n_classes" in params:
            with torch.no_grad():
                kw["n_classes"] = model(x[:1]).shape[1]
        kw = {k: v for k, v in kw.items() if k in params and v is not None}
        return cls(model, **kw)(x, y).detach()

    return run


def get_attack(name: str) -> Attack:
    """The registered attack, or a torchattacks one (``ta:NAME``) with its traits read from its signature."""
    if not name.startswith("ta:"):
        return ATTACKS.get(name)
    params = inspect.signature(torchattacks_class(name[3:])).parameters
    random_start = "random_start" in params and params["random_start"].default is True
    return Attack(_torchattacks_fn(name[3:]), random_start=random_start, iterative="steps" in params,
                  norm=attack_norm(name))


def attack_norm(attack: str) -> str:
    """The threat model of a results row's attack: "Linf" or "L2" for an attack (white-box, ``bb:`` black-box, the
    ``worst`` / ``worst_l2`` cases), "" for anything else (clean, checks, corruptions). A torchattacks attack is
    L2 when its class name says so (``ta:PGDL2``), else L-infinity."""
    name = attack.removeprefix("bb:")
    if name in WORST:
        return WORST[name]
    if name.startswith("ta:"):
        return "L2" if "L2" in name[3:] else "Linf"
    return ATTACKS.get(name).norm if name in ATTACKS else ""


def default_step_size(eps: float, steps: int) -> float:
    """2.5 * eps / steps lets an iterative attack walk from one side of the ball to the other."""
    return 2.5 * eps / steps


@contextlib.contextmanager
def frozen_eval(model: torch.nn.Module):
    """Eval mode (batch-norm statistics fixed, dropout off) and no parameter gradients, restored after."""
    modes = [m.training for m in model.modules()]
    grads = [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for m, t in zip(model.modules(), modes, strict=True):
            m.training = t
        for p, g in zip(model.parameters(), grads, strict=True):
            p.requires_grad_(g)


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


def autoattack_for(model, eps: float, num_classes: int, device, norm: str = "Linf"):
    """The standard AutoAttack, adapted where a class count below 10 makes it fail: APGD-T and FAB-T target the
    ``num_classes - 1`` other classes (the standard version asks for 9, more than exist), and with fewer than 4
    classes APGD-T is left out, since its targeted DLR loss needs 4 logits (pyautoattack's own class-count check
    says both, then raises an IndexError). With 10 or more classes it is the standard version unchanged."""
    kind = torch.device(device).type
    dtype = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else None
    adversary = autoattack_class()(_Float32Logits(model, kind, dtype), eps=eps, norm=norm, version="standard",
                                   device=device, seed=0)
    adversary.verbose = False
    targets = min(AUTOATTACK_TARGETS, num_classes - 1)
    adversary.apgd_targeted.n_target_classes = adversary.fab.n_target_classes = targets
    if num_classes < DLR_TARGETED_MIN_CLASSES:
        adversary.attacks_to_run = [a for a in adversary.attacks_to_run if a != "apgd-t"]
    return adversary


def _run_autoattack(model, x, y, eps, norm):
    if eps == 0:
        return x.clone()
    with torch.no_grad():
        num_classes = model(x[:1]).shape[1]
    adversary = autoattack_for(model, eps, num_classes, x.device, norm)
    with torch.autocast(x.device.type, enabled=False):
        x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=len(x))
    return x_adv.detach()


@register_attack("autoattack", random_start=False, iterative=True, needs=autoattack_class)
def autoattack(model, x, y, eps, steps=10, step_size=None, loss="ce"):
    """The standard L-infinity AutoAttack (Croce & Hein, ICML 2020: APGD-CE, APGD-T, FAB-T and Square with
    5,000 queries, each on the points the previous ones left) from pyautoattack. It sets its own steps and
    restarts (``steps``, ``step_size`` and ``--attack-restarts`` do not apply); about 100x a PGD-10 on robust
    points, far less on points the first attack breaks. Data with fewer than 10 classes: see
    :func:`autoattack_for`."""
    return _run_autoattack(model, x, y, eps, "Linf")


@register_attack("autoattack_l2", random_start=False, iterative=True, needs=autoattack_class, norm="L2")
def autoattack_l2(model, x, y, eps, steps=10, step_size=None, loss="ce"):
    """The standard AutoAttack in its L2 threat model (``eps`` an L2 radius, 0.5 on CIFAR-10 as RobustBench), as
    :func:`autoattack` otherwise."""
    return _run_autoattack(model, x, y, eps, "L2")

import copy

import pytest
import torch
import torch.nn.functional as F
from helpers import Threshold, linear_model

from robustbench_mix.attacks.base import ATTACKS, Attack, attack_loss, frozen_eval, get_attack
from robustbench_mix.attacks.linf import fgsm, ifgsm, pgd
from robustbench_mix.data.prepare import to_float
from robustbench_mix.evaluation.evaluators import attack_correct, input_grad_abs_mean, predict


def accuracies(model, data, attack, eps_list, steps=5, n=None, restarts=1):
    x, y = data.test_x[:n], data.test_y[:n]
    return [attack_correct(model, model, x, y, attack, e, steps=steps, step_size=None, restarts=restarts,
                           batch_size=64, seed=0)["top1"].float().mean().item() for e in eps_list]


@pytest.mark.parametrize("name", ["fgsm", "ifgsm", "pgd", "pgd_margin"])
@pytest.mark.parametrize("eps255", [1.0, 8.0, 64.0])
def test_attacks_stay_in_the_epsilon_ball_and_pixel_range(trained, name, eps255):
    model, data = trained
    x = to_float(data.test_x[:64])
    y = data.test_y[:64]
    eps = eps255 / 255
    with frozen_eval(model):
        adv = ATTACKS.get(name)(model, x, y, eps, steps=5, step_size=eps / 2)
    assert (adv - x).abs().max() <= eps + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    assert (adv != x).any()


@pytest.mark.parametrize("name", ["fgsm", "ifgsm", "pgd"])
def test_attacks_never_raise_accuracy_above_clean(trained, name):
    model, data = trained
    clean = (predict(model, data.test_x, 1000).argmax(1) == data.test_y).float().mean().item()
    accs = accuracies(model, data, name, [2.0, 8.0, 32.0])
    assert all(a <= clean + 1e-9 for a in accs)
    assert accs == sorted(accs, reverse=True)  # stronger with a larger epsilon
    assert accs[-1] < clean - 0.2  # and it really attacks


def test_iterative_attack_at_least_as_strong_as_fgsm_and_not_fgsm(trained):
    """PGD-10 is at least as strong as FGSM at 16/255, and it is not FGSM under another name: its examples differ
    from FGSM's and reach a higher mean cross-entropy (the loss both ascend)."""
    model, data = trained
    fgsm_acc, = accuracies(model, data, "fgsm", [16.0], steps=10)
    pgd_acc, = accuracies(model, data, "pgd", [16.0], steps=10)
    assert pgd_acc <= fgsm_acc
    x, y, eps = to_float(data.test_x), data.test_y, 16 / 255
    with frozen_eval(model):
        torch.manual_seed(0)
        one = fgsm(model, x, y, eps)
        many = pgd(model, x, y, eps, steps=10, step_size=2.5 * eps / 10)
        assert (one - many).abs().max() > 1e-3
        assert F.cross_entropy(model(many), y) > F.cross_entropy(model(one), y)


def test_restarts_keep_the_per_example_worst_case(trained):
    model, data = trained
    x, y = data.test_x, data.test_y

    def robust(restarts, seed):
        return attack_correct(model, model, x, y, "pgd", 24.0, steps=1, step_size=None, restarts=restarts,
                              batch_size=64, seed=seed)["top1"]

    # restart r draws its random start from seed + 1000 r: three restarts are robust exactly where all three
    # single attacks with those seeds are
    singles = [robust(1, s) for s in (0, 1000, 2000)]
    three = robust(3, 0)
    assert torch.equal(three, singles[0] & singles[1] & singles[2])
    assert not torch.equal(three, singles[0])  # the restarts found examples the first start missed


def test_fgsm_on_a_linear_model_equals_the_closed_form(rand_images):
    x, y = rand_images
    model = linear_model()
    w, b = model[1].weight, model[1].bias
    with torch.no_grad():
        p = (x.flatten(1) @ w.T + b).softmax(1)
        # d CE / d x = W^T (softmax - onehot) / N; the sign ignores the 1/N
        grad = (p - F.one_hot(y, 10).float()) @ w
    expected = torch.clamp(x + (8 / 255) * grad.sign().view_as(x), 0, 1)
    with frozen_eval(model):
        adv = fgsm(model, x, y, 8 / 255)
    torch.testing.assert_close(adv, expected, atol=1e-6, rtol=0)


def test_margin_loss_is_best_wrong_minus_true():
    logits = torch.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 1.0]])
    y = torch.tensor([0, 2])
    assert attack_loss(logits, y, "margin").item() == pytest.approx((2 - 3) + (5 - 1))


def test_attack_leaves_model_mode_parameters_and_bn_statistics_unchanged(trained):
    model, data = trained
    model.train()
    model.zero_grad(set_to_none=True)
    before = copy.deepcopy(model.state_dict())
    flags = [p.requires_grad for p in model.parameters()]
    accuracies(model, data, "pgd", [8.0], steps=3, n=50)
    assert model.training and all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == flags
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in model.parameters())
    model.eval()


def test_pgd_random_start_is_reproducible_per_seed(trained):
    model, data = trained
    x, y = to_float(data.test_x[:20]), data.test_y[:20]
    with frozen_eval(model):
        torch.manual_seed(3)
        a = pgd(model, x, y, 8 / 255, steps=2, step_size=2 / 255)
        torch.manual_seed(3)
        b = pgd(model, x, y, 8 / 255, steps=2, step_size=2 / 255)
    assert torch.equal(a, b)


# ----------------------------------------------------------------- agreement with torchattacks
torchattacks = pytest.importorskip("torchattacks")


@pytest.mark.parametrize("ours,theirs,kw", [
    ("fgsm", "FGSM", {}),
    ("pgd", "PGD", {"steps": 7, "alpha": 2 / 255, "random_start": True}),
    ("ifgsm", "PGD", {"steps": 7, "alpha": 2 / 255, "random_start": False}),
])
def test_attacks_match_torchattacks(trained, ours, theirs, kw):
    model, data = trained
    model.eval()
    x, y = to_float(data.test_x), data.test_y
    eps = 8 / 255
    torch.manual_seed(11)
    ref = getattr(torchattacks, theirs)(model, eps=eps, **kw)(x, y)
    torch.manual_seed(11)
    with frozen_eval(model):
        mine = get_attack(ours)(model, x, y, eps, steps=kw.get("steps", 1), step_size=kw.get("alpha"))
    torch.testing.assert_close(mine, ref, atol=1e-6, rtol=0)
    with torch.no_grad():
        assert torch.equal(model(mine).argmax(1), model(ref).argmax(1))


def test_torchattacks_adapter_runs_any_attack(trained):
    model, data = trained
    assert accuracies(model, data, "ta:FGSM", [8.0], n=30) == accuracies(model, data, "fgsm", [8.0], n=30)


BF16_TOLERANCE = 0.02  # a tiny CPU model's bf16 attacks within 2 points of fp32; the GPU check (protocol.md) uses 1


@pytest.mark.parametrize("name", ["fgsm", "pgd"])
def test_bf16_attacks_match_fp32_robust_accuracy_within_tolerance(trained, name):
    model, data = trained
    acc = {}
    for precision in ("fp32", "bf16"):
        res = attack_correct(model, model, data.test_x, data.test_y, name, 16.0, steps=5, step_size=None,
                             restarts=1, batch_size=150, seed=0, precision=precision)
        acc[precision] = res["top1"].float().mean().item()
        assert res["linf"].item() <= 16.0 + 1e-3 and res["box"].item() == 0  # still inside the ball, in [0, 1]
    assert abs(acc["bf16"] - acc["fp32"]) <= BF16_TOLERANCE, acc


# ---------------------------------------------------- definitions checked against planted bugs (experiments/mutation)


# ------------------------------------------------------------------ attacks where the gradient sign is known
def _two_class_linear(w: torch.Tensor) -> torch.nn.Module:
    """Logits (0, w . x): d CE / d x is p1 * w for label 0, so every step's sign is sign(w) (kills a sign flip,
    a dropped projection or box clamp: the result has a closed form)."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(w.numel(), 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.stack([torch.zeros_like(w), w]))
    return model


def _linear_case():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(48, generator=g)
    w[w.abs() < 0.1] = 0.5  # no zero weight: the sign is never 0
    x = torch.rand(8, 3, 4, 4, generator=g)
    x[:, 0] = 0.99  # near the box: the clamp to [0, 1] matters
    x[:, 1] = 0.01
    return _two_class_linear(w), x, torch.zeros(8, dtype=torch.long), w.view(1, 3, 4, 4).sign()


@pytest.mark.parametrize("attack", [ifgsm, pgd])
def test_linear_ifgsm_and_linear_pgd_end_on_the_ball_boundary_in_the_box(attack):
    """pgd_no_projection, pgd_no_box_clamp, pgd_descends: 5 steps of 0.5 eps walk 2.5 eps, more than the ball's
    diameter, so from any start the attack ends at clamp(x + eps * sign(w), 0, 1)."""
    model, x, y, s = _linear_case()
    eps = 8 / 255
    torch.manual_seed(0)
    with frozen_eval(model):
        adv = attack(model, x, y, eps, steps=5, step_size=0.5 * eps)
    torch.testing.assert_close(adv, torch.clamp(x + eps * s, 0, 1), atol=1e-6, rtol=0)


def test_pgd_random_start_is_uniform_over_the_whole_ball():
    """pgd_one_sided_start: with no step, PGD is its start, uniform on [-eps, eps] around x."""
    model, _, y, _ = _linear_case()
    x = torch.full((8, 3, 4, 4), 0.5)
    eps = 8 / 255
    torch.manual_seed(0)
    with frozen_eval(model):
        d = (pgd(model, x, y, eps, steps=0) - x) / eps
    assert d.abs().max() <= 1 + 1e-6
    assert abs(d.mean().item()) < 0.1 and d.min() < -0.9 and d.max() > 0.9
    assert abs(d.var().item() - 1 / 3) < 0.05  # the variance of U(-1, 1)


def test_input_grad_abs_mean_is_the_mean_cross_entropys_gradient():
    """ce_summed: the attacks' CE is the batch mean (torchattacks'), so the gradient of example i is
    W^T (p_i - onehot_i) / N, and input_grad_abs_mean is the mean of its absolute values."""
    g = torch.Generator().manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 4))
    x_u8 = torch.randint(0, 256, (10, 3, 2, 2), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 4, (10,), generator=g)
    x = x_u8.float() / 255
    with torch.no_grad():
        p = model(x).softmax(1)
        want = ((p - F.one_hot(y, 4).float()) @ model[1].weight / 10).abs().mean()
    assert input_grad_abs_mean(model, x_u8, y, 64).item() == pytest.approx(want.item(), rel=1e-5)


# ------------------------------------------------------------------------ epsilon, step size, restarts
def _spy(calls):
    def fn(model, x, y, eps, steps=1, step_size=None, loss="ce"):
        calls.append((eps, steps, step_size))
        return x.clone()
    return fn


@pytest.mark.parametrize("given,expected", [(None, 2.5 * (8 / 255) / 4), (2.0, 2 / 255)])
def test_step_size_and_epsilon_reach_the_attack_as_fractions(monkeypatch, given, expected):
    """eps_over_256, step_size_not_scaled, default_step_size: eps and step size are given in 255ths; the default
    step is Madry et al.'s 2.5 eps / steps."""
    calls = []
    monkeypatch.setitem(ATTACKS._items, "spy", Attack(_spy(calls), random_start=False, iterative=True))
    x = torch.zeros(4, 1, 1, 3, dtype=torch.uint8)
    attack_correct(Threshold(), Threshold(), x, torch.zeros(4, dtype=torch.long), "spy", 8.0, steps=4,
                   step_size=given, restarts=1, batch_size=4, seed=0)
    (eps, steps, ss), = calls
    assert eps == 8 / 255 and steps == 4 and ss == pytest.approx(expected, rel=1e-12)


def _coin(model, x, y, eps, steps=1, step_size=None, loss="ce"):
    """Breaks each image with probability 1/2, from torch's global stream (as PGD's random start draws)."""
    x_adv = x.clone()
    x_adv[torch.rand(len(x)) < 0.5, 0, 0, 0] += eps
    return x_adv


def test_restart_r_draws_from_seed_plus_1000_r_and_keeps_the_worst_case(monkeypatch):
    """restarts_same_seed, restarts_last_only: an image is robust only if it survives every restart, and restart
    r draws from seed + 1000 r (so three restarts differ and break more images than one)."""
    monkeypatch.setitem(ATTACKS._items, "coin", Attack(_coin, random_start=True, iterative=True))
    n = 64
    x = torch.zeros(n, 1, 1, 3, dtype=torch.uint8)
    y = torch.zeros(n, dtype=torch.long)
    expected = torch.ones(n, dtype=torch.bool)
    for r in range(3):
        torch.manual_seed(5 + 1000 * r)
        expected &= torch.rand(n) >= 0.5
    model = Threshold()
    got = attack_correct(model, model, x, y, "coin", 8.0, steps=1, step_size=None, restarts=3,
                         batch_size=n, seed=5)["top1"]
    assert torch.equal(got, expected) and 0 < expected.sum() < n // 4


def _push(amount):
    def fn(model, x, y, eps, steps=1, step_size=None, loss="ce"):
        return x + amount * eps
    return fn


def test_max_linf_is_in_255ths_and_box_violation_is_the_excess_over_the_box(monkeypatch):
    """linf_not_in_255, box_violation_always: an attack that moves by eps (inside the box) has max_linf_255 = 8 and
    no violation; one that moves 0.5 past 1 has a violation of 0.5."""
    y = torch.zeros(4, dtype=torch.long)
    monkeypatch.setitem(ATTACKS._items, "push", Attack(_push(1.0), random_start=False, iterative=True))
    res = attack_correct(Threshold(), Threshold(), torch.full((4, 1, 1, 3), 100, dtype=torch.uint8), y, "push", 8.0,
                         steps=1, step_size=None, restarts=1, batch_size=4, seed=0)
    assert res["linf"].item() == pytest.approx(8.0, abs=1e-4) and res["box"].item() == 0.0
    monkeypatch.setitem(ATTACKS._items, "push", Attack(_push(255 / 16), random_start=False, iterative=True))
    res = attack_correct(Threshold(), Threshold(), torch.full((4, 1, 1, 3), 255, dtype=torch.uint8), y, "push", 8.0,
                         steps=1, step_size=None, restarts=1, batch_size=4, seed=0)
    assert res["box"].item() == pytest.approx(0.5, abs=1e-6)

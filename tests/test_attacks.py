import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import linear_model

from robustbench_mix.attacks.base import ATTACKS, attack_loss, frozen_eval, get_attack
from robustbench_mix.attacks.linf import fgsm, pgd
from robustbench_mix.data.prepare import to_float
from robustbench_mix.evaluation.evaluators import attack_correct, predict


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


def test_iterative_attack_at_least_as_strong_as_fgsm(trained):
    model, data = trained
    fgsm_acc, = accuracies(model, data, "fgsm", [16.0], steps=10)
    pgd_acc, = accuracies(model, data, "pgd", [16.0], steps=10)
    assert pgd_acc <= fgsm_acc


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


BF16_TOLERANCE = 0.02  # the README's stated tolerance: bf16 attacks within 2 points of fp32 robust accuracy


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

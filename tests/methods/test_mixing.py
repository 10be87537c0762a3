from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from robustbench_mix.data.prepare import prepare
from robustbench_mix.experiment.experiment import RunOptions
from robustbench_mix.methods import (
    METHODS,
    cutmix_apply,
    cutmix_draw,
    erm_apply,
    mix,
    mixup_apply,
    mixup_draw,
    mixup_lambda,
)
from robustbench_mix.models.families import build
from robustbench_mix.training.train import fit


def test_mixup_inputs_and_loss_match_hand_computation():
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    y = torch.tensor([0, 1, 2])
    perm = torch.tensor([2, 0, 1])
    lam = 0.3
    mixed, loss_fn = mix(x, y, lam, perm)
    expected = torch.tensor([[0.3 * 1 + 0.7 * 3, 0.3 * 0 + 0.7 * 3],
                             [0.3 * 0 + 0.7 * 1, 0.3 * 2 + 0.7 * 0],
                             [0.3 * 3 + 0.7 * 0, 0.3 * 3 + 0.7 * 2]])
    torch.testing.assert_close(mixed, expected)
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.0], [0.3, 0.2, 0.1]])
    logp = logits.log_softmax(1)
    # y_a = (0, 1, 2), y_b = y[perm] = (2, 0, 1)
    ce_a = -(logp[0, 0] + logp[1, 1] + logp[2, 2]) / 3
    ce_b = -(logp[0, 2] + logp[1, 0] + logp[2, 1]) / 3
    torch.testing.assert_close(loss_fn(logits), lam * ce_a + (1 - lam) * ce_b)


def test_mixup_draws_one_lambda_per_batch_from_beta():
    rng = np.random.default_rng(0)
    lams = np.array([mixup_lambda(1.0, rng) for _ in range(4000)])
    assert 0.48 < lams.mean() < 0.52  # Beta(1, 1) is uniform: mean 1/2, variance 1/12
    assert abs(lams.var() - 1 / 12) < 0.005
    lams32 = np.array([mixup_lambda(32.0, rng) for _ in range(2000)])
    assert lams32.std() < 0.1  # large alpha concentrates lambda near 1/2
    assert mixup_lambda(0.0, rng) == 1.0


def test_mixup_batch_uses_same_lambda_for_inputs_and_loss():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 1, 4, 4, generator=g)
    y = torch.randint(0, 3, (8,), generator=g)
    rng = np.random.default_rng(5)
    lam = mixup_lambda(1.0, np.random.default_rng(5))
    gen = torch.Generator().manual_seed(1)
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(1))
    m = METHODS.get("mixup").bind(METHODS.get("mixup").option_values("mixup", ""), image_size=(4, 4))
    inputs, loss_fn = m.apply(x, y, 3, *m.draw(8, 1.0, rng, gen, x.device))
    torch.testing.assert_close(inputs, lam * x + (1 - lam) * x[perm])
    out = torch.randn(8, 3, generator=g)
    torch.testing.assert_close(loss_fn(out), lam * F.cross_entropy(out, y) + (1 - lam) * F.cross_entropy(out, y[perm]))


def _train(exp, data):
    p = prepare(data, exp.noise, 0.0, exp.seed, torch.device("cpu"))
    torch.manual_seed(exp.seed)
    mean, std = data.channel_stats()
    model = build(exp.model, in_shape=data.shape, num_classes=10, mean=mean, std=std)
    fit(exp, p, model, options=RunOptions(progress=False))
    return model


def test_mixup_with_alpha_zero_is_exactly_erm(small_digits, tiny_exp):
    from dataclasses import replace

    a = _train(replace(tiny_exp, method="erm", epochs=2), small_digits)
    b = _train(replace(tiny_exp, method="mixup", alpha=0.0, epochs=2), small_digits)
    c = _train(replace(tiny_exp, method="mixup", alpha=1.0, epochs=2), small_digits)
    for (k, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), k
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.state_dict().values(), c.state_dict().values(),
                                                         strict=True))


def test_mixup_without_mixing_draws_nothing_and_its_graph_form_is_exactly_erm():
    gen = torch.Generator().manual_seed(3)
    state = gen.get_state()
    lam, perm = mixup_draw(8, 0.0, np.random.default_rng(0), gen, torch.device("cpu"))
    assert lam == 1.0 and torch.equal(perm, torch.arange(8))
    assert torch.equal(gen.get_state(), state)  # the generator's stream stays ERM's
    g = torch.Generator().manual_seed(0)
    x, out = torch.rand(8, 1, 4, 4, generator=g), torch.randn(8, 3, generator=g)
    y = torch.randint(0, 3, (8,), generator=g)
    inputs, loss_fn = mixup_apply(x, y, 3, torch.tensor(1.0), perm)  # as a graphed step calls it
    erm_inputs, erm_loss = erm_apply(x, y, 3)
    assert torch.equal(inputs, erm_inputs) and torch.equal(loss_fn(out), erm_loss(out))
    # and a tensor lambda mixes as the float one does
    perm = torch.randperm(8, generator=g)
    (a, la), (b, lb) = mixup_apply(x, y, 3, 0.3, perm), mixup_apply(x, y, 3, torch.tensor(0.3), perm)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(la(out), lb(out))


# ------------------------------------------------------------------ manifold mixup, CutMix, label smoothing
def _cnn(seed=0):
    torch.manual_seed(seed)
    return build("cnn", in_shape=(1, 8, 8), num_classes=10, mean=(0.3,), std=(0.3,))


def test_manifold_mixup_at_the_input_equals_input_mixup():
    from robustbench_mix.methods import manifold_step

    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(8, 1, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g)
    perm = torch.randperm(8, generator=g)
    model = _cnn().eval()  # eval: batch-norm in its running statistics, so both forwards see the same
    inputs, loss_fn = mixup_apply(x, y, 10, 0.3, perm)
    torch.testing.assert_close(manifold_step(model, x, y, 10, 0.3, perm, 0, loss="ce"),
                               loss_fn(model(inputs)))


def test_manifold_mixup_at_a_hidden_layer_mixes_exactly_that_layers_output():
    from robustbench_mix.methods import manifold_step

    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(8, 1, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g)
    perm, lam = torch.randperm(8, generator=g), 0.7
    model = _cnn().eval()
    norm, body = model[0], model[1]
    for point, upto in ((1, 3), (2, 7)):  # after body[2] (first block) and after body[6] (second block, pooled)
        h = norm(x)
        for layer in body[:upto]:
            h = layer(h)
        h = lam * h + (1 - lam) * h[perm]
        for layer in body[upto:]:
            h = layer(h)
        expected = lam * F.cross_entropy(h, y) + (1 - lam) * F.cross_entropy(h, y[perm])
        torch.testing.assert_close(manifold_step(model, x, y, 10, lam, perm, point, loss="ce"), expected)
    assert not model[1][2]._forward_hooks  # the hook is gone after the step


def test_cutmix_pastes_the_box_of_the_partner_and_weights_labels_by_the_kept_fraction():
    from robustbench_mix.methods import cutmix_apply, cutmix_draw, cutmix_mask

    rng = np.random.default_rng(0)
    g = torch.Generator().manual_seed(0)
    pasted = 0
    for _ in range(200):
        *box, perm = cutmix_draw(6, 1.0, rng, g, torch.device("cpu"), prob=1.0, image_size=(12, 10))
        x = torch.rand(6, 3, 12, 10, generator=g)
        y = torch.randint(0, 4, (6,), generator=g)
        mask = cutmix_mask(12, 10, *box, torch.device("cpu"))
        mixed, loss_fn = cutmix_apply(x, y, 4, *box, perm)
        torch.testing.assert_close(mixed[:, :, mask], x[perm][:, :, mask])  # the partner inside the box
        torch.testing.assert_close(mixed[:, :, ~mask], x[:, :, ~mask])  # the example itself outside it
        kept = 1 - mask.float().mean()
        out = torch.randn(6, 4, generator=g)
        torch.testing.assert_close(loss_fn(out), kept * F.cross_entropy(out, y) + (1 - kept) * F.cross_entropy(
            out, y[perm]))
        # a graphed step passes the box as 0-dim float32 tensors: the same images and loss
        t_mixed, t_loss = cutmix_apply(x, y, 4, *(torch.tensor(v) for v in box), perm)
        assert torch.equal(t_mixed, mixed)
        torch.testing.assert_close(t_loss(out), loss_fn(out))
        pasted += mask.any().item()
    assert pasted > 150  # boxes were pasted, not only empty ones


def test_label_smoothing_targets_sum_to_one_and_its_loss_is_the_closed_form():
    from robustbench_mix.methods import smoothing_apply

    g = torch.Generator().manual_seed(0)
    out, y, eps, k = torch.randn(5, 4, generator=g), torch.tensor([0, 1, 2, 3, 0]), 0.1, 4
    target = torch.full((5, k), eps / k).scatter_add_(1, y[:, None], torch.full((5, 1), 1 - eps))
    torch.testing.assert_close(target.sum(1), torch.ones(5))
    closed = -(target * out.log_softmax(1)).sum(1).mean()
    _, loss_fn = smoothing_apply(None, y, k, eps)
    torch.testing.assert_close(loss_fn(out), closed)
    torch.testing.assert_close(loss_fn(out), F.cross_entropy(out, y, label_smoothing=eps))
    _, tensor_loss = smoothing_apply(None, y, k, torch.tensor(eps))  # as a graphed step passes it
    torch.testing.assert_close(tensor_loss(out), closed)


def test_every_method_trains_a_tiny_model_above_chance(small_digits, tiny_exp):
    from dataclasses import replace

    from robustbench_mix.evaluation.evaluators import predict

    erm = _train(replace(tiny_exp, epochs=4), small_digits)
    for name, alpha in (("manifold_mixup", 2.0), ("cutmix", 1.0), ("label_smoothing", 0.1)):
        model = _train(replace(tiny_exp, method=name, alpha=alpha, epochs=4), small_digits)
        acc = (predict(model, small_digits.test_x, 500).argmax(1) == small_digits.test_y).float().mean().item()
        assert acc > 0.5, (name, acc)  # chance is 0.1
        # and it trained as itself: from the same seed and data, ERM's weights are not its weights (a method
        # that fell back to ERM would pass the accuracy bar alone)
        assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), erm.state_dict().values(),
                                                           strict=True)), name


# ------------------------------------------------ CutMix against the reference (clovaai/CutMix-PyTorch train.py)
def reference_rand_bbox(size, lam, cx, cy):
    """The reference's rand_bbox, written out from its train.py with the centre given instead of drawn
    (``cx = np.random.randint(W)``, then ``cy = np.random.randint(H)``). Its W is size[2], the rows."""
    W, H = size[2], size[3]
    cut_rat = np.sqrt(1.0 - lam)
    cut_w, cut_h = int(W * cut_rat), int(H * cut_rat)
    bbx1, bby1 = np.clip(cx - cut_w // 2, 0, W), np.clip(cy - cut_h // 2, 0, H)
    bbx2, bby2 = np.clip(cx + cut_w // 2, 0, W), np.clip(cy + cut_h // 2, 0, H)
    return bbx1, bby1, bbx2, bby2  # pasted: input[:, :, bbx1:bbx2, bby1:bby2]


def reference_area_pmf(h, w, alpha):
    """Exact distribution of the reference's pasted (rows, columns) for lambda ~ Beta(alpha, alpha) and a
    uniform centre: P(cut >= c) = P(lambda <= 1 - (c/side)^2), then every centre. Square images only. (Beta(0.2,
    0.2) draws a lambda that rounds the cut to the whole side about once in 3000: that case is counted too.)"""
    from scipy import stats

    assert h == w
    cdf = stats.beta(alpha, alpha).cdf

    def at_least(c):  # P(cut >= c); a full side needs sqrt(1 - lambda) == 1.0 in floats, lambda below ~2^-53
        return 1.0 if c == 0 else cdf(1 - (c / h) ** 2) if c < h else cdf(2.0**-53) if c == h else 0.0

    pmf: dict[tuple[int, int], float] = {}
    for c in range(h + 1):
        p_c = at_least(c) - at_least(c + 1)
        lens = [min(x + c // 2, h) - max(x - c // 2, 0) for x in range(h)]
        for a in lens:
            for b in lens:
                pmf[(a, b)] = pmf.get((a, b), 0.0) + p_c / (h * w)
    return pmf


def _boxes(alpha, n_draws, size, prob=1.0, seed=0):
    from robustbench_mix.methods import cutmix_draw

    rng, g = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    return [cutmix_draw(2, alpha, rng, g, torch.device("cpu"), prob=prob, image_size=size)[:4] for _ in range(n_draws)]


def test_cutmix_box_is_the_references_for_fixed_draws():
    from robustbench_mix.methods import cutmix_box

    for h, w in ((8, 8), (32, 32), (7, 5)):
        for lam in (0.0, 0.03, 0.25, 0.3, 0.5, 0.51, 0.9, 0.97, 0.999):
            for cy in range(h):
                for cx in range(w):
                    bbx1, bby1, bbx2, bby2 = reference_rand_bbox((4, 3, h, w), lam, cy, cx)
                    assert cutmix_box(h, w, lam, cy, cx) == (bbx1, bbx2, bby1, bby2), (h, w, lam, cy, cx)


@pytest.mark.parametrize("size,expected", [(32, 0.29925), (8, 0.23257)])
def test_cutmix_pastes_the_references_mean_area(size, expected):
    # exact means of the reference at alpha 1 (reference_area_pmf); the box drawn before had 32.1% and 32.2%
    exact = sum(p * a * b for (a, b), p in reference_area_pmf(size, size, 1.0).items()) / size**2
    assert exact == pytest.approx(expected, abs=1e-5)
    areas = np.array([(y2 - y1) * (x2 - x1) / size**2 for y1, y2, x1, x2 in _boxes(1.0, 20000, (size, size))])
    se = areas.std() / np.sqrt(len(areas))
    assert abs(areas.mean() - exact) < 4 * se, (areas.mean(), exact, se)


@pytest.mark.parametrize("alpha", [0.2, 1.0, 8.0])
def test_cutmix_box_sides_follow_the_references_distribution(alpha):
    """The pasted (rows, columns) against their exact distribution under Beta(alpha, alpha): catches a wrong
    mixing distribution (Beta(1, 1), Beta(alpha, 1)) as well as a wrong box."""
    from scipy import stats

    pmf = reference_area_pmf(8, 8, alpha)
    seen: dict[tuple[int, int], int] = {}
    for y1, y2, x1, x2 in _boxes(alpha, 20000, (8, 8)):
        seen[(int(y2 - y1), int(x2 - x1))] = seen.get((int(y2 - y1), int(x2 - x1)), 0) + 1
    assert set(seen) <= set(pmf)  # no box the reference cannot paste
    cells = sorted(pmf, key=pmf.get)
    small = [k for k in cells if pmf[k] * 20000 < 5]  # pooled, as the chi-square test needs
    big = [k for k in cells if k not in small]
    obs = [seen.get(k, 0) for k in big] + [sum(seen.get(k, 0) for k in small)]
    exp = [pmf[k] * 20000 for k in big] + [sum(pmf[k] for k in small) * 20000]
    exp = np.array(exp) * sum(obs) / sum(exp)
    assert stats.chisquare(obs, exp).pvalue > 1e-3


def test_cutmix_is_applied_to_a_batch_with_probability_prob():
    from scipy import stats

    from robustbench_mix.methods import cutmix_draw

    for prob in (0.5, 0.2):
        # at alpha 100 lambda is about 1/2 and every batch where CutMix is on gets a box (sides 5 on 8x8)
        boxed = sum((y2 - y1) * (x2 - x1) > 0 for y1, y2, x1, x2 in _boxes(100.0, 4000, (8, 8), prob=prob))
        assert stats.binomtest(boxed, 4000, prob).pvalue > 1e-3, (prob, boxed)
    assert not any((y2 - y1) * (x2 - x1) for y1, y2, x1, x2 in _boxes(1.0, 300, (8, 8), prob=0.0))
    g = torch.Generator().manual_seed(3)
    state = g.get_state()
    for alpha, prob in ((1.0, 0.0), (0.0, 1.0)):  # off: an empty box, the identity, no torch draw (ERM's stream)
        *box, perm = cutmix_draw(8, alpha, np.random.default_rng(0), g, torch.device("cpu"), prob=prob,
                                 image_size=(8, 8))
        assert box == [0.0, 0.0, 0.0, 0.0] and torch.equal(perm, torch.arange(8))
    assert torch.equal(g.get_state(), state)


class GlobalNumpy:
    """numpy's global stream behind the Generator calls our draws make, so that they draw what timm's Mixup and
    the reference draw from it: ``np.random.rand()``, ``np.random.beta(a, a)``, ``np.random.randint(n)``."""

    def __init__(self):
        self.betas = []

    def random(self):
        return np.random.rand()

    def beta(self, a, b):
        self.betas.append(np.random.beta(a, b))
        return self.betas[-1]

    def integers(self, n):
        return np.random.randint(n)


def _soft_ce(out, target):
    return -(target * out.log_softmax(1)).sum(1).mean()


@pytest.mark.parametrize("alpha", [0.2, 1.0, 8.0])
def test_mixup_matches_timm_mixup(alpha):
    """timm.data.Mixup in batch mode mixes each image with the batch reversed; from the same numpy stream
    (timm first draws its probability check) it draws our lambda and mixes the same images and targets."""
    from timm.data import Mixup

    g = torch.Generator().manual_seed(0)
    x, y, out = torch.rand(8, 3, 6, 6, generator=g), torch.randint(0, 5, (8,), generator=g), torch.randn(8, 5)
    flip = torch.arange(7, -1, -1)
    timm_mixup = Mixup(mixup_alpha=alpha, cutmix_alpha=0.0, prob=1.0, mode="batch", label_smoothing=0.0,
                       num_classes=5)
    for seed in range(20):
        np.random.seed(seed)
        np.random.rand()  # timm's `np.random.rand() < prob`
        lam, _ = mixup_draw(8, alpha, GlobalNumpy(), torch.Generator(), torch.device("cpu"))
        np.random.seed(seed)
        x_timm, target = timm_mixup(x.clone(), y)
        mixed, loss_fn = mixup_apply(x, y, 5, lam, flip)
        torch.testing.assert_close(mixed, x_timm)
        torch.testing.assert_close(loss_fn(out), _soft_ce(out, target))


@pytest.mark.parametrize("size", [(8, 8), (32, 32)])
def test_cutmix_matches_timm_where_their_boxes_coincide(size):
    """timm.data.Mixup's CutMix (batch mode, correct_lam) makes the reference's draws in the reference's order
    (the probability check, lambda, the row, the column), so from the same numpy stream it is applied to the
    same batches, and with an even cut side it pastes the same box, the same images and the same lambda-adjusted
    targets. It differs with an odd side: timm pastes the full int(side * sqrt(1 - lam)) rows, the reference
    (and we) 2 * (that // 2), one fewer: timm's box is ours plus at most one row and one column at the far edge."""
    from timm.data import Mixup

    h, w = size
    g = torch.Generator().manual_seed(0)
    x, y, out = torch.rand(8, 2, h, w, generator=g), torch.randint(0, 5, (8,), generator=g), torch.randn(8, 5)
    flip = torch.arange(7, -1, -1)
    timm_cutmix = Mixup(mixup_alpha=0.0, cutmix_alpha=1.0, prob=0.5, mode="batch", label_smoothing=0.0,
                        num_classes=5)
    same = odd = off = 0
    for seed in range(300):
        np.random.seed(seed)
        rng = GlobalNumpy()
        *box, _ = cutmix_draw(8, 1.0, rng, torch.Generator(), torch.device("cpu"), prob=0.5, image_size=size)
        np.random.seed(seed)
        x_timm, target = timm_cutmix(x.clone(), y)
        mixed, loss_fn = cutmix_apply(x, y, 5, *box, flip)
        if not rng.betas:  # CutMix off for this batch: both leave it alone
            assert torch.equal(x_timm, x) and torch.equal(target, F.one_hot(y, 5).float())
            off += 1
            continue
        cut_h, cut_w = (int(s * np.sqrt(1 - rng.betas[0])) for s in size)
        if cut_h % 2 == 0 and cut_w % 2 == 0:
            assert torch.equal(x_timm, mixed)
            torch.testing.assert_close(loss_fn(out), _soft_ce(out, target))
            same += 1
        else:
            ours, theirs = (x != mixed).any(0).any(0), (x != x_timm).any(0).any(0)
            assert (theirs | ours).equal(theirs)  # ours lies inside timm's
            rows, cols = theirs.any(1).sum() - ours.any(1).sum(), theirs.any(0).sum() - ours.any(0).sum()
            assert rows in (0, 1) and cols in (0, 1) and (rows <= cut_h % 2) and (cols <= cut_w % 2)
            odd += 1
    assert min(same, odd, off) > 30  # every case was seen


# --------------------------------------------------------- manifold mixup's reference loss (Verma et al.'s code)
def test_manifold_mixup_bce_is_the_reference_training_loss():
    """``bce_loss(softmax(output), reweighted_target)`` of vikasverma1077/manifold_mixup (supervised/main.py), the
    target made as their mixup_process does, against ours; value and gradient."""
    from robustbench_mix.methods import manifold_step, mixed_bce

    g = torch.Generator().manual_seed(0)
    out = torch.randn(8, 10, generator=g, requires_grad=True)
    y, perm, lam = torch.randint(0, 10, (8,), generator=g), torch.randperm(8, generator=g), 0.35
    one_hot = torch.zeros(8, 10).scatter_(1, y[:, None], 1.0)  # their to_one_hot
    target = one_hot * lam + one_hot[perm] * (1 - lam)  # their mixup_process
    ref = torch.nn.BCELoss()(torch.nn.Softmax(dim=1)(out), target)
    ours = mixed_bce(out, y, y[perm], lam, 10)
    torch.testing.assert_close(ours, ref)
    (g_ref,), (g_ours,) = torch.autograd.grad(ref, out), torch.autograd.grad(ours, out)
    torch.testing.assert_close(g_ours, g_ref)
    # the step uses it with loss=bce, and the mixed CE by default
    x = torch.rand(8, 1, 8, 8, generator=g)
    model = _cnn().eval()
    logits = model(lam * x + (1 - lam) * x[perm])
    torch.testing.assert_close(manifold_step(model, x, y, 10, lam, perm, 0, loss="bce"),
                               mixed_bce(logits, y, y[perm], lam, 10))
    method = METHODS.get("manifold_mixup")
    assert method.option_values("manifold_mixup", "") == {"loss": "ce"}
    torch.testing.assert_close(method.bind({"loss": "bce"}).loss(model, x, y, 10, lam, perm, 0),
                               mixed_bce(logits, y, y[perm], lam, 10))


# ---------------------------------------------------------------------- the mixing distributions (numbers)
@pytest.mark.parametrize("alpha", [0.2, 8.0])
@pytest.mark.parametrize("method", ["mixup", "manifold_mixup"])
def test_lambda_draws_follow_beta_alpha_alpha(method, alpha):
    """Each method's own draw, 3000 batches at a fixed seed, against Beta(alpha, alpha) (Kolmogorov-Smirnov).
    The same number of Beta(1, 1) or Beta(alpha, 1) draws is rejected, so the test has the power it needs."""
    from scipy import stats

    draw = METHODS.get(method).draw
    rng, g = np.random.default_rng(1), torch.Generator().manual_seed(1)
    lams = np.array([draw(4, alpha, rng, g, torch.device("cpu"))[0] for _ in range(3000)])
    target = stats.beta(alpha, alpha).cdf
    assert stats.kstest(lams, target).pvalue > 1e-3
    other = np.random.default_rng(2)
    for wrong in (other.beta(1, 1, 3000), other.beta(alpha, 1, 3000)):
        assert stats.kstest(wrong, target).pvalue < 1e-6


class Probe(torch.nn.Module):
    """Passes its input on and keeps a copy, to see where a batch was mixed."""

    def forward(self, h):
        self.seen = h.detach().clone()
        return h


def test_manifold_mixup_mixes_each_of_the_three_points_a_third_of_the_time():
    """Verma et al. draw the mixing layer with ``random.randint(0, 2)``: the input, after the first and after
    the second stage equally often. Observed on the step itself (where the batch first differs from the
    unmixed one), 600 steps at a fixed seed, against uniform (chi-square)."""
    from scipy import stats

    from robustbench_mix.experiment.experiment import Experiment
    from robustbench_mix.methods import method_for

    model = torch.nn.Sequential(Probe(), Probe(), Probe(), torch.nn.Flatten(), torch.nn.Linear(12, 3))
    model.mix_points = (None, "0", "1")  # mixing the output of probe k shows in the input of probe k + 1
    method = method_for(Experiment(method="manifold_mixup", alpha=2.0), (2, 2))
    rng, g = np.random.default_rng(0), torch.Generator().manual_seed(0)
    x, y = torch.rand(8, 3, 2, 2, generator=g), torch.randint(0, 3, (8,), generator=g)
    counts = [0, 0, 0]
    for _ in range(600):
        method.loss(model, x, y, 3, *method.draw(8, 2.0, rng, g, torch.device("cpu")))
        mixed_at = [not torch.equal(model[k].seen, x) for k in range(3)]
        counts[mixed_at.index(True)] += 1  # probes after the mixing point see it too
    assert sum(counts) == 600
    assert stats.chisquare(counts).pvalue > 1e-3, counts
    assert min(counts) > 150  # and no point is skipped (a third is 200)


# ------------------------------------------------------------- each method its own parameter (--methods)
def test_every_option_reaches_a_function_and_its_default_is_valid():
    import inspect

    for name in METHODS:
        m = METHODS.get(name)
        assert not m.uses_alpha or m.check(m.default) is None, name
        for o in m.options:
            takers = [fn for fn in (m.draw, m.apply, m.step) if fn is not None
                      and o.name in inspect.signature(fn).parameters
                      and inspect.signature(fn).parameters[o.name].kind is inspect.Parameter.KEYWORD_ONLY]
            assert takers, (name, o.name)  # Method.bind hands it to them; keyword-only, so never forgotten
            assert o.read(name, str(o.default)) == o.default


def test_methods_without_values_take_their_own_defaults_the_presets_values():
    from robustbench_mix.experiment.grids import Variant, grid_variants
    from robustbench_mix.experiment.presets import ALL_METHODS

    got = grid_variants("erm,mixup,manifold_mixup,cutmix,label_smoothing", None, None, ())
    assert got == ALL_METHODS == (Variant("erm"), Variant("mixup", 1.0), Variant("manifold_mixup", 2.0),
                                  Variant("cutmix", 1.0), Variant("label_smoothing", 0.1))
    got = grid_variants("mixup:8,label_smoothing:0.05,cutmix:prob=0.25,cutmix:2:prob=1,manifold_mixup:loss=bce",
                        None, "0,0.5", ())
    assert got == tuple(Variant(m, a, d, o) for m, a, o in [
        ("mixup", 8.0, ""), ("label_smoothing", 0.05, ""), ("cutmix", 1.0, "prob=0.25"), ("cutmix", 2.0, "prob=1"),
        ("manifold_mixup", 2.0, "loss=bce")] for d in (0.0, 0.5))


def test_alpha_sets_only_the_beta_mixing_methods_listed_without_a_value():
    from robustbench_mix.core.errors import UsageError
    from robustbench_mix.experiment.grids import Variant, grid_variants
    from robustbench_mix.experiment.presets import PRESETS

    got = grid_variants("erm,mixup,cutmix:1,label_smoothing", "1,8", None, ())
    assert got == (Variant("erm"), Variant("mixup", 1.0), Variant("mixup", 8.0), Variant("cutmix", 1.0),
                   Variant("label_smoothing", 0.1))  # not epsilon 1 and 8: that was the bug
    # a preset's methods: --alpha replaces the mixing methods' values, label smoothing keeps its epsilon
    got = grid_variants(None, "4", None, PRESETS["methods-cpu"].variants)
    assert {(v.method, v.alpha) for v in got} == {("erm", 0.0), ("mixup", 4.0), ("manifold_mixup", 4.0),
                                                  ("cutmix", 4.0), ("label_smoothing", 0.1)}
    for methods in ("label_smoothing", "mixup:8,erm"):
        with pytest.raises(UsageError, match=r"--alpha sets the Beta\(α, α\) parameter of .*none is listed so.*"
                                             "--methods mixup:8,label_smoothing:0.1"):
            grid_variants(methods, "0.2", None, ())


@pytest.mark.parametrize("item,message", [
    ("label_smoothing:1", r"method label_smoothing: label smoothing epsilon 1 is outside \[0, 1\)"),
    ("mixup:-1", r"method mixup: alpha -1.0 is negative; the Beta\(alpha, alpha\) mixing needs alpha >= 0"),
    ("cutmix:1:prob=1.5", r"method cutmix: CutMix probability prob=1.5 is outside \[0, 1\]"),
    ("cutmix:1:porb=0.5", "method cutmix: unknown option 'porb'; known: prob .did you mean 'prob'"),
    ("manifold_mixup:2:loss=mse", "method manifold_mixup: loss 'mse' is not one of ce, bce"),
    ("mixup:1:prob=0.5", "method mixup takes no options"),
    ("mixup:one", "'one' is not a number .method mixup's α"),
    ("erm:1", "method erm takes no parameter"),
    ("cutmix:1:0.5", "method cutmix: '0.5' is not NAME=VALUE; its options: prob"),
    ("mixpu:1", "unknown method 'mixpu'.*did you mean 'mixup'"),
    # not finite: named with the allowed range, NaN never "negative" (inf and 1e400 passed, NaN read as negative)
    ("mixup:inf", r"method mixup: alpha inf is not a finite number; it must be a finite number in \[0, 1000000\]"),
    ("mixup:1e400", r"method mixup: alpha inf is not a finite number"),
    ("mixup:nan", r"method mixup: alpha nan is not a finite number; it must be a finite number in \[0, "),
    ("mixup:1e308", r"method mixup: alpha 1e\+308 is above 1000000"),
    ("label_smoothing:nan", r"label smoothing epsilon nan is not a finite number; it must be .* in \[0, 1\)"),
    ("cutmix:1:prob=inf", r"CutMix probability prob inf is not a finite number; it must be .* in \[0, 1\]"),
    ("trades:inf", r"method trades: beta inf is not a finite number"),
    ("pgd_at:steps=inf", r"steps inf is not a finite number; it must be a whole number in \[1, 10000\]"),
])
def test_a_bad_method_value_exits_2_naming_method_value_and_range_before_training(tmp_path, capsys, monkeypatch,
                                                                                  item, message):
    import re

    import robustbench_mix.execution.executors as executors
    from robustbench_mix.cli.suite import main

    monkeypatch.setattr(executors, "run_experiment", lambda *a, **k: pytest.fail("training started"))
    assert main(["--out", str(tmp_path), "--no-progress", "--methods", f"erm,{item}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and re.search(message, err), err


def test_all_five_methods_run_from_the_command_line_each_at_its_own_parameter(tmp_path, capsys):
    from robustbench_mix.cli.suite import main

    # --alpha 1 once reached label smoothing as epsilon 1 and failed; now it sets the mixing methods' alpha
    for extra, manifold in (([], 2), (["--alpha", "1"], 1)):
        assert main(["--out", str(tmp_path), "--dry-run", "--noise", "0",
                     "--methods", "erm,mixup,manifold_mixup,cutmix,label_smoothing", *extra]) == 0
        out = capsys.readouterr().out
        for line in ("erm alpha=0 dropout", "mixup alpha=1 dropout", f"manifold_mixup alpha={manifold} loss=ce dropout",
                     "cutmix alpha=1 prob=0.5 dropout", "label_smoothing alpha=0.1 dropout"):
            assert line in out, (line, out)


def test_help_documents_each_methods_parameter_and_options():
    from robustbench_mix.cli.suite_args import build_parser

    text = build_parser().format_help()
    assert "never label smoothing's ε" in " ".join(text.split())  # --alpha's help, wrapped
    for part in ("cutmix[:α][:prob=P]  [α=1, prob=0.5]", "manifold_mixup[:α][:loss=ce|bce]  [α=2, loss=ce]",
                 "label_smoothing[:ε]  [ε=0.1]", "mixup[:α]  [α=1]"):
        assert part in text, part


# ------------------------------------------------------------------------------------------------ run ids
def test_published_run_ids_stay_and_cutmix_runs_get_new_ones():
    """Ids of results/reference/*/runs.csv: ERM, mixup, mixup + dropout, label smoothing and manifold mixup
    compute as before and keep theirs; CutMix (new box, probability 0.5) computes otherwise and must not."""
    from robustbench_mix.experiment.presets import PRESETS

    ids = {r.run_id: r for name in ("quick", "table2-cpu", "methods-cpu") for r in PRESETS[name].expand()}
    kept = {"bcb9551e18": ("quick", "erm", 0.0), "e1212d97a1": ("quick", "mixup", 0.4),
            "7e6632476a": ("table2-cpu", "mixup", 0.5), "f2592c818b": ("methods-cpu", "label_smoothing", 0.4),
            "5d8bf5a27a": ("methods-cpu", "manifold_mixup", 0.0)}
    for rid, (preset, method, noise) in kept.items():
        assert rid in ids and (ids[rid].preset, ids[rid].method, ids[rid].noise) == (preset, method, noise)
    manifold = ids["5d8bf5a27a"]
    assert replace(manifold, method_options="loss=ce").run_id == "5d8bf5a27a"
    assert replace(manifold, method_options="loss=bce").run_id != "5d8bf5a27a"
    cutmix = [r for r in ids.values() if r.method == "cutmix"]
    assert len(cutmix) == 6 and all(r.method_options == "prob=0.5" for r in cutmix)
    assert "6f49eea7ec" not in ids  # the published CutMix run (noise 0, seed 0): another computation now
    assert len({replace(cutmix[0], method_options=o).run_id for o in ("", "prob=0.5", "prob=0.25")}) == 2


def test_a_config_recorded_before_options_reads_as_what_it_computed():
    import json

    from robustbench_mix.core.errors import UsageError
    from robustbench_mix.experiment.experiment import Experiment
    from robustbench_mix.experiment.validation import validate
    from robustbench_mix.methods import LEGACY, method_for, run_label

    def old(**kw):  # as runs.csv's config column held it before method_options existed
        d = Experiment(**kw).to_dict()
        del d["method_options"]
        return Experiment.from_json(json.dumps(d))

    assert old(method="mixup", alpha=1.0) == Experiment(method="mixup", alpha=1.0)
    assert old(method="manifold_mixup", alpha=2.0).method_options == "loss=ce"
    legacy = old(method="cutmix", alpha=1.0)
    assert legacy.method_options == LEGACY and legacy != Experiment(method="cutmix", alpha=1.0)
    assert legacy.run_id != Experiment(method="cutmix", alpha=1.0).run_id  # never pooled with new CutMix runs
    validate(legacy)  # its model may still be evaluated (the checkpoint command) ...
    with pytest.raises(UsageError, match="earlier version of the suite.*cannot run again"):
        method_for(legacy, (8, 8))  # ... but not trained
    assert run_label("cutmix", 1.0, 0.0, LEGACY) == "CutMix (α=1, earlier version)"
    assert run_label("cutmix", 1.0, 0.0, "prob=0.5") == "CutMix (α=1)"
    assert run_label("cutmix", 1.0, 0.3, "prob=0.25") == "CutMix (α=1, prob=0.25) + dropout (p=0.3)"
    assert run_label("manifold_mixup", 2.0, 0.0, "loss=bce") == "manifold mixup (α=2, loss=bce)"
    with pytest.raises(UsageError, match="method cutmix: CutMix probability prob=2 is outside"):
        validate(Experiment(method="cutmix", alpha=1.0, method_options="prob=2"))


# ---------------------------------------------------- definitions checked against planted bugs (experiments/mutation)


# ------------------------------------------------------------------------------------------------- CutMix
def test_cutmix_centre_row_and_column_range_over_the_height_and_the_width():
    """cutmix_centre_axes_swapped: on a 4 x 40 image the box centre's column ranges over all 40 columns, so boxes
    reach the right half (with the row drawn over 40 and the column over 4 they never leave the left 24)."""
    from robustbench_mix.methods import cutmix_draw

    rng = np.random.default_rng(0)
    g = torch.Generator().manual_seed(0)
    boxes = [cutmix_draw(4, 1.0, rng, g, torch.device("cpu"), prob=1.0, image_size=(4, 40))[:4] for _ in range(300)]
    x1 = np.array([b[2] for b in boxes])
    y2 = np.array([b[1] for b in boxes])
    assert x1.max() >= 30 and (x1 >= 20).mean() > 0.1
    assert y2.max() <= 4

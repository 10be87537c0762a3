import numpy as np
import torch
import torch.nn.functional as F

from robustbench_mix.config import RunOptions
from robustbench_mix.data import prepare
from robustbench_mix.methods import METHODS, erm_apply, mix, mixup_apply, mixup_draw, mixup_lambda
from robustbench_mix.models import build
from robustbench_mix.train import fit


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
    inputs, loss_fn = METHODS.get("mixup")(x, y, 1.0, 3, rng, gen)
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

    from robustbench_mix.evaluators import predict

    for name, alpha in (("manifold_mixup", 2.0), ("cutmix", 1.0), ("label_smoothing", 0.1)):
        model = _train(replace(tiny_exp, method=name, alpha=alpha, epochs=4), small_digits)
        acc = (predict(model, small_digits.test_x, 500).argmax(1) == small_digits.test_y).float().mean().item()
        assert acc > 0.5, (name, acc)  # chance is 0.1

"""The CUDA-only training paths (CUDA graphs, bf16 autocast, channels_last); skipped without a GPU, except the
check that ``cuda_graphs`` leaves CPU training untouched."""

import copy
from dataclasses import replace

import pytest
import torch

from robustbench_mix.data import prepare
from robustbench_mix.evaluate import attack_correct, predict
from robustbench_mix.runner import new_model, run_experiment
from robustbench_mix.train import fit

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _train(exp, data, device, **kw):
    p = prepare(data, exp.noise, exp.val_fraction, exp.seed, device)
    model = new_model(exp, data, device)
    curves = fit(exp, p, model, progress=False, **kw)
    return model, p, [r["value"] for r in curves if r["metric"] == "loss"]


def test_cuda_graphs_flag_is_a_no_op_on_the_cpu(small_digits, tiny_exp):
    exp = replace(tiny_exp, method="mixup", alpha=1.0, epochs=2)
    m1, _, l1 = _train(exp, small_digits, torch.device("cpu"))
    m2, _, l2 = _train(exp, small_digits, torch.device("cpu"), cuda_graphs=True)
    assert l1 == l2
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True))


@cuda
@pytest.mark.parametrize("method,dropout", [("erm", 0.0), ("mixup", 0.3)])
def test_cuda_graphs_train_like_eager(small_digits, tiny_exp, method, dropout):
    torch.backends.cudnn.benchmark = False
    exp = replace(tiny_exp, method=method, alpha=1.0 if method == "mixup" else 0.0, dropout=dropout, epochs=3,
                  device="cuda")
    dev = torch.device("cuda")
    eager, p, l_eager = _train(exp, small_digits, dev)
    graphed, _, l_graph = _train(exp, small_digits, dev, cuda_graphs=True)
    assert "forward" not in graphed.__dict__  # the eager forward is back after training
    if dropout == 0:  # same kernels on the same data: the same training, up to bf16 reduction order
        assert l_graph == pytest.approx(l_eager, rel=2e-2)
        acc = [(predict(m, p.test_x, 1000).argmax(1) == p.test_y).float().mean().item() for m in (eager, graphed)]
        assert abs(acc[0] - acc[1]) < 0.05
        for (name, a), b in zip(eager.named_buffers(), graphed.buffers(), strict=True):
            # the capture's own forward passes left no trace in the batch-norm statistics
            assert torch.allclose(a.float(), b.float(), rtol=5e-2, atol=1e-2), name
    assert l_graph[-1] < l_graph[0]  # it learns (with dropout the masks differ from eager's)
    counts = [b.item() for n, b in graphed.named_buffers() if n.endswith("num_batches_tracked")]
    assert counts and set(counts) == {3 * (400 // exp.batch_size)}  # one update per training step, no more


@cuda
def test_cuda_graph_run_resumes_and_attacks_stay_in_the_ball(small_digits, tiny_exp, tmp_path):
    exp = replace(tiny_exp, epochs=3, device="cuda")

    class Stop(Exception):
        pass

    def stop(epoch, model):
        if epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        run_experiment(exp, small_digits, run_dir=tmp_path, progress=False, hooks=(stop,), cuda_graphs=True)
    rows = run_experiment(exp, small_digits, run_dir=tmp_path, progress=False, cuda_graphs=True)
    assert [r["epoch"] for r in rows if r["metric"] == "loss"] == [1, 2, 3]
    linf = [r["value"] for r in rows if r["metric"] == "max_linf_255" and r["eps"] > 0]
    assert linf and max(linf) <= 64 + 1e-3  # the largest epsilon is the 64/255 check


@cuda
def test_bf16_attacks_match_fp32_on_the_gpu(trained):
    model, p = trained
    model = copy.deepcopy(model).cuda().to(memory_format=torch.channels_last)  # the fixture is shared: copy
    x, y = p.test_x.cuda(), p.test_y.cuda()
    acc = {prec: attack_correct(model, model, x, y, "pgd", 8.0, steps=5, step_size=None, restarts=1,
                                batch_size=1000, seed=0, precision=prec)["top1"].float().mean().item()
           for prec in ("fp32", "bf16")}
    assert abs(acc["fp32"] - acc["bf16"]) <= 0.03

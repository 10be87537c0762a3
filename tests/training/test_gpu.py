"""The CUDA-only training paths (CUDA graphs, bf16 autocast, channels_last); skipped without a GPU, except the
checks that ``cuda_graphs`` leaves CPU training untouched and of the graphed step's plumbing (its buffers, the
tensor learning rate, fit's whole step path, torch.compile inside it), run on the CPU with the CUDA calls
stood in for."""

import copy
import shutil
from dataclasses import replace

import pytest
import torch

from robustbench_mix.data.prepare import prepare
from robustbench_mix.evaluation.evaluators import attack_correct, predict
from robustbench_mix.execution.runner import new_model, run_experiment
from robustbench_mix.experiment.experiment import RunOptions
from robustbench_mix.training.speed import GraphedStep, tensor_lr
from robustbench_mix.training.train import fit, lr_factor, make_optimizer

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _train(exp, data, device, **kw):
    p = prepare(data, exp.noise, exp.val_fraction, exp.seed, device)
    model = new_model(exp, data, device)
    curves = fit(exp, p, model, options=RunOptions(progress=False, **kw))
    return model, p, [r["value"] for r in curves if r["metric"] == "loss"]


@pytest.mark.parametrize("mode", [True, "step"])
def test_cuda_graphs_flag_is_a_no_op_on_the_cpu(small_digits, tiny_exp, mode):
    exp = replace(tiny_exp, method="mixup", alpha=1.0, epochs=2)
    m1, _, l1 = _train(exp, small_digits, torch.device("cpu"))
    m2, _, l2 = _train(exp, small_digits, torch.device("cpu"), cuda_graphs=mode)
    assert l1 == l2
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True))


class CPUGraphedStep(GraphedStep):
    """GraphedStep with its CUDA calls stood in for: the capture records nothing and a replay runs the step
    on the input buffers, the tensors a real graph reads. What a real graph would freeze (a Python value read
    at capture) is not caught here, as the step runs again: the CUDA tests are for that."""

    def _device(self):
        return torch.device("cpu")

    def _eager(self, *args):
        return self.step(*args)

    def _capture(self):
        out = torch.zeros(())
        step, inputs = self.step, self.inputs

        class Graph:
            def replay(self):
                out.copy_(step(*inputs))

        return Graph(), out


def test_graphed_step_feeds_each_calls_draws_through_its_buffers():
    seen = []

    def step(idx, draws):
        lam, perm = draws
        seen.append(lam)
        return (idx.float() * lam).sum() + perm[0] * 10

    g = torch.Generator().manual_seed(0)
    calls = [(torch.randint(0, 100, (4,), generator=g), (0.1 * k + 0.05, torch.randperm(4, generator=g)))
             for k in range(6)]
    graphed = CPUGraphedStep(step, warmup=2)
    outs = [graphed(*c).item() for c in calls]
    assert outs == pytest.approx([step(*c).item() for c in calls], rel=1e-6)
    # warm-up calls get the floats; replays a 0-dim float32 buffer (a Python float would be frozen in a graph)
    assert [type(v) for v in seen[:2]] == [float, float]
    assert all(torch.is_tensor(v) and v.dim() == 0 and v.dtype == torch.float32 for v in seen[2:6])
    assert graphed.inputs[1][0] is seen[3] is seen[5]  # one buffer, refilled in place
    with pytest.raises(RuntimeError, match=r"shape \(5,\) for a buffer of shape \(4,\)"):
        graphed(torch.arange(5), (0.5, torch.arange(4)))


def test_a_failed_capture_fails_the_run_with_the_way_around_it():
    from robustbench_mix.core.errors import RunFailed

    class Uncapturable(CPUGraphedStep):
        def _capture(self):
            raise RuntimeError("operation not permitted when stream is capturing")

    step = Uncapturable(lambda x: x.sum(), warmup=1)
    assert step(torch.ones(2)).item() == 2.0  # the warm-up call runs eagerly
    with pytest.raises(RunFailed, match="not permitted when stream is capturing.*rerun without --cuda-graphs step"):
        step(torch.ones(2))


def test_tensor_lr_follows_the_schedule_in_place_and_trains_as_a_float_lr(tiny_exp):
    exp = replace(tiny_exp, lr=0.1, momentum=0.9, weight_decay=5e-4)
    models = [torch.nn.Linear(3, 2) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    opts = [make_optimizer(m, exp) for m in models]
    scheds = [torch.optim.lr_scheduler.LambdaLR(o, lr_factor("step", 8)) for o in opts]
    tensor_lr(opts[1], torch.device("cpu"))
    lr = opts[1].param_groups[0]["lr"]
    x, y = torch.randn(16, 3, generator=torch.Generator().manual_seed(0)), torch.arange(16) % 2
    for _ in range(7):
        for m, o, s in zip(models, opts, scheds, strict=True):
            o.zero_grad()
            torch.nn.functional.cross_entropy(m(x), y).backward()
            o.step()
            s.step()
    assert opts[1].param_groups[0]["lr"] is lr  # the address a captured optimizer step reads
    assert lr.item() == pytest.approx(0.1 * 0.01) == opts[0].param_groups[0]["lr"]  # past 75%: lr / 100
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("method,alpha", [("cutmix", 1.0), ("label_smoothing", 0.1)])
def test_the_graphable_methods_train_through_the_graphed_step_as_eager(monkeypatch, small_digits, tiny_exp, method,
                                                                       alpha):
    """CutMix's box and label smoothing's epsilon are tensor code: through the CPU stand-in of the graphed step
    (their draws in float32 buffers) they train as eager."""
    import robustbench_mix.training.speed as speed

    exp = replace(tiny_exp, method=method, alpha=alpha, epochs=2)
    cpu = torch.device("cpu")
    eager, _, l_eager = _train(exp, small_digits, cpu)
    replays = []

    class Counted(CPUGraphedStep):
        def _capture(self):
            graph, out = super()._capture()
            replays.append(self.inputs)  # the draws reach the step as buffers: floats became 0-dim tensors
            return graph, out

    monkeypatch.setattr(speed, "graphs_supported", lambda device: True)
    monkeypatch.setattr(speed, "GraphedStep", Counted)
    graphed, _, l_graph = _train(exp, small_digits, cpu, cuda_graphs="step")
    assert len(replays) == 1 and all(torch.is_tensor(d) for d in replays[0][2])  # captured once, draws as buffers
    assert l_graph == pytest.approx(l_eager, rel=1e-4)
    for a, b in zip(eager.state_dict().values(), graphed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)


def test_fit_through_the_graphed_step_trains_as_eager_and_resumes(monkeypatch, tmp_path):
    """The whole ``--cuda-graphs step`` path of fit on the CPU, CUDA calls stood in for: crop/flip and mixup
    draws through the buffers, the tensor lr under the schedule, its checkpoint and resume."""
    import robustbench_mix.training.speed as speed
    from robustbench_mix.data.base import ImageData
    from robustbench_mix.experiment.experiment import Experiment

    g = torch.Generator().manual_seed(0)
    data = ImageData("tiny32", torch.randint(0, 256, (96, 3, 32, 32), dtype=torch.uint8, generator=g),
                     torch.arange(96) % 4, torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8, generator=g),
                     torch.arange(32) % 4, list("abcd"), "crop_flip")
    exp = Experiment(dataset="tiny32", model="cnn", method="mixup", alpha=1.0, epochs=3, batch_size=16, lr=0.05,
                     schedule="step", eps=(8.0,), attacks=("fgsm",), attack_steps=1)
    cpu = torch.device("cpu")
    eager, _, l_eager = _train(exp, data, cpu)
    monkeypatch.setattr(speed, "graphs_supported", lambda device: True)
    monkeypatch.setattr(speed, "GraphedStep", CPUGraphedStep)
    graphed, _, l_graph = _train(exp, data, cpu, cuda_graphs="step")
    assert l_graph == pytest.approx(l_eager, rel=1e-4)  # a float lambda and its float32 buffer differ by rounding
    for a, b in zip(eager.state_dict().values(), graphed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)  # rounding, grown over 18 steps

    class Stop(Exception):
        pass

    def stop(epoch, model):
        if epoch == 2:
            raise Stop

    p = prepare(data, exp.noise, exp.val_fraction, exp.seed, cpu)
    with pytest.raises(Stop):
        fit(exp, p, new_model(exp, data, cpu), run_dir=tmp_path, options=RunOptions(progress=False, cuda_graphs="step"),
            hooks=(stop,))
    assert torch.is_tensor(torch.load(tmp_path / "checkpoint.pt")["optimizer"]["param_groups"][0]["lr"])
    resumed = new_model(exp, data, cpu)
    curves = fit(exp, p, resumed, run_dir=tmp_path, options=RunOptions(progress=False, cuda_graphs="step"))
    assert [r["value"] for r in curves if r["metric"] == "loss"] == pytest.approx(l_eager, rel=1e-4)
    for a, b in zip(eager.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)  # rounding, grown over 18 steps


@pytest.mark.skipif(not (shutil.which("g++") or shutil.which("clang++")),
                    reason="torch.compile on the CPU needs a C++ compiler")
def test_compiled_training_matches_eager_alone_and_inside_the_graphed_step(monkeypatch, small_digits, tiny_exp):
    import robustbench_mix.training.speed as speed

    exp = replace(tiny_exp, method="mixup", alpha=1.0, epochs=2)
    cpu = torch.device("cpu")
    _, _, l_eager = _train(exp, small_digits, cpu)
    _, _, l_compiled = _train(exp, small_digits, cpu, compile=True)
    monkeypatch.setattr(speed, "graphs_supported", lambda device: True)
    monkeypatch.setattr(speed, "GraphedStep", CPUGraphedStep)
    _, _, l_both = _train(exp, small_digits, cpu, compile=True, cuda_graphs="step")
    assert l_compiled == pytest.approx(l_eager, rel=1e-4) and l_both == pytest.approx(l_eager, rel=1e-4)


@cuda
def test_compiled_model_inside_the_cuda_step_graph_trains_like_eager(small_digits, tiny_exp):
    torch.backends.cudnn.benchmark = False
    exp = replace(tiny_exp, method="mixup", alpha=1.0, epochs=3, device="cuda")
    dev = torch.device("cuda")
    _, _, l_eager = _train(exp, small_digits, dev)
    _, _, l_both = _train(exp, small_digits, dev, compile=True, cuda_graphs="step")
    assert l_both == pytest.approx(l_eager, rel=2e-2) and l_both[-1] < l_both[0]


@cuda
def test_graphed_step_on_cuda_matches_eager_steps_with_a_changing_lr():
    """fp32, so the graph and eager can agree to rounding: the draws and the scheduled lr reach the graph."""
    dev = torch.device("cuda")

    def run(graphed):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)).to(dev)
        opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, fused=True)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor("cosine", 12))
        data = torch.randn(64, 8, device=dev, generator=torch.Generator(dev).manual_seed(1))
        labels = torch.arange(64, device=dev) % 3
        gen = torch.Generator(dev).manual_seed(2)

        def step(idx, lam):
            x = data[idx]
            loss = lam * torch.nn.functional.cross_entropy(model(x), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss.detach()

        if graphed:
            tensor_lr(opt, dev)
            step = GraphedStep(step)
        losses = []
        for k in range(12):
            losses.append(step(torch.randperm(64, device=dev, generator=gen)[:16], 1.0 + 0.1 * k).item())
            sched.step()
        return losses, [p.detach().clone() for p in model.parameters()]

    (l_e, p_e), (l_g, p_g) = run(False), run(True)
    assert l_g == pytest.approx(l_e, rel=1e-4)
    for a, b in zip(p_e, p_g, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@cuda
@pytest.mark.parametrize("mode", ["model", "step"])
@pytest.mark.parametrize("method,dropout", [("erm", 0.0), ("mixup", 0.3)])
def test_cuda_graphs_train_like_eager(small_digits, tiny_exp, method, dropout, mode):
    torch.backends.cudnn.benchmark = False
    exp = replace(tiny_exp, method=method, alpha=1.0 if method == "mixup" else 0.0, dropout=dropout, epochs=3,
                  device="cuda")
    dev = torch.device("cuda")
    eager, p, l_eager = _train(exp, small_digits, dev)
    graphed, _, l_graph = _train(exp, small_digits, dev, cuda_graphs=mode)
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
@pytest.mark.parametrize("mode", ["model", "step"])
def test_cuda_graph_run_resumes_and_attacks_stay_in_the_ball(small_digits, tiny_exp, tmp_path, mode):
    exp = replace(tiny_exp, epochs=3, device="cuda")

    class Stop(Exception):
        pass

    def stop(epoch, model):
        if epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        run_experiment(exp, small_digits, run_dir=tmp_path, options=RunOptions(progress=False, cuda_graphs=mode),
                       hooks=(stop,))
    rows = run_experiment(exp, small_digits, run_dir=tmp_path, options=RunOptions(progress=False, cuda_graphs=mode))
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

import json

import pytest

from robustbench_mix.bench import load, main

pytestmark = pytest.mark.e2e  # a whole command run: python -m pytest -m 'not e2e' skips these


def test_bench_reduced_cpu_mode_writes_its_figures(tmp_path, capsys):
    assert main(["--device", "cpu", "--steps", "2", "--warmup", "1", "--attack-batch", "20", "--attack-steps", "2",
                 "--workers", "0", "--out", str(tmp_path)]) == 0
    info = json.loads((tmp_path / "bench_cpu_cnn.json").read_text())
    assert info["device"].startswith("cpu") and info["torch"]
    t = info["training"][0]
    assert t["batch_size"] == 64 and t["recipe_img_s"] > 0 and t["suite_img_s"] > 0
    assert t["speedup"] == t["suite_img_s"] / t["recipe_img_s"]
    assert info["train_gflops_per_image"] > 0 and info["errors"] == {}
    assert info["suite_pgd_fp32_img_s"] > 0 and info["suite_pgd_bf16_img_s"] > 0
    assert (tmp_path / "bench_cpu_cnn.csv").exists()
    assert "img/s" in capsys.readouterr().out


def test_precision_check_compares_fp32_and_bf16_attacks_on_finished_runs(tmp_path, capsys):
    import pandas as pd

    from robustbench_mix.cli.suite import main as suite

    res = tmp_path / "res"
    assert suite(["--epochs", "1", "--noise", "0", "--seeds", "0", "--methods", "erm", "--attacks", "fgsm,pgd",
                  "--eps", "8", "--attack-steps", "2", "--attack-samples", "100", "--check-eps", "0",
                  "--out", str(res), "--no-progress"]) == 0
    assert main(["--device", "cpu", "--precision-check", str(res), "--samples", "100",
                 "--out", str(tmp_path)]) == 0
    df = pd.read_csv(tmp_path / "attack_precision_cpu.csv")
    assert sorted(df["attack"]) == ["fgsm", "pgd"] and (df["samples"] == 100).all()
    assert ((df["acc_fp32"] >= 0) & (df["acc_fp32"] <= 1)).all()
    assert ((df["diff_points"] - 100 * (df["acc_bf16"] - df["acc_fp32"])).abs() < 1e-6).all()
    assert "bf16 vs fp32 attacks: 2 comparisons" in capsys.readouterr().out


def test_bench_parts_time_only_what_is_asked(tmp_path):
    import math

    assert main(["--device", "cpu", "--parts", "suite", "--steps", "2", "--warmup", "1", "--tag", "s",
                 "--out", str(tmp_path)]) == 0
    info = json.loads((tmp_path / "bench_cpu_cnn_s.json").read_text())
    t = info["training"][0]
    assert t["suite_img_s"] > 0 and math.isnan(t["recipe_img_s"]) and "suite_graphs_img_s" not in t
    assert "suite_pgd_fp32_img_s" not in info  # attacks not asked for


def test_stacked_step_equals_separate_sgd_steps():
    # the prototype that trains several runs at once must train each exactly as if alone
    import torch

    Stacked = load()["Stacked"]
    from robustbench_mix.models.families import build

    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(build("cnn", in_shape=(3, 16, 16), num_classes=10, mean=(0.5,) * 3, std=(0.25,) * 3))
    st = Stacked(models, lr=0.1)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(3, 8, 3, 16, 16, generator=g), torch.randint(0, 10, (3, 8), generator=g)
    for _ in range(2):
        losses = st.step(x, y)
    for i, m in enumerate(models):
        opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        for _ in range(2):
            loss = torch.nn.functional.cross_entropy(m(x[i]), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert abs(losses[i].item() - loss.item()) < 1e-5
        for n, p in m.named_parameters():
            assert torch.allclose(p, st.params[n][i], atol=1e-5), n
        for n, b in m.named_buffers():
            assert torch.allclose(b.float(), st.buffers[n][i].float(), atol=1e-5), n

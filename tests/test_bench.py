import json

from robustbench_mix.bench import main


def test_bench_reduced_cpu_mode_writes_its_figures(tmp_path, capsys):
    assert main(["--device", "cpu", "--steps", "2", "--warmup", "1", "--attack-batch", "20", "--attack-steps", "2",
                 "--workers", "0", "--out", str(tmp_path)]) == 0
    info = json.loads((tmp_path / "bench_cpu_cnn.json").read_text())
    assert info["device"].startswith("cpu") and info["torch"]
    t = info["training"][0]
    assert t["batch_size"] == 64 and t["recipe_img_s"] > 0 and t["suite_img_s"] > 0
    assert t["speedup"] == t["suite_img_s"] / t["recipe_img_s"]
    assert info["train_gflops_per_image"] > 0 and info["suite_pgd_img_s"] > 0
    assert (tmp_path / "bench_cpu_cnn.csv").exists()
    assert "img/s" in capsys.readouterr().out

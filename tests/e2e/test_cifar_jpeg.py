"""Integration on the real CIFAR-10 (JPEG q75) from ../shared/data, when it is there: a small slice of it
goes through the image-folder loader, on-device augmentation, a training run and the attacks."""

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from robustbench_mix.cli.suite import main
from robustbench_mix.data.base import load
from robustbench_mix.data.prepare import attack_subset
from robustbench_mix.models.families import build
from robustbench_mix.store.load import load_runs

TARBALL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
pytestmark = pytest.mark.skipif(not TARBALL.exists(), reason=f"{TARBALL} is not there")


@pytest.fixture(scope="module")
def cifar_slice(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    # 30 images per class and split: the first three names of each ten
    subprocess.run(["tar", "-xzf", str(TARBALL), "-C", str(root), "--wildcards", "cifar10-jpeg/*/*/00[0-2]?.jpg"],
                   check=True)
    return root / "cifar10-jpeg"


def test_image_folder_reads_the_real_cifar_slice(cifar_slice, tmp_path):
    data = load(f"imagefolder:{cifar_slice}", tmp_path)
    assert data.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                            "truck"]
    assert data.train_x.shape == (300, 3, 32, 32) and data.test_x.shape == (300, 3, 32, 32)
    assert data.augment == "crop_flip" and data.train_x.dtype == torch.uint8
    mean, std = data.channel_stats()
    assert all(0.3 < m < 0.6 for m in mean) and all(0.15 < s < 0.35 for s in std)
    for name in ("preact_resnet18", "wrn28_10"):
        model = build(name, in_shape=data.shape, num_classes=10, mean=mean, std=std).eval()
        with torch.no_grad():
            assert model(data.train_x[:2].float() / 255).shape == (2, 10)


def test_suite_runs_on_the_real_cifar_slice(cifar_slice, tmp_path):
    out = tmp_path / "out"
    assert main(["--dataset", f"imagefolder:{cifar_slice}", "--data-dir", str(tmp_path / "cache"), "--model", "cnn",
                 "--methods", "erm,mixup", "--noise", "0", "--epochs", "2", "--batch-size", "50", "--eps", "8/255",
                 "--attack-steps", "2", "--attack-samples", "100", "--out", str(out), "--no-progress"]) == 0
    df = load_runs(out / "runs.csv")
    assert set(df["dataset"]) == {f"imagefolder:{cifar_slice}"}
    final = df[df["epoch"] == 2]
    clean = final[(final["metric"] == "acc") & (final["attack"] == "none") & (final["split"] == "test")]
    assert len(clean) == 2 and clean["value"].between(0, 1).all()
    # --attack-samples 100 of 300 class-sorted test images: 10 of each class, not the first 100 (3 classes)
    data = load(f"imagefolder:{cifar_slice}", tmp_path / "cache")
    assert np.bincount(data.test_y.numpy()[attack_subset(data.test_y.numpy(), 100)]).tolist() == [10] * 10
    adv_rows = final[final["attack"].isin(["fgsm", "pgd"])]
    assert (adv_rows["n_eval"] == 100).all() and adv_rows["eval_subset"].str.startswith("stratified:").all()
    assert "a class-stratified 100 of the 300 test images" in (out / "summary.md").read_text()
    subset = final[final["metric"] == "acc_attacked_subset"].set_index("run_id")["value"]
    adv = final[(final["attack"] == "pgd") & (final["metric"] == "acc") & (final["eps"] > 0)]
    assert all(v <= subset[r] + 1e-9 for r, v in zip(adv["run_id"], adv["value"], strict=True))

"""A plugin's data set: the suite trains on it, its rows record it; a loader returning something else than uint8
images and class indices is refused with one line naming the data set, before any training."""

import json

import pytest

from robustbench_mix.cli.suite import main as suite
from robustbench_mix.core.errors import UsageError
from robustbench_mix.plugins import load_plugins
from robustbench_mix.store.load import load_runs

DATA = '''
import numpy as np

import robustbench_mix as rbm


@rbm.register_dataset("stripes")
def stripes(data_dir):
    """Two classes of 8x8 grey images: horizontal or vertical stripes, with noise."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    base = np.zeros((2, 8, 8))
    base[0, ::2, :] = 1
    base[1, :, ::2] = 1
    x = np.clip(base[y] * 200 + rng.normal(0, 30, (300, 8, 8)), 0, 255).astype(np.uint8)[:, None]
    return x[:200], y[:200], x[200:], y[200:], ["horizontal", "vertical"]


@rbm.register_dataset("floats")
def floats(data_dir):
    x = np.zeros((10, 1, 8, 8), dtype=np.float32)
    return x, np.zeros(10, dtype=int), x, np.zeros(10, dtype=int), ["a", "b"]
'''


def test_the_suite_trains_on_a_plugin_data_set_and_its_rows_record_it(write_plugin, tmp_path):
    out = tmp_path / "o"
    args = ["--plugin", str(write_plugin(DATA, name="data.py")), "--dataset", "stripes", "--methods", "erm",
            "--seeds", "0", "--noise", "0", "--epochs", "2", "--batch-size", "50", "--attacks", "fgsm", "--eps", "8",
            "--no-progress", "--out", str(out)]
    assert suite(args) == 0
    df = load_runs(out / "runs.csv")
    assert set(df["dataset"]) == {"stripes"}
    assert "dataset:stripes=data.py@" in json.loads(df["config"].iloc[0])["plugins"]
    acc = df.query("split == 'test' and metric == 'acc' and attack == 'none'")["value"].iloc[0]
    assert acc > 0.9  # the stripes are learnt: the images reached the model as given


def test_a_loader_returning_float_images_is_refused_naming_the_data_set(write_plugin, tmp_path, capsys):
    assert suite(["--plugin", str(write_plugin(DATA, name="data.py")), "--dataset", "floats", "--methods", "erm",
                  "--seeds", "0", "--noise", "0", "--no-progress", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "error: plugin data set floats: train_x must be uint8 images (N, 1 or 3, H, W), got torch.float32" in err
    assert not (tmp_path / "o" / "runs").exists()


def test_a_bad_augment_trait_is_refused_at_import(write_plugin):
    bad = write_plugin("import robustbench_mix as rbm\n\n\n@rbm.register_dataset('x', augment='mixup')\n"
                       "def x(data_dir):\n    return None\n", name="bad.py")
    with pytest.raises(UsageError, match=r"plugin bad.py: dataset 'x': augment='mixup' is not 'none' or 'crop_flip'"):
        load_plugins([str(bad)])

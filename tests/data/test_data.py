import urllib.error

import numpy as np
import pytest
import torch
from PIL import Image

from robustbench_mix.core.errors import UsageError
from robustbench_mix.data.augment import _crop_flip_draw, crop_flip
from robustbench_mix.data.base import load
from robustbench_mix.data.prepare import corrupt_labels, prepare, to_float, validation_split
from robustbench_mix.data.sources import load_image_folder, scan_image_folder


def test_digits_are_real_uint8_images(digits):
    assert digits.train_x.dtype == torch.uint8 and digits.train_x.shape[1:] == (1, 8, 8)
    assert len(digits.train_y) + len(digits.test_y) == 1797
    assert digits.train_x.max() == 255 and digits.num_classes == 10
    # the split is fixed: the same test set in every run
    assert torch.equal(load("digits", "unused").test_y, digits.test_y)


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.5, 0.8])
def test_label_corruption_hits_the_requested_fraction(rate):
    y = np.random.default_rng(1).integers(0, 10, 5000)
    noisy, mask = corrupt_labels(y, 10, rate, seed=3)
    picked = round(rate * 5000)
    # the mask is exactly the labels that changed; the others are the true ones
    assert np.array_equal(mask, noisy != y) and np.array_equal(noisy[~mask], y[~mask])
    if rate:
        # the picked labels are redrawn uniformly over all classes: about 1/10 of them keep their class,
        # and those are not corrupted
        kept = (picked - mask.sum()) / picked
        assert 0.07 < kept < 0.13
        assert abs(mask.mean() - rate * 0.9) < 0.02
        assert len(np.unique(noisy[mask])) == 10


def test_label_corruption_is_seeded():
    y = np.arange(1000) % 10
    a, ma = corrupt_labels(y, 10, 0.4, seed=0)
    b, mb = corrupt_labels(y, 10, 0.4, seed=0)
    c, mc = corrupt_labels(y, 10, 0.4, seed=1)
    assert np.array_equal(a, b) and np.array_equal(ma, mb)
    assert not np.array_equal(ma, mc) and not np.array_equal(a, c)


def test_prepare_records_corrupted_index_and_keeps_true_labels(small_digits):
    p = prepare(small_digits, 0.5, 0.0, 0, torch.device("cpu"))
    # 200 of 400 labels picked and redrawn; those redrawn to their own class are not corrupted
    assert 160 < len(p.corrupted_index) < 200 and p.corrupted.sum() == len(p.corrupted_index)
    assert torch.equal(p.train_true_y, small_digits.train_y)
    assert (p.train_y[p.corrupted] != p.train_true_y[p.corrupted]).all()
    assert torch.equal(p.train_y[~p.corrupted], p.train_true_y[~p.corrupted])
    assert np.array_equal(np.flatnonzero(p.corrupted.numpy()), p.corrupted_index)


def test_validation_split_is_seeded_disjoint_and_from_training_data(small_digits):
    tr, va = validation_split(400, 0.25, seed=0)
    assert len(va) == 100 and len(set(tr) & set(va)) == 0 and len(tr) + len(va) == 400
    assert np.array_equal(va, validation_split(400, 0.25, seed=0)[1])
    assert not np.array_equal(va, validation_split(400, 0.25, seed=1)[1])
    p = prepare(small_digits, 0.0, 0.25, 0, torch.device("cpu"))
    assert torch.equal(p.val_x, small_digits.train_x[va])
    assert torch.equal(p.test_x, small_digits.test_x)


def test_crop_flip_takes_shifted_windows_of_the_padded_image():
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.int64).remainder(251).to(torch.uint8).view(2, 3, 32, 32)
    g = torch.Generator().manual_seed(0)
    out = crop_flip(x, g)
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(2):
        found = False
        for dy in range(9):
            for dx in range(9):
                win = padded[i, :, dy:dy + 32, dx:dx + 32]
                if torch.equal(out[i], win) or torch.equal(out[i], win.flip(-1)):
                    found = True
        assert found
    # with many images, about half are flipped and offsets vary
    many = crop_flip(x.repeat(200, 1, 1, 1), torch.Generator().manual_seed(1))
    assert len({tuple(m.flatten()[:40].tolist()) for m in many}) > 20


def _write_folder(root, classes=("a", "b"), n=3, size=(8, 8)):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(d / f"{i}.png")


def test_image_folder_loads_and_caches(tmp_path):
    _write_folder(tmp_path / "imgs")
    data = load_image_folder(str(tmp_path / "imgs"), tmp_path / "cache")
    assert data.train_x.shape == (6, 3, 8, 8) and data.classes == ["a", "b"]
    assert data.train_y.tolist() == [0, 0, 0, 1, 1, 1]
    first = np.asarray(Image.open(tmp_path / "imgs" / "train" / "a" / "0.png"))
    assert np.array_equal(data.train_x[0].permute(1, 2, 0).numpy(), first)
    assert len(list((tmp_path / "cache").glob("imagefolder-*.npz"))) == 1
    again = load(f"imagefolder:{tmp_path / 'imgs'}", tmp_path / "cache")
    assert torch.equal(again.train_x, data.train_x)


@pytest.mark.parametrize("breakage,message", [
    ("no_test", "has no test/"),
    ("empty_class", "is empty"),
    ("class_mismatch", "classes differ"),
    ("not_image", "notes.txt' is not a readable image"),
])
def test_image_folder_errors_name_the_problem(tmp_path, breakage, message):
    root = tmp_path / "imgs"
    _write_folder(root)
    if breakage == "no_test":
        import shutil
        shutil.rmtree(root / "test")
    elif breakage == "empty_class":
        for f in (root / "test" / "b").iterdir():
            f.unlink()
    elif breakage == "class_mismatch":
        (root / "test" / "b").rename(root / "test" / "c")
    else:
        (root / "train" / "a" / "notes.txt").write_text("hello")
    with pytest.raises(UsageError, match=message):
        load_image_folder(str(root), tmp_path / "cache")


def test_cifar_without_network_names_data_dir(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tvu

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(tvu, "urlretrieve", offline, raising=False)
    monkeypatch.setattr(tvu, "_urlretrieve", offline, raising=False)
    monkeypatch.setattr(tvu, "download_url", offline)
    import torchvision.datasets.cifar as cifar
    monkeypatch.setattr(cifar, "download_and_extract_archive", offline)
    with pytest.raises(UsageError) as e:
        load("cifar10", tmp_path / "d")
    msg = str(e.value)
    assert "--data-dir" in msg and "cifar-10-python.tar.gz" in msg and str(tmp_path / "d") in msg


def test_scan_rejects_missing_folder(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        scan_image_folder(tmp_path / "nope")


def test_image_folder_with_mixed_sizes_names_the_odd_file(tmp_path):
    root = tmp_path / "imgs"
    _write_folder(root)
    Image.fromarray(np.zeros((9, 8, 3), dtype=np.uint8)).save(root / "test" / "b" / "odd.png")
    with pytest.raises(UsageError, match=r"odd.png' is 8x9 but the first is 8x8"):
        load_image_folder(str(root), tmp_path / "cache")


def test_a_label_redrawn_to_its_own_class_is_not_counted_as_memorized(small_digits):
    from robustbench_mix.data.prepare import corrupt_labels
    from robustbench_mix.evaluation.metrics import memorization_metrics

    y = small_digits.train_y.numpy()
    noisy, changed = corrupt_labels(y, 10, 0.5, seed=0)
    picked = round(0.5 * len(y))
    assert changed.sum() < picked  # some picked labels were redrawn to their own class
    # a model that predicts the true class everywhere memorizes nothing: with the picked-but-unchanged labels
    # counted as corrupted, it would have 'memorized' them (prediction == noisy label == true label)
    true_logits = torch.nn.functional.one_hot(torch.as_tensor(y), 10).float()
    rows = {(s, m): v.item() for s, m, v in memorization_metrics(true_logits, torch.as_tensor(noisy),
                                                                 torch.as_tensor(y), torch.as_tensor(changed))}
    assert rows[("train_corrupted", "memorized")] == 0.0 and rows[("train_corrupted", "acc")] == 1.0
    assert rows[("train_clean", "acc")] == 1.0


# ---------------------------------------------------- definitions checked against planted bugs (experiments/mutation)


def test_to_float_maps_255_to_exactly_one():
    """to_float_256: the attacks' [0, 1] pixel range and eps in 255ths rest on x / 255."""
    x = torch.tensor([0, 1, 128, 255], dtype=torch.uint8)
    f = to_float(x)
    assert f.dtype == torch.float32 and f[0] == 0.0 and f[-1] == 1.0
    assert f[1:3].tolist() == pytest.approx([1 / 255, 128 / 255], rel=1e-6)


# ---------------------------------------------------------------------------------------- crop and flip
def test_crop_offsets_cover_all_nine_shifts_and_half_the_images_flip():
    """crop_never_last_offset, flip_rarely: offsets uniform on 0..8 (pad 4 each side), flips with probability 1/2."""
    off, flip = _crop_flip_draw(9000, torch.device("cpu"), torch.Generator().manual_seed(0))
    for axis in off:
        counts = torch.bincount(axis, minlength=9)
        assert len(counts) == 9 and (counts > 850).all(), counts
    assert abs(flip.float().mean().item() - 0.5) < 0.02


# ------------------------------------------------------------------------------------------ attacked subset
def test_attack_subset_gives_the_extra_images_to_the_largest_remainders_ties_to_the_lower_class():
    """subset_smallest_remainder: quotas 4.9, 1.4, 0.7 of 7 round down to 4, 1, 0; the two images left go to the
    remainders 0.9 and 0.7, not 0.4; equal remainders go to the lower class."""
    from robustbench_mix.data.prepare import attack_subset

    y = np.array([0] * 70 + [1] * 20 + [2] * 10)
    assert np.bincount(y[attack_subset(y, 7)], minlength=3).tolist() == [5, 1, 1]
    y = np.repeat(np.arange(3), 10)
    assert np.bincount(y[attack_subset(y, 4)], minlength=3).tolist() == [2, 1, 1]

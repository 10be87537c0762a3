"""What ``robustbench_mix.evaluate`` accepts from a user, checked before anything runs: images and labels as
tensors (a ``Dataset`` or ``DataLoader``: loaders.py); the model (dtype, lazy modules, device, one probe forward
that must give float logits). Each problem is a ``UsageError`` naming the value and what to do, never a silently wrong
number or an exception from deep inside torch."""

from __future__ import annotations

import copy
import math
import warnings

import torch
from torch.nn.modules.lazy import LazyModuleMixin

from robustbench_mix.attacks.base import frozen_eval
from robustbench_mix.core.errors import UsageError
from robustbench_mix.data.base import ImageData
from robustbench_mix.data.prepare import to_float
from robustbench_mix.models.base import Normalize

CHANNEL_COUNTS = (1, 3, 4)  # grey, RGB, RGBA: what a channels-last image's last axis usually holds
PROBE_IMAGES = 2
INTEGER_LABELS = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


# ------------------------------------------------------------------------------------------------ images
def as_uint8(x: torch.Tensor) -> torch.Tensor:
    """uint8 images as they are; float images in [0, 1] rounded to the 1/255 grid the suite works on."""
    x = torch.as_tensor(x)
    if x.dim() != 4 or not (x.dtype == torch.uint8 or x.is_floating_point()):
        hint = " (one grey channel: x.unsqueeze(1))" if x.dim() == 3 else ""
        raise UsageError(f"images must be a (N, C, H, W) uint8 tensor or floats in [0, 1], got {x.dtype} "
                         f"{tuple(x.shape)}{hint}")
    if len(x) == 0:
        raise UsageError("no images to evaluate (the data holds 0 images)")
    if x.shape[-1] in CHANNEL_COUNTS and x.shape[1] not in CHANNEL_COUNTS:
        raise UsageError(f"images of shape {tuple(x.shape)} look channels-last (N, H, W, C); the models and the "
                         "corruptions take (N, C, H, W): pass x.permute(0, 3, 1, 2)")
    if x.dtype == torch.uint8:
        return x
    bad = ~torch.isfinite(x)
    if bad.any():  # uint8 would turn NaN into 0 (a black pixel) and the accuracy would be of other images
        img = int(bad.flatten(1).any(1).nonzero()[0])
        raise UsageError(f"images hold {int(bad.sum())} NaN or infinite pixel value(s) (first in image {img}); "
                         "fix or drop those images")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        raise UsageError(f"float images must lie in [0, 1] (the model takes pixels, normalization is inside it or "
                         f"given as normalize=(mean, std)), got values in [{lo:.3g}, {hi:.3g}]")
    u8 = (x.float() * 255).round().to(torch.uint8)
    if float((u8.float() / 255 - x.float()).abs().max()) > 1e-6:
        warnings.warn("float images are not on the 1/255 grid; they were rounded to uint8 (what the attacks and "
                      "the suite's data use)", stacklevel=5)
    return u8


def as_labels(y, n: int) -> torch.Tensor:
    """int64 class indices, one per image; float labels only when they are whole numbers."""
    if isinstance(y, str) or (isinstance(y, tuple | list) and any(isinstance(v, str) for v in y)):
        raise UsageError("labels are text (class names?); evaluate needs integer class indices, one per image: map "
                         "each name to its index (e.g. classes.index(name))")
    try:
        y = torch.as_tensor(y)
    except (TypeError, ValueError, RuntimeError):
        raise UsageError(f"labels of type {type(y).__name__} are not integer class indices (a 1-d tensor or "
                         "list of ints, one per image)") from None
    if y.dim() == 2 and y.shape[1] == 1:
        raise UsageError(f"labels have shape {tuple(y.shape)}; give one class index per image: y.squeeze(1)")
    if y.dim() == 2:
        raise UsageError(f"labels have shape {tuple(y.shape)} (one-hot or soft labels?); give class indices: "
                         "y.argmax(1)")
    if y.dim() != 1 or len(y) != n:
        raise UsageError(f"labels must be a 1-d tensor with one label per image ({n}), got {tuple(y.shape)}")
    if not (y.is_floating_point() or y.dtype in INTEGER_LABELS):
        raise UsageError(f"labels must be integer class indices, got {y.dtype}")
    if y.is_floating_point():
        frac = ~torch.isfinite(y) | (y != y.round())
        if frac.any():
            i = int(frac.nonzero()[0])
            raise UsageError(f"label {float(y[i]):g} (image {i}) is not a whole number: labels are class indices "
                             "(a float label would be truncated to another class)")
    y = y.long()
    if (y < 0).any():
        i = int((y < 0).nonzero()[0])
        raise UsageError(f"label {int(y[i])} (image {i}) is negative: labels are class indices 0, 1, ...")
    return y


def check_data(d: ImageData) -> None:
    """An ImageData the user built: the same rules for its test split."""
    as_uint8(d.test_x)
    if d.test_x.dtype != torch.uint8:
        raise UsageError(f"ImageData.test_x must be uint8, got {d.test_x.dtype}")
    as_labels(d.test_y, len(d.test_x))


def to_image_data(x, y) -> ImageData:
    """Checked (images, labels) as an ImageData with an empty training split."""
    x = as_uint8(torch.as_tensor(x).cpu())
    y = as_labels(y, len(x)).cpu()
    k = int(y.max()) + 1
    return ImageData("tensors", x[:0], y[:0], x, y, [str(i) for i in range(k)], "none")


# ------------------------------------------------------------------------------------------------- model
def names_list(value, what: str) -> tuple[str, ...]:
    """'fgsm' or 'fgsm,pgd' -> a tuple of names (a string is not a list of its letters)."""
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    try:
        return tuple(value)
    except TypeError:
        raise UsageError(f"{what} must be a name or a list of names, got {value!r}") from None


def check_batch_size(batch_size) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"batch_size {batch_size!r} must be a positive integer (images per forward pass)")


def device_of(device, model: torch.nn.Module) -> torch.device:
    """None: where the model's parameters are (CPU without any); 'auto': CUDA when there is a GPU."""
    first = next((p.device for p in model.parameters()), None)
    if device is None:
        return first or torch.device("cpu")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UsageError(f"device {device!r} is not a torch device (cpu, cuda, cuda:N, auto)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {device!r}: no CUDA GPU is visible (torch.cuda.is_available() is False); use "
                         "device='cpu' or leave device out")
    if first is not None and (first.type, first.index or 0) != (dev.type, dev.index or 0):
        raise UsageError(f"the model's parameters are on {first} and device={device!r}: move it first "
                         f"(model.to({str(dev)!r})) or leave device out")
    return dev


def float32_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model itself when its parameters and buffers are float32, else a float32 copy (the attacks, the checks
    and the suite's numbers are float32; the user's model is left as it is). Lazy modules that never ran have no
    weights to evaluate: refused."""
    lazy = [f"{n or 'the model'} ({type(m).__name__})" for n, m in model.named_modules()
            if isinstance(m, LazyModuleMixin) and m.has_uninitialized_params()]
    if lazy:
        raise UsageError(f"the model has lazy modules that never ran ({', '.join(lazy[:3])}): their weights do not "
                         "exist yet. Run one forward first (model(x[:1])) or load the trained state_dict, then "
                         "evaluate")
    kinds = {t.dtype for t in [*model.parameters(), *model.buffers()] if t.is_floating_point()}
    if kinds <= {torch.float32}:
        return model
    names = ", ".join(sorted(str(k).removeprefix("torch.") for k in kinds))
    warnings.warn(f"the model's weights are {names}; a float32 copy of it is evaluated (the attacks and their "
                  "checks run in float32; attack_precision='bf16' adds bf16 autocast); the model is left as it is",
                  stacklevel=4)
    return copy.deepcopy(model).float()


def with_normalize(model: torch.nn.Module, normalize, channels: int, device: torch.device) -> torch.nn.Module:
    """``normalize=(mean, std)`` as the model's first layer; each one number or one per channel."""
    if normalize is None:
        return model
    if not isinstance(normalize, tuple | list) or len(normalize) != 2:
        raise UsageError(f"normalize must be a pair (mean, std), got {normalize!r}")
    stats = []
    for what, v in zip(("mean", "std"), normalize, strict=True):
        v = tuple(float(t) for t in (v if isinstance(v, tuple | list) else torch.as_tensor(v).reshape(-1).tolist()))
        if len(v) not in (1, channels):
            raise UsageError(f"normalize {what} {v} has {len(v)} values; the images have {channels} channel(s): give "
                             f"1 or {channels}")
        if not all(math.isfinite(t) for t in v) or (what == "std" and min(v) <= 0):
            raise UsageError(f"normalize {what} {v} must be finite{' and positive' if what == 'std' else ''}")
        stats.append(v)
    return torch.nn.Sequential(Normalize(*stats).to(device), model)


def _described(e: BaseException) -> str:
    text = str(e).strip()
    return f"{e.__class__.__name__}: {text.splitlines()[0]}" if text else e.__class__.__name__


def probe(net: torch.nn.Module, x_u8: torch.Tensor, y: torch.Tensor | None) -> int:
    """One forward of the first two images, in eval mode: the model must give (N, classes) finite float logits,
    with more outputs than the largest label. Returns the number of outputs."""
    x = to_float(x_u8[:PROBE_IMAGES].clone())
    what = f"{len(x)} images of shape {tuple(x.shape[1:])} (float32 in [0, 1] on {x.device})"
    try:
        with frozen_eval(net), torch.no_grad():
            out = net(x)
    except Exception as e:  # anything the user's forward raises: say what it was given
        raise UsageError(f"the model failed on {what}: {_described(e)}") from None
    if isinstance(out, dict):
        raise UsageError(f"the model returns a {type(out).__name__} (keys {', '.join(map(str, out))}), not a tensor "
                         "of logits: wrap it so that forward returns the logits alone, e.g. model(x)['logits']")
    if isinstance(out, tuple | list):
        raise UsageError(f"the model returns a {type(out).__name__} of {len(out)}, not a tensor of logits: wrap it "
                         "so that forward returns the logits alone, e.g. model(x)[0]")
    if not torch.is_tensor(out) or not out.is_floating_point():
        kind = f"a {out.dtype} tensor" if torch.is_tensor(out) else f"a {type(out).__name__}"
        raise UsageError(f"the model returns {kind}; evaluate needs float logits (N, classes)")
    if out.dim() != 2 or len(out) != len(x) or out.shape[1] < 2:
        raise UsageError(f"the model gives outputs of shape {tuple(out.shape)} for {what}; evaluate needs logits "
                         f"of shape ({len(x)}, classes), classes >= 2")
    out = out.float()
    if not bool(torch.isfinite(out).all()):
        raise UsageError(f"the model gives NaN or infinite outputs for {what}")
    # probabilities, not logits: NLL and ECE would be of softmax(probabilities), and the attacks' gradients
    # through a saturated softmax vanish (robust accuracy overstated). Log-probabilities are fine (valid logits).
    if bool(((out >= 0) & (out <= 1)).all()) and float((out.sum(1) - 1).abs().max()) < 1e-4:
        raise UsageError("the model returns probabilities (each row lies in [0, 1] and sums to 1), not logits: "
                         "NLL, ECE and the attacks' loss need logits. Remove the final softmax (or return its "
                         "log, torch.log_softmax)")
    k = out.shape[1]
    if y is not None and len(y) and int(y.max()) >= k:
        i = int((y >= k).nonzero()[0])
        raise UsageError(f"label {int(y[i])} (image {i}) but the model has {k} outputs (classes 0-{k - 1}); "
                         "check the labels or the model's class count")
    return k

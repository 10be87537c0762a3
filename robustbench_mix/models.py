"""Models registry. Normalization is the first layer of every model, so models take pixels in [0, 1]
(which is what the attacks perturb and clip)."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import UsageError
from .registry import Registry, unknown

MODELS: Registry = Registry("model")


class Normalize(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


# Each model's mixing points for manifold mixup (Verma et al., 2019: for PreAct ResNet the input, after the
# first stage and after the second), as module names in the built model (None: the input itself). A method
# hooks the named module's output, so no model needs a second copy of its forward.
MIX_POINTS = {
    "mlp": (None, "1.3", "1.6"),  # after each hidden layer (its dropout)
    "cnn": (None, "1.2", "1.6"),  # after the first block, after the second block and its pooling
    "cifar_cnn": (None, "1.3", "1.7"),  # after the first and the second stage (each block and its pooling)
    "preact_resnet18": (None, "1.layers.1", "1.layers.3"),  # after stages 1 and 2 (two blocks each)
    "wrn28_10": (None, "1.layers.3", "1.layers.7"),  # after stages 1 and 2 (four blocks each)
}


# The memory layout of models and images on the CPU, process-wide as the thread count (torch.set_num_threads):
# the executor sets it from the suite's --cpu-channels-last before each run, and the device column records it.
_cpu_channels_last = False


def set_cpu_channels_last(on: bool) -> None:
    global _cpu_channels_last
    _cpu_channels_last = bool(on)


def channels_last(device: torch.device) -> bool:
    """Whether models and images use the channels_last layout: always on CUDA (with bf16 autocast there), on the CPU
    when asked (``--cpu-channels-last``). The same arithmetic in another layout: 1.55-2.2x faster per training step
    on the three CPUs measured (experiments/README.md), numbers equal up to rounding, so not part of the run id."""
    return device.type == "cuda" or (device.type == "cpu" and _cpu_channels_last)


def build(name: str, *, in_shape: tuple[int, int, int], num_classes: int, mean, std,
          dropout: float = 0.0, weights=None) -> nn.Module:
    """The model ``name`` with the data's normalization as its first layer. ``weights`` (``tv:`` / ``timm:``
    models only): a file holding the library model's own state_dict, or ``"pretrained"`` (the library's)."""
    family, _, arg = name.partition(":")
    if family in FAMILIES and arg:
        body = FAMILIES[family].build(arg, in_shape, num_classes, dropout, weights)
    elif weights is not None:
        raise UsageError(f"weights= is for tv:NAME and timm:NAME models; the weights of the suite's model {name} are "
                         "evaluated with python -m robustbench_mix.checkpoint PATH")
    else:
        body = MODELS.get(name)(in_shape=in_shape, num_classes=num_classes, dropout=dropout)
    model = nn.Sequential(Normalize(mean, std), body)
    model.mix_points = MIX_POINTS.get(name, ())
    return model


@MODELS.register("mlp")
def mlp(in_shape, num_classes, dropout=0.0, width=256):
    d = in_shape[0] * in_shape[1] * in_shape[2]
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(d, width), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(width, width), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(width, num_classes),
    )


@MODELS.register("cnn")
def cnn(in_shape, num_classes, dropout=0.0, width=32):
    """A small conv net sized for 8x8 digits, working on any input size (global average pooling)."""
    c = in_shape[0]

    def block(i, o):
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *block(c, width), *block(width, 2 * width), nn.MaxPool2d(2),
        *block(2 * width, 4 * width), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Dropout(dropout), nn.Linear(4 * width, num_classes),
    )


@MODELS.register("cifar_cnn")
def cifar_cnn(in_shape, num_classes, dropout=0.0, width=32):
    """A small CNN for 32x32 images on the CPU: three conv-BN-ReLU blocks, each followed by 2x2 max-pooling.
    Pooling after every block costs a quarter of ``cnn``'s convolutions at 32x32 and, trained the same way on
    CIFAR-10 (JPEG q75), reaches higher accuracy per minute (experiments/README.md, "A model for the CPU")."""
    c = in_shape[0]

    def block(i, o):
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True), nn.MaxPool2d(2)]

    return nn.Sequential(
        *block(c, width), *block(width, 2 * width), *block(2 * width, 4 * width), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Dropout(dropout), nn.Linear(4 * width, num_classes),
    )


class PreActBlock(nn.Module):
    """Pre-activation residual block (He et al., 2016); ``dropout`` between the convolutions is WRN's."""

    def __init__(self, in_planes, planes, stride=1, dropout=0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        sc = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv2(self.drop(F.relu(self.bn2(self.conv1(out)))))
        return out + sc


class PreActResNet(nn.Module):
    """PreAct ResNet-18 as in the mixup paper's CIFAR experiments (He et al., 2016), with optional dropout
    before the classifier (the 'ERM + dropout' rows of Table 2)."""

    def __init__(self, num_blocks, in_channels=3, num_classes=10, dropout=0.0):
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        layers = []
        for planes, n, stride in zip((64, 128, 256, 512), num_blocks, (1, 2, 2, 2), strict=True):
            for s in [stride] + [1] * (n - 1):
                layers.append(PreActBlock(self.in_planes, planes, s))
                self.in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(512)
        self.drop = nn.Dropout(dropout)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x):
        out = self.layers(self.conv1(x))
        out = F.adaptive_avg_pool2d(F.relu(self.bn(out)), 1).flatten(1)
        return self.linear(self.drop(out))


@MODELS.register("preact_resnet18")
def preact_resnet18(in_shape, num_classes, dropout=0.0):
    return PreActResNet((2, 2, 2, 2), in_shape[0], num_classes, dropout)


class WideResNet(nn.Module):
    """WRN-depth-k (Zagoruyko & Komodakis, 2016); dropout sits between the convolutions of each block."""

    def __init__(self, depth=28, k=10, in_channels=3, num_classes=10, dropout=0.0):
        super().__init__()
        n = (depth - 4) // 6
        widths = [16, 16 * k, 32 * k, 64 * k]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        layers, in_planes = [], widths[0]
        for planes, stride in zip(widths[1:], (1, 2, 2), strict=True):
            for s in [stride] + [1] * (n - 1):
                layers.append(PreActBlock(in_planes, planes, s, dropout))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(in_planes)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x):
        out = F.relu(self.bn(self.layers(self.conv1(x))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


@MODELS.register("wrn28_10")
def wrn28_10(in_shape, num_classes, dropout=0.0):
    return WideResNet(28, 10, in_shape[0], num_classes, dropout)


# ------------------------------------------------------------------------------------ other libraries' models
class GreyToRGB(nn.Module):
    """Repeats one grey channel three times, for models built for RGB (torchvision's)."""

    def forward(self, x):
        return x.expand(-1, 3, -1, -1)


PRETRAINED = "pretrained"


def read_state_dict(path) -> dict:
    """A state_dict file's tensors, never its pickled objects (unpickling can run code); the usual wrappings
    ({'state_dict': ...}, {'model': ...}, DataParallel's 'module.' prefix) are taken off."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"weights {str(path)!r}: no such file (weights= takes a state_dict file or 'pretrained')")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "GLOBAL" not in str(e):  # not a Python object the safe loader refused: not a torch file at all
            raise UsageError(f"weights {path} are not a readable torch file (torch.load: unsupported content)"
                             ) from None
        raise UsageError(f"weights {path} were refused: loading them needs pickle (the file holds Python objects, "
                         "and unpickling can run any code in it); save them with torch.save(model.state_dict(), "
                         "PATH)") from None
    except Exception as e:  # not a torch file: truncated, another format
        raise UsageError(f"weights {path} are not a readable torch file ({e.__class__.__name__})") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict) and not torch.is_tensor(sd[key]):
            sd = sd[key]
            break
    if not isinstance(sd, dict) or not sd or not all(torch.is_tensor(v) for v in sd.values()):
        raise UsageError(f"weights {path} hold no state_dict (a dict of tensors, torch.save(model.state_dict(), "
                         "PATH))")
    if all(k.startswith("module.") for k in sd):
        sd = {k.removeprefix("module."): v for k, v in sd.items()}
    return sd


class Family:
    """Models named ``PREFIX:NAME`` from another library's builders (the class count from the data, randomly
    initialized unless weights are given); normalization stays the suite's first layer, as for its own models."""

    def __init__(self, prefix: str, library: str, extra: str, names, make, pretrained, grey_to_rgb: bool):
        self.prefix, self.library, self.extra, self._names, self._make = prefix, library, extra, names, make
        self._pretrained, self.grey_to_rgb = pretrained, grey_to_rgb

    def names(self) -> list[str]:
        try:
            return self._names()
        except ImportError:
            raise UsageError(f"model {self.prefix}:NAME needs the {self.library} package, which is not installed: "
                             f"{self.extra}") from None

    def check(self, arg: str) -> None:
        known = self.names()
        if arg not in known:
            raise UsageError(unknown(f"{self.library} model", arg, known))

    def pretrained(self, arg: str, in_shape, num_classes: int | None) -> tuple[nn.Module, tuple, tuple]:
        """The library's pretrained model and its normalization (mean, std); its class count must be the data's
        (a new head would be untrained). Downloaded by the library, so it needs the network once."""
        self.check(arg)
        classes, load = self._pretrained(arg, in_shape)
        if num_classes is not None and classes != num_classes:
            raise UsageError(f"the pretrained {self.prefix}:{arg} has {classes} classes and the data {num_classes}: "
                             "its head does not fit. Fine-tune it, then give the file: weights=PATH")
        try:
            return load()
        except UsageError:
            raise
        except Exception as e:  # the download: URLError, HTTPError, huggingface_hub's errors
            raise UsageError(f"could not get the pretrained weights of {self.prefix}:{arg} from {self.library} "
                             f"({e.__class__.__name__}: {str(e).splitlines()[0] if str(e) else ''}); offline? "
                             "download them where there is a network and give the file: weights=PATH") from None

    def build(self, arg: str, in_shape, num_classes: int, dropout: float, weights=None) -> nn.Module:
        if weights == PRETRAINED:
            if dropout:
                raise UsageError(f"dropout {dropout:g} with pretrained {self.prefix}:{arg}: use --dropout 0")
            body = self.pretrained(arg, in_shape, num_classes)[0]
        else:
            self.check(arg)
            body = self._make(arg, in_shape, num_classes, dropout)
            if weights is not None:
                sd = read_state_dict(weights)
                try:
                    body.load_state_dict(sd)
                except RuntimeError as e:
                    detail = " ".join(line.strip() for line in str(e).splitlines()[1:3])
                    raise UsageError(f"weights {weights} do not fit {self.prefix}:{arg} with {num_classes} classes "
                                     f"and {in_shape[0]} channel(s): {detail}") from None
        return nn.Sequential(GreyToRGB(), body) if self.grey_to_rgb and in_shape[0] == 1 else body


def _tv_names() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))  # classification models only


def _tv_make(arg, in_shape, num_classes, dropout):
    import torchvision

    if dropout:
        raise UsageError(f"dropout {dropout:g} with model tv:{arg}: torchvision's builders set their own dropout; "
                         "use --dropout 0")
    return torchvision.models.get_model(arg, weights=None, num_classes=num_classes)


def _tv_pretrained(arg, in_shape):
    import torchvision

    w = torchvision.models.get_model_weights(arg).DEFAULT
    t = w.transforms()
    return len(w.meta["categories"]), lambda: (torchvision.models.get_model(arg, weights=w), tuple(t.mean),
                                               tuple(t.std))


def _timm_names() -> list[str]:
    import timm

    return timm.list_models()


def _timm_kwargs(arg, in_shape) -> dict:
    return {"in_chans": in_shape[0], **({"img_size": in_shape[1:]} if "vit" in arg or "deit" in arg else {})}


def _timm_make(arg, in_shape, num_classes, dropout):
    import timm

    return timm.create_model(arg, pretrained=False, num_classes=num_classes, drop_rate=dropout,
                             **_timm_kwargs(arg, in_shape))


def _timm_pretrained(arg, in_shape):
    import timm

    cfg = timm.models.get_pretrained_cfg(arg)
    if cfg is None:
        raise UsageError(f"timm has no pretrained weights for timm:{arg}")

    def load():
        m = timm.create_model(arg, pretrained=True, **_timm_kwargs(arg, in_shape))
        return m, tuple(m.pretrained_cfg["mean"]), tuple(m.pretrained_cfg["std"])

    return cfg.num_classes, load


FAMILIES = {
    "tv": Family("tv", "torchvision", "it is a dependency of this package", _tv_names, _tv_make, _tv_pretrained,
                 grey_to_rgb=True),
    "timm": Family("timm", "timm", "pip install 'robustbench_mix[timm]' (or pip install timm)", _timm_names,
                   _timm_make, _timm_pretrained, grey_to_rgb=False),  # timm takes in_chans
}


def build_model(name: str, *, num_classes: int | None = None, in_shape: tuple[int, int, int] = (3, 224, 224),
                weights=None, normalize: tuple | None = None) -> nn.Module:
    """A torchvision (``tv:NAME``) or timm (``timm:NAME``) model for ``evaluate``, taking pixels in [0, 1].

    ``weights``: None (random initialization), the path of a file holding the library model's own state_dict
    (``torch.save(model.state_dict(), PATH)`` of a torchvision / timm model built with ``num_classes``), or
    ``"pretrained"``: the library's default pretrained weights (downloaded by the library; their class count,
    e.g. ImageNet's 1,000, and their normalization come with them). ``in_shape``: (channels, height, width) of
    the images (a grey image is repeated to three channels for torchvision). ``normalize=(mean, std)`` puts that
    normalization in front (or give it to ``evaluate``)."""
    family, _, arg = name.partition(":")
    if family not in FAMILIES or not arg:
        raise UsageError(f"build_model takes tv:NAME or timm:NAME, got {name!r}; the suite's own models are built by "
                         "the suite (and a checkpoint of one evaluated with python -m robustbench_mix.checkpoint)")
    fam = FAMILIES[family]
    if weights == PRETRAINED:
        body, mean, std = fam.pretrained(arg, in_shape, num_classes)
        if fam.grey_to_rgb and in_shape[0] == 1:
            body = nn.Sequential(GreyToRGB(), body)
        normalize = normalize or (mean, std)
    else:
        if not isinstance(num_classes, int) or num_classes < 2:
            raise UsageError(f"num_classes {num_classes!r}: give the number of classes the model outputs (>= 2)")
        body = fam.build(arg, tuple(in_shape), num_classes, 0.0, weights)
    return nn.Sequential(Normalize(*normalize), body) if normalize is not None else body


def check_model_name(name: str) -> None:
    """The suite's own models, ``tv:NAME`` (torchvision) or ``timm:NAME``; unknown names suggest the closest."""
    family, _, arg = name.partition(":")
    if family in FAMILIES and arg:
        FAMILIES[family].check(arg)
    else:
        MODELS.get(name)


def is_model_name(name: str) -> bool:
    """What a results file may hold in its model column (cheap: no library is imported): also ``user:NAME``,
    the label of a model evaluated through robustbench_mix.evaluate."""
    family, _, arg = name.partition(":")
    labelled = family in FAMILIES or family == "user"
    return name in MODELS or (labelled and re.fullmatch(r"[A-Za-z0-9_.\-]+", arg) is not None)


def check_input(name: str, in_shape: tuple[int, int, int], num_classes: int) -> None:
    """Refuse, before training, a model that cannot take the data's images: one forward of two zero images."""
    model = build(name, in_shape=in_shape, num_classes=num_classes, mean=(0.0,) * in_shape[0],
                  std=(1.0,) * in_shape[0])
    try:
        with torch.no_grad():
            out = model.eval()(torch.zeros(2, *in_shape))
    except (RuntimeError, ValueError, AssertionError, IndexError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise UsageError(f"model {name} cannot take this data's images ({in_shape[0]} channel(s), "
                         f"{in_shape[1]}x{in_shape[2]} pixels): {first}. Pick a model for small images (e.g. "
                         f"preact_resnet18, cnn) or larger images") from None
    if tuple(out.shape) != (2, num_classes):
        raise UsageError(f"model {name} gives outputs of shape {tuple(out.shape)} for 2 images, not (2, {num_classes})")

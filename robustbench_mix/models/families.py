"""Model names beyond the suite's own (tv:NAME, timm:NAME), pretrained weights, and the name checks."""

from __future__ import annotations

import re

import torch
import torch.nn as nn

from robustbench_mix.core.errors import UsageError
from robustbench_mix.core.registry import unknown
from robustbench_mix.core.torchfile import read_state_dict
from robustbench_mix.models.base import MIX_POINTS, MODELS, Normalize


# ------------------------------------------------------------------------------------ other libraries' models
class GreyToRGB(nn.Module):
    """Repeats one grey channel three times, for models built for RGB (torchvision's)."""

    def forward(self, x):
        return x.expand(-1, 3, -1, -1)


PRETRAINED = "pretrained"


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
    # a plugin's model may take the [0, 1] images as they are (plugins.register_model): an identity in front
    unit = not (family in FAMILIES and arg) and getattr(MODELS.get(name), "unit_inputs", False)
    model = nn.Sequential(nn.Identity() if unit else Normalize(mean, std), body)
    model.mix_points = MIX_POINTS.get(name, ())
    return model


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

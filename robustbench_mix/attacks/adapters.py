"""torchattacks' attacks as ``ta:NAME``, in the suite's calling convention."""

from __future__ import annotations

import inspect

import torch

from robustbench_mix.core.errors import UsageError


def torchattacks_class(name: str):
    try:
        import torchattacks
    except ImportError:
        raise UsageError(f"attack 'ta:{name}' needs torchattacks: pip install 'robustbench_mix[torchattacks]' "
                         "(optional because torchattacks 3.5.1 pins requests~=2.25.1)") from None
    cls = getattr(torchattacks, name, None)
    if not (inspect.isclass(cls) and issubclass(cls, torchattacks.attack.Attack)):
        known = sorted(n for n, c in vars(torchattacks).items()
                       if inspect.isclass(c) and issubclass(c, torchattacks.attack.Attack) and n != "Attack")
        from robustbench_mix.core.registry import unknown
        raise UsageError(unknown("torchattacks attack", name, known))
    return cls


def _torchattacks_fn(name: str):
    def run(model, x, y, eps, steps=10, step_size=None, loss="ce"):
        cls = torchattacks_class(name)
        params = inspect.signature(cls).parameters
        kw = {"eps": eps, "steps": steps, "alpha": step_size, "n_classes": None}
        if "n_classes" in params:
            with torch.no_grad():
                kw["n_classes"] = model(x[:1]).shape[1]
        kw = {k: v for k, v in kw.items() if k in params and v is not None}
        return cls(model, **kw)(x, y).detach()

    return run

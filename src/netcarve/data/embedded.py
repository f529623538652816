"""Embedded offline datasets bundled with scikit-learn: digits (the default), wine, breast-cancer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sklearn import datasets as skd

from netcarve.data.base import DATASETS, DataOptions, DatasetInfo, TensorSplits, process

#: Recommended training settings: SGD (momentum 0.9) in small batches. On these few hundred rows Adam
#: at lr 1e-3 / batch 256 trains for only a few dozen steps, and the registered MLPs whose logits pass
#: through a final ReLU (jsc-three-linear-layers) lose whole classes to dead logits under Adam at any
#: rate tried; SGD at lr 0.03 in batches of 16 brings every model with a hidden layer to >= 90 % on digits.
_SMALL_SET: dict[str, Any] = {"batch_size": 16, "learning_rate": 0.03, "training_optimizer": "sgd"}

_LOADERS: dict[str, tuple[Callable[..., object], str, dict[str, Any]]] = {
    "digits": (
        skd.load_digits,
        "8x8 handwritten digits, 1797 x 64, 10 classes (the embedded default)",
        {"max_epochs": 40, **_SMALL_SET},
    ),
    "wine": (skd.load_wine, "wine cultivars, 178 x 13, 3 classes", {"max_epochs": 100, **_SMALL_SET}),
    "breast-cancer": (
        skd.load_breast_cancer,
        "breast cancer Wisconsin, 569 x 30, 2 classes",
        {"max_epochs": 40, **_SMALL_SET},
    ),
}


def _make(name: str, loader: Callable[..., object]) -> Callable[[DataOptions], TensorSplits]:
    def build(options: DataOptions) -> TensorSplits:
        bunch = loader()
        x, y = bunch.data, bunch.target  # type: ignore[attr-defined]
        names = tuple(str(n) for n in getattr(bunch, "target_names", range(int(y.max()) + 1)))
        features = tuple(str(f) for f in getattr(bunch, "feature_names", ()))
        info = DatasetInfo(name, int(x.shape[1]), len(names), names, features)
        return process(x, y, info, source=f"scikit-learn {name}")

    build.__doc__ = _LOADERS[name][1]
    return build


for _name, (_loader, _doc, _defaults) in _LOADERS.items():
    DATASETS.add(_name, _make(_name, _loader), description=_doc, defaults=_defaults)

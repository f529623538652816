"""Embedded offline datasets bundled with scikit-learn: digits (the default), wine, breast-cancer."""

from __future__ import annotations

from collections.abc import Callable

from sklearn import datasets as skd

from netcarve.data.base import DATASETS, DataOptions, DatasetInfo, TensorSplits, process

_LOADERS: dict[str, tuple[Callable[..., object], str]] = {
    "digits": (skd.load_digits, "8x8 handwritten digits, 1797 x 64, 10 classes (the embedded default)"),
    "wine": (skd.load_wine, "wine cultivars, 178 x 13, 3 classes"),
    "breast-cancer": (skd.load_breast_cancer, "breast cancer Wisconsin, 569 x 30, 2 classes"),
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


for _name, (_loader, _doc) in _LOADERS.items():
    DATASETS.add(_name, _make(_name, _loader), description=_doc)

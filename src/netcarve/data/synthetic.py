"""``synthetic-jsc``: a seeded generated set with the JSC schema, for tests and benchmarks only."""

from __future__ import annotations

import numpy as np

from netcarve.data.base import DATASETS, DataOptions, TensorSplits, process
from netcarve.data.jsc import JSC_TRAINING_DEFAULTS
from netcarve.data.jsc_schema import CLASS_COLUMN, CLASSES, FEATURES, jsc_info

DEFAULT_SIZE = 20_000
#: class frequencies roughly as in the real JSC set
_PRIORS = np.array([0.2, 0.2, 0.2, 0.2, 0.2])


def synthetic_jsc_columns(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` rows of JSC-schema columns: 16 float features and a ``class`` column of g/q/w/z/t.

    Each class is a Gaussian cluster in a random 6-d latent space mapped non-linearly to 16 features,
    so the task is learnable but not separable (a small MLP reaches roughly 70–80 %, like real JSC).
    """
    rng = np.random.default_rng(seed)
    k, latent = len(CLASSES), 6
    centers = rng.normal(0.0, 1.1, size=(k, latent))
    mixing = rng.normal(0.0, 1.0, size=(latent, len(FEATURES)))
    y = rng.choice(k, size=n, p=_PRIORS)
    z = centers[y] + rng.normal(0.0, 1.0, size=(n, latent))
    x = z @ mixing
    x[:, 0] = np.tanh(x[:, 0])
    x[:, 14] = np.abs(x[:, 14]) * 20.0 + 10.0  # mass-like, positive
    x[:, 15] = np.round(np.exp(0.3 * x[:, 15]).clip(0, 20) * 3.0 + 5.0)  # multiplicity-like, integer
    x[:, 1:14] += 0.3 * rng.normal(size=(n, 13))
    columns = {name: x[:, i].astype(np.float32) for i, name in enumerate(FEATURES)}
    columns[CLASS_COLUMN] = np.array(CLASSES)[y]
    return columns


@DATASETS.register(
    "synthetic-jsc",
    description="generated set with the JSC schema (16 features, 5 classes); 'synthetic-jsc:N' rows",
    defaults=JSC_TRAINING_DEFAULTS,
)
def build_synthetic_jsc(options: DataOptions) -> TensorSplits:
    from netcarve.data.jsc_schema import arrays_from_columns

    n = options.size or DEFAULT_SIZE
    x, y = arrays_from_columns(synthetic_jsc_columns(n, seed=0), "synthetic-jsc")
    return process(x, y, jsc_info("synthetic-jsc"), source=f"synthetic-jsc ({n} rows, seed 0)")

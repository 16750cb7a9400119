import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("default", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def relu_features(rng, shape, scale=4.0):
    """Smooth ReLU-like features (about half zeros), N x C x H x W float32."""
    n, c, h, w = shape
    noise = rng.standard_normal((n, c, h + 2, w + 2))
    smooth = (noise[:, :, :-2, :-2] + noise[:, :, 1:-1, 1:-1] + noise[:, :, 2:, 2:]) / 3
    return np.maximum(smooth * scale, 0).astype(np.float32)

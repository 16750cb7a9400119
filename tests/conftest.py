import importlib.util
import os
import sys
from pathlib import Path

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


def load_tool(filename: str, module_name: str):
    """A script of tools/ imported as a module (registered as ``module_name``)."""
    path = Path(__file__).resolve().parents[1] / "tools" / filename
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module

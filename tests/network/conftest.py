"""Shared fixtures of the network tests: models imported through Relax (they need the
``tvm`` and ``models`` extras) and a quantized ResNet-18, built once per session."""
from __future__ import annotations

import numpy as np
import pytest


def seeded_inputs(shape, n: int, seed: int) -> list[np.ndarray]:
    """``n`` standard-normal float32 arrays of ``shape`` from one seeded generator."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(n)]


@pytest.fixture(scope="session")
def load(require_extra):
    """``frontend.load_graph``, once apache-tvm and torch are known to be installed."""
    require_extra("tvm", "tvm")
    require_extra("torch", "models")
    from vtatune.network.frontend import load_graph
    return load_graph


@pytest.fixture(scope="session")
def resnet18(load):
    """(float graph, example inputs, torch output) of resnet18 at res 32."""
    return load("resnet18:res=32")


@pytest.fixture(scope="session")
def resnet18_q(resnet18):
    """(quantized graph, calibration inputs): 4 seeded inputs (seed 1)."""
    from vtatune.network.quantize import quantize

    graph, inputs, _ = resnet18
    cal = seeded_inputs(inputs[0].shape, 4, seed=1)
    return quantize(graph, cal), cal

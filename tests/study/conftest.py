"""Every test here needs the validity extra (scikit-learn, scipy) and xgboost: skipped with the
install hint outside CI, failed under CI (tests/conftest.py)."""
import pathlib

import pytest

HERE = pathlib.Path(__file__).parent
NEEDS = [("sklearn", "validity"), ("scipy", "validity"), ("xgboost", "tune"), ("matplotlib", "viz")]


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in pathlib.Path(item.path).parents:
            for module, extra in NEEDS:
                item.add_marker(pytest.mark.requires(module, extra))

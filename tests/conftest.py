import pathlib

import pytest

DATA = pathlib.Path(__file__).parent / "data"


@pytest.fixture
def ref_dir() -> pathlib.Path:
    return DATA / "reference-programs"

"""VTA hardware model: configurations and the bit-exact instruction set."""
from .config import DEFAULT_NAME, HwConfig, shipped_configs

__all__ = ["DEFAULT_NAME", "HwConfig", "shipped_configs"]

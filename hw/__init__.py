"""Shipped VTA hardware configurations (installed as the ``vtatune._hw`` package)."""

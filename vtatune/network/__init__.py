"""Whole networks on VTA: a model imported through Relax, quantized to int8 with power-of-two
scales, partitioned (VTA convolutions, the rest on the CPU) and deployed (docs/deploy.md)."""

"""Secondary backends: tuning generic CPU/GPU kernels on the installable apache-tvm.

Every backend writes the same tuning-record database as the VTA tuner (``vtatune.db``).
"""

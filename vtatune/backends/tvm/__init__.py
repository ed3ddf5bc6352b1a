"""The apache-tvm backend: model import (Relax), MetaSchedule tuning on llvm/cuda through the
vtatune database, transfer-tuning, and end-to-end runs.

Needs the ``tvm`` extra (``pip install 'vtatune[tvm]'``); model import from PyTorch/ONNX
needs the ``models`` extra.  Nothing here is imported by the VTA core.  See docs/tvm.md.
"""

"""Test setup: 8 emulated CPU devices for pmap/sharding tests.

XLA_FLAGS must be set before jax is imported anywhere in the process.
"""

import os

_flag = "--xla_force_host_platform_device_count=8"
if _flag not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")
# XLA already uses both cores; multi-threaded OpenBLAS next to it oversubscribes
# them (NumPy/SciPy SVDs ran 10-100x slower under load).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

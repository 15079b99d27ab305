"""Test-wide settings: one thread per process, and no hub access whatsoever."""

import os

# Before torch or OpenCV are imported: on 2 shared cores one thread is many times faster.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

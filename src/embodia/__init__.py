"""embodia: physical agents on robot foundation models, from a laptop CPU to real arms."""

import os

# MuJoCo picks its GL backend at import time; headless EGL is the only one that works on a server or CI
# machine with no display. Respect an explicit choice.
os.environ.setdefault("MUJOCO_GL", "egl")
# SVT-AV1 (the dataset video encoder) prints its configuration banner to stderr at every episode;
# keep only its errors.
os.environ.setdefault("SVT_LOG", "1")

__version__ = "0.1.0"

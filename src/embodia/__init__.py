"""embodia: physical agents on robot foundation models, from a laptop CPU to real arms."""

import os

# MuJoCo picks its GL backend at import time; headless EGL is the only one that works on a server or CI
# machine with no display. Respect an explicit choice.
os.environ.setdefault("MUJOCO_GL", "egl")

__version__ = "0.1.0"

import os

# MuJoCo chooses its GL backend when first imported; tests that import mujoco before embodia must
# still render headless.
os.environ.setdefault("MUJOCO_GL", "egl")

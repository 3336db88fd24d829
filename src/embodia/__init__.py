"""embodia: physical agents on robot foundation models, from a laptop CPU to real arms."""

import os

# MuJoCo picks its GL backend at import time; headless EGL is the only one that works on a server or CI
# machine with no display. Respect an explicit choice.
os.environ.setdefault("MUJOCO_GL", "egl")
# SVT-AV1 (the dataset video encoder) prints its configuration banner to stderr at every episode;
# keep only its errors.
os.environ.setdefault("SVT_LOG", "1")

__version__ = "0.1.0"


def __getattr__(name: str):
    # `embodia.Client` without making `import embodia` load the client's dependencies.
    if name == "Client":
        from embodia.serve.client import Client

        return Client
    raise AttributeError(f"module 'embodia' has no attribute {name!r}")

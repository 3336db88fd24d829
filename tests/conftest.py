import os

# MuJoCo chooses its GL backend when first imported; tests that import mujoco before embodia must
# still render headless.
os.environ.setdefault("MUJOCO_GL", "egl")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

TINY_DATASET = Path(__file__).parent / "fixtures" / "so101_tabletop_tiny"


@pytest.fixture(scope="session")
def tiny_policy_dir(tmp_path_factory) -> Path:
    """A tiny VLA trained for a few steps on the committed fixture: a real checkpoint folder for tests
    of its consumers (demo, run, eval, server); its quality is irrelevant."""
    from embodia.train.config import preset
    from embodia.train.loop import train

    root = tmp_path_factory.mktemp("tiny_policy")
    cfg = preset("tiny", datasets=[str(TINY_DATASET)], cache_dir=str(root / "cache"), steps=4)
    return train(cfg, root / "run")

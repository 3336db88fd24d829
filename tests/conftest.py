import json
import os
import subprocess

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


# ------------------------------------------------------------------------------ LeRobot's own code
LEROBOT_BUILDER = Path(__file__).parent / "in_lerobot_env" / "make_tiny_policies.py"
LEROBOT_TYPES = ("act", "act_ensemble", "diffusion", "smolvla", "xvla")


@pytest.fixture(scope="session")
def lerobot_python() -> Path:
    """The LeRobot environment's interpreter (`embodia lerobot setup`; CI builds it once per run). Tests
    that need it skip without it here, and fail in CI, so a missing environment cannot pass there."""
    from embodia.policy.lerobot_policy import LeRobotEnvError, env_python

    try:
        return env_python()
    except LeRobotEnvError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the LeRobot tests: {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def lerobot_policies(lerobot_python, tmp_path_factory) -> dict[str, Path]:
    """Tiny, randomly initialised LeRobot policies built and saved by LeRobot's own classes and
    processors (tests/in_lerobot_env/make_tiny_policies.py), for the tabletop's two 96 px cameras; and an ACT
    whose statistics are in LeRobot's degrees ('act_degrees')."""
    import subprocess

    root = tmp_path_factory.mktemp("lerobot_policies")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = [str(lerobot_python), "-I", str(LEROBOT_BUILDER)]
    subprocess.run([*run, str(root), "--types", ",".join(LEROBOT_TYPES)], check=True, env=env,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    subprocess.run([*run, str(root / "degrees"), "--types", "act", "--stats", "degrees"], check=True, env=env,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    folders = {t: root / t for t in LEROBOT_TYPES}
    folders["act_degrees"] = root / "degrees" / "act"
    return folders


# ------------------------------------------------------------------------------ cameras without cameras
@pytest.fixture
def camera_files(tmp_path) -> str:
    """`--cameras` for two short MJPG videos standing in for a front and a wrist camera (OpenCV reads a
    video file like a device)."""
    cv2 = pytest.importorskip("cv2", reason="OpenCV comes with the dev extra")
    import numpy as np

    def video(path, color) -> str:
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (128, 96))
        for k in range(30):
            img = np.full((96, 128, 3), color, np.uint8)
            img[:, (4 * k) % 128] = 255  # a moving line
            writer.write(img)
        writer.release()
        return str(path)

    return (
        f"front={video(tmp_path / 'f.avi', (40, 80, 120))},wrist={video(tmp_path / 'w.avi', (120, 80, 40))}"
    )


@pytest.fixture
def task_registry():
    """The task families a test's task files add are removed after it: each test starts from the
    built-in families and leaves them so."""
    from embodia.sim import task_files
    from embodia.sim.tasks import FAMILIES

    families, loaded = dict(FAMILIES), dict(task_files._LOADED)
    yield
    FAMILIES.clear()
    FAMILIES.update(families)
    task_files._LOADED.clear()
    task_files._LOADED.update(loaded)


@pytest.fixture
def lerobot_loads(lerobot_python):
    """lerobot_loads(root): LeRobot 0.4.4's own LeRobotDataset (in its environment, offline) opens the
    dataset at `root`: its episode and frame counts, and the last frame's front-camera shape, task and
    next.success (None where it has none)."""
    return lambda root: _lerobot_loads(lerobot_python, root)


def _lerobot_loads(python, root) -> dict:
    script = (
        "import sys, json\n"
        "from lerobot.datasets.lerobot_dataset import LeRobotDataset\n"
        "ds = LeRobotDataset('local/dataset', root=sys.argv[1], video_backend='pyav')\n"
        "last = ds[len(ds) - 1]\n"
        "ok = last.get('next.success')\n"
        "print(json.dumps({'episodes': ds.num_episodes, 'frames': len(ds), 'front': list(last['observation.images.front'].shape),"
        " 'task': last['task'], 'success': None if ok is None else bool(ok)}))\n"
    )
    out = subprocess.run([str(python), "-I", "-c", script, str(root)], capture_output=True, text=True, timeout=300,
                         env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------ a real Ray cluster
def pytest_configure(config):
    """CI runs the Ray tests (embodia[dev] brings Ray); elsewhere their modules skip without it."""
    import importlib.util

    if os.environ.get("CI") and importlib.util.find_spec("ray") is None:
        raise pytest.UsageError("CI must run the Ray tests: install embodia[dev] (it brings ray)")


@pytest.fixture(scope="module")
def ray_cluster():
    """A real Ray cluster of two nodes on this machine (`ray.cluster_utils.Cluster`, not a mock): a head
    with no CPUs and two nodes of one CPU each, so two one-CPU actors run on different nodes, as on a
    real cluster. Ray is connected to it for the module's tests; (cluster, [node, node])."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    mib = 1024**2
    c = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "object_store_memory": 80 * mib, "include_dashboard": False},
    )
    nodes = [c.add_node(num_cpus=1, object_store_memory=80 * mib) for _ in range(2)]
    ray.init(address=c.address, log_to_driver=False)
    c.wait_for_nodes()
    yield c, nodes
    ray.shutdown()
    c.shutdown()

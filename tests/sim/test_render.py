"""embodia.sim.render: environments that are never closed still exit cleanly (issue 25, item 8).

Each snippet runs in a fresh interpreter, because the failure happens at interpreter shutdown: a
renderer freed after `mujoco.egl`'s atexit `eglTerminate` printed "Exception ignored ... EGLError"."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SNIPPETS = {
    # The report: no `import embodia` first, no close(). (Whether the old code failed depended
    # on the order in which shutdown freed objects: this one did, the README's full snippet did not.)
    "tabletop": """
        from embodia.sim.tabletop import TabletopEnv
        env = TabletopEnv()
        env.reset()
    """,
    # The README's quick tour, without close().
    "quick tour": """
        from embodia.sim.tabletop import TabletopEnv
        env = TabletopEnv()
        obs, info = env.reset(seed=0, options={"task": "put the red block in the bowl"})
        obs, reward, terminated, truncated, info = env.step(env.expert_action())
        assert obs["observation.images.front"].any()
    """,
    "gymnasium.make": """
        import gymnasium
        import embodia.sim
        env = gymnasium.make("embodia/SO101Tabletop-v0")
        obs, info = env.reset(seed=0)
        assert obs["observation.images.front"].any()
    """,
    "metaworld": """
        import gymnasium
        import embodia.sim
        env = gymnasium.make("embodia/MetaWorld-v0", task="drawer-open")
        obs, info = env.reset(seed=0)
        assert obs["observation.images.corner2"].any()
    """,
    # Workers in subprocesses and one in-process env, none of them closed.
    "vector": """
        from embodia.sim.tabletop import TabletopEnv
        from embodia.sim.vector import VectorRunner
        if __name__ == "__main__":
            runner = VectorRunner([TabletopEnv, TabletopEnv], timeout_s=300)
            assert len(runner.reset([0, 1])) == 2
            local = VectorRunner([TabletopEnv], in_process=True)
            assert len(local.reset([2])) == 1
    """,
}


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    script = tmp_path / "snippet.py"
    script.write_text(textwrap.dedent(code))
    env = {**os.environ, "MUJOCO_GL": "egl"}
    return subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def egl_works(tmp_path_factory: pytest.TempPathFactory) -> None:
    probe = """
        import mujoco
        mujoco.Renderer(mujoco.MjModel.from_xml_string("<mujoco/>"), 8, 8).close()
    """
    res = _run(probe, tmp_path_factory.mktemp("probe"))
    if res.returncode != 0:
        pytest.skip(f"EGL cannot be initialised on this machine: {res.stderr.strip().splitlines()[-1:]}")


@pytest.mark.parametrize("name", list(SNIPPETS))
def test_unclosed_envs_exit_cleanly(name: str, tmp_path: Path, egl_works: None) -> None:
    res = _run(SNIPPETS[name], tmp_path)
    assert res.returncode == 0, res.stderr
    for marker in ("Traceback", "EGLError", "Exception ignored"):
        assert marker not in res.stderr, res.stderr


def test_close_live_renderers_closes_each_once(egl_works: None) -> None:
    import mujoco

    from embodia.sim.render import close_live_renderers, make_renderer

    close_live_renderers()  # renderers other tests left open in this process
    model = mujoco.MjModel.from_xml_string("<mujoco/>")
    kept = make_renderer(model, 8, 8)
    assert kept.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] == 0
    closed = make_renderer(model, 8, 8, fast=False)
    assert closed.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] == 1
    closed.close()
    assert close_live_renderers() == 2  # a renderer closed by its owner is closed again harmlessly
    assert kept._gl_context is None and kept._mjr_context is None
    assert close_live_renderers() == 0
    kept.close()  # what the owner's close or __del__ does afterwards: nothing

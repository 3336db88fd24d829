"""Offscreen MuJoCo renderers that are freed while their GL backend is still alive.

With MUJOCO_GL=egl, `mujoco.egl` registers `eglTerminate` with `atexit` when the first GL context is
made. A `mujoco.Renderer` that is still alive at exit (an environment that was never closed, e.g.
`env = TabletopEnv(); env.reset()` at the top of a script, or anything `gymnasium.make` returns) is
then freed by its `__del__` during interpreter shutdown, after the display was terminated: its
`eglDestroyContext` fails and Python prints "Exception ignored ... EGLError" tracebacks on every exit.

`make_renderer` keeps a weak reference to each renderer it makes and, right after the first one exists
(so after `mujoco.egl` registered `eglTerminate`), registers an `atexit` hook that closes the ones
still alive. `atexit` runs hooks last-registered first, so they are closed before the display goes.
(`weakref.finalize` would not do: its single exit hook is registered by the process's first finalizer,
typically long before EGL's, and so runs after `eglTerminate`.)
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import weakref

import mujoco

# Shadows, reflections and the skybox cost most on a CPU rasteriser (~3x together); embodia's cameras
# render without them.
FAST_RENDER_OFF = (
    mujoco.mjtRndFlag.mjRND_SHADOW,
    mujoco.mjtRndFlag.mjRND_REFLECTION,
    mujoco.mjtRndFlag.mjRND_SKYBOX,
)

_LIVE: weakref.WeakSet[mujoco.Renderer] = weakref.WeakSet()
_lock = threading.Lock()
_hooked = False


def make_renderer(model: mujoco.MjModel, height: int, width: int, *, fast: bool = True) -> mujoco.Renderer:
    """A `mujoco.Renderer` that is closed at interpreter exit before the GL display is terminated, if
    its owner has not closed it by then. `fast` turns shadows, reflections and the skybox off."""
    global _hooked
    renderer = mujoco.Renderer(model, height, width)
    if fast:
        for flag in FAST_RENDER_OFF:
            renderer.scene.flags[flag] = 0
    with _lock:
        _LIVE.add(renderer)
        if not _hooked:
            atexit.register(close_live_renderers)
            _hooked = True
    return renderer


def close_live_renderers() -> int:
    """Close every renderer `make_renderer` made that is still open; returns how many were closed.
    Runs at exit; closing one again later (its owner's close or `__del__`) does nothing."""
    with _lock:
        live = list(_LIVE)
        _LIVE.clear()
    for renderer in live:
        # At exit, one context that fails to go must not keep the others open.
        with contextlib.suppress(Exception):
            renderer.close()
    return len(live)

"""The teleoperation page's figures on this machine: key-press-to-motion latency and the frame rate each
camera streams to the page, with the physics at 30 Hz.

    python benchmarks/teleop_page.py [--presses 20] [--seconds 20]

Runs `embodia teleop --sim`'s session and page in this process and opens the page in Debian's Chromium
(Playwright). Latency: a keydown of W in the page (its time stamped with performance.now()), then the page
polls /api/teleop until the simulated gripper (the scene's grasp point, not the command) has moved 0.3 mm:
key event -> POST -> the next control tick -> physics -> the state a client reads. The poll adds up to
its 5 ms period. Frame rate: the MJPEG frames the server sent the page's two <img> streams over
`--seconds`, while the arm is driven back and forth. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np

LATENCY_JS = """async () => {
  const tool = async () => (await (await fetch('/api/teleop')).json()).scene.tool;
  const p0 = await tool();
  const t0 = performance.now();
  window.dispatchEvent(new KeyboardEvent('keydown', {key: 'w'}));
  for (;;) {
    const p = await tool();
    if (Math.hypot(p[0] - p0[0], p[1] - p0[1], p[2] - p0[2]) > 0.0003) {
      window.dispatchEvent(new KeyboardEvent('keyup', {key: 'w'}));
      return performance.now() - t0;
    }
    await new Promise(r => setTimeout(r, 5));
  }
}"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--presses", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from embodia.data.sim_teleop import SimTeleop, SimTeleopConfig
    from embodia.view.live import LiveFeed
    from embodia.view.viewer import running_viewer

    feed = LiveFeed("teleoperation")
    with (
        tempfile.TemporaryDirectory() as tmp,
        SimTeleop(SimTeleopConfig(task="pick")) as session,
        session.running(on_tick=lambda s: feed.publish(s.view_frames, s.leader.q)),
        running_viewer(tmp, port=0, live=feed, teleop=session) as url,
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        page = browser.new_page()
        page.goto(url)
        page.wait_for_function("document.body.dataset.ready === '1'")
        page.wait_for_function(
            "() => [...document.querySelectorAll('img.live')].every(i => i.naturalWidth > 0)"
        )
        lat = []
        for i in range(args.presses):
            if i % 5 == 0:
                session.new_scene()
                time.sleep(0.5)
            lat.append(page.evaluate(LATENCY_JS))
            time.sleep(0.6)  # the command ramps down and goes stale
        served0, t0, ticks0 = dict(feed.served), time.monotonic(), session.ticks
        session.rate.restart()
        while time.monotonic() - t0 < args.seconds:
            for key in ("a", "d"):
                page.keyboard.down(key)
                time.sleep(1.0)
                page.keyboard.up(key)
        dt = time.monotonic() - t0
        fps = {
            cam: round((feed.served.get(cam, 0) - served0.get(cam, 0)) / dt, 1) for cam in ("front", "wrist")
        }
        timing = session.rate.stats()
        browser.close()
    lat_ms = np.asarray(lat)
    print(json.dumps({"latency_ms": {"median": round(float(np.median(lat_ms)), 1),
                                     "p90": round(float(np.percentile(lat_ms, 90)), 1),
                                     "max": round(float(lat_ms.max()), 1), "presses": len(lat)},
                      "frames_per_s": fps, "seconds": round(dt, 1),
                      "physics_ticks_per_s": round((session.ticks - ticks0) / dt, 1),
                      "loop": {k: timing[k] for k in ("ticks", "ticks_missed", "lateness_ms_p99")},
                      "view_size": session.cfg.view_size}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()

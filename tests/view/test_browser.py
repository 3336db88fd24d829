"""Real-browser tests: Playwright drives Debian's Chromium (headless) through `embodia view` and the HTML
reports written by `doctor data`, `eval` and `demo`.

Each check loads a page, waits for its videos to reach readyState >= 2 (a decoded frame: the AV1 dataset
videos and the H.264 rollouts both play), checks that its plots hold ink (canvas pixels, or <img> with a
decoded PNG), and fails on any console error or uncaught exception. Screenshots go to $EMBODIA_SCREENSHOTS
(default: a pytest temporary folder, printed) as view_*.png and report_*.png.

The browser is the system's (/usr/bin/chromium, installed by .ci/run with apt; override with
$EMBODIA_CHROMIUM); Playwright never downloads one. Without playwright or Chromium the module is skipped
locally, but fails under CI (the CI variable set), so a broken CI image cannot pass silently.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("EMBODIA_CHROMIUM", "/usr/bin/chromium"))


def _missing() -> list[str]:
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -e '.[dev]')")
    if not CHROMIUM.exists():
        missing.append(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    return missing


MISSING = _missing()
if MISSING and not os.environ.get("CI"):
    pytest.skip("browser tests need " + " and ".join(MISSING), allow_module_level=True)
try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright
except ImportError:  # only reached under CI, where _require_browser fails every test
    PlaywrightTimeout = sync_playwright = None

from viewer_outputs import copy_dataset, make_eval  # noqa: E402

from embodia.cli import main  # noqa: E402

TIMEOUT_MS = 20_000  # a loaded 2-core CI machine decodes slowly; a healthy page is ready in well under 1 s


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def _require_browser():
    """Under CI a missing browser fails each test here (a collection error would stop the whole suite)."""
    if MISSING:
        pytest.fail(f"browser tests need {' and '.join(MISSING)}; CI is set, so this fails", pytrace=False)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """A folder as embodia commands leave it: a dataset and its data-doctor output (the real CLI), an
    eval output (a hold-still policy), a training run (24 steps, logged every step) and a demo by that
    run's final policy (the real CLI, 8 steps)."""
    from embodia.train.config import preset
    from embodia.train.loop import train

    base = tmp_path_factory.mktemp("browser")
    root = base / "served"
    ds = copy_dataset(root / "datasets" / "tiny")
    out = {"root": root, "doctor": root / "embodia_runs" / "doctor" / "d1"}
    assert main(["doctor", "data", str(ds), "--out", str(out["doctor"])]) == 0
    out["eval"] = make_eval(root / "embodia_runs" / "eval" / "e1")
    cfg = preset(
        "tiny", datasets=[str(ds)], cache_dir=str(base / "cache"), steps=24, log_every=1, save_every=8
    )
    final = train(cfg, root / "embodia_runs" / "train" / "t1")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # the demo writes ./embodia_runs/demo/<time>-vla/ like every command
        assert (
            main(
                [
                    "demo",
                    "--checkpoint",
                    str(final),
                    "--family",
                    "pick",
                    "--max-steps",
                    "8",
                    "--episodes",
                    "2",
                ]
            )
            == 0
        )
    (out["demo"],) = (root / "embodia_runs" / "demo").iterdir()
    return out


@pytest.fixture(scope="module")
def base_url(outputs):
    """The viewer over the outputs folder, served by uvicorn in a thread on a free loopback port."""
    import uvicorn

    from embodia.view.viewer import _bind, create_viewer_app

    sock = _bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_viewer_app(outputs["root"]), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        thread.join(0.05)
    assert server.started, "the viewer did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = Path(os.environ.get("EMBODIA_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {folder}")
    return folder


@pytest.fixture
def page(browser):
    """A fresh page; `page.errors` collects console errors and uncaught exceptions."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    pg.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    pg.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    pg.errors = errors
    yield pg
    context.close()


# ---------------------------------------------------------------------------------------------- helpers


def wait_videos(page, count: int) -> list[dict]:
    """Wait until at least `count` videos exist and every one has a decoded frame (readyState >= 2)."""
    states = "() => [...document.querySelectorAll('video')].map(v => ({ready: v.readyState, t: v.currentTime, " \
             "w: v.videoWidth, error: v.error && v.error.code, src: v.currentSrc}))"  # fmt: skip
    try:
        page.wait_for_function(
            "n => { const v = [...document.querySelectorAll('video')];"
            " return v.length >= n && v.every(x => x.readyState >= 2); }",
            arg=count,
        )
    except PlaywrightTimeout:
        pytest.fail(f"videos not ready (MediaError 4 = format not supported): {page.evaluate(states)}")
    found = page.evaluate(states)
    assert all(v["w"] > 0 for v in found), found
    return found


def canvas_ink(page, selector: str) -> list[int]:
    """Non-white pixels of each canvas matching `selector` (a drawn plot has thousands)."""
    return page.evaluate(
        """sel => [...document.querySelectorAll(sel)].map(c => {
             const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
             let n = 0;
             for (let i = 0; i < d.length; i += 4) if (d[i] < 235 || d[i + 1] < 235 || d[i + 2] < 235) n++;
             return n; })""",
        selector,
    )


def cursor_x(page, selector: str) -> float:
    """Mean x (canvas pixels) of the red cursor line in the first canvas matching `selector`."""
    return page.evaluate(
        """sel => { const c = document.querySelector(sel), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
             let sx = 0, n = 0;
             for (let i = 0; i < d.length; i += 4) if (d[i] > 190 && d[i + 1] < 40 && d[i + 2] < 40) { sx += (i / 4) % c.width; n++; }
             return n ? sx / n : -1; }""",
        selector,
    )


def open_view(page, url: str) -> None:
    page.goto(url)
    page.wait_for_function("document.body.dataset.ready === '1'")
    assert page.locator("#error").is_hidden(), page.locator("#error").text_content()


# ---------------------------------------------------------------------------------------------- views


def test_index_lists_every_output(page, base_url, shots):
    open_view(page, base_url + "/")
    text = page.locator("main").inner_text()
    # The demo is an evaluation too (seeds 0..N-1, its own results.json): listed beside the eval.
    for words in ("Datasets (1)", "Evaluations (2)", "Training runs (1)", "datasets/tiny", "embodia_runs/eval/e1",
                  "embodia_runs/demo/", "embodia_runs/train/t1", "touch,pick"):  # fmt: skip
        assert words in text
    assert page.locator("a[href^='/files/'][href$='report.html']").count() == 3  # doctor, eval, demo
    page.screenshot(path=str(shots / "view_index.png"), full_page=True)
    page.click("text=datasets/tiny")
    page.wait_for_function("document.body.dataset.view === 'dataset' && document.body.dataset.ready === '1'")
    assert page.locator("#episode h2").text_content() == "Episode 0"
    assert page.errors == []


def test_dataset_view_plays_episodes_in_sync_with_plots(page, base_url, shots):
    open_view(page, base_url + "/#/dataset?path=datasets/tiny")
    rows = page.locator(".episodes tbody tr")
    assert rows.count() == 5
    assert "place the purple block onto the red block" in rows.nth(3).inner_text()
    assert "Data doctor:" in page.locator("main").inner_text()
    assert page.locator("main .badge.PASS").count() >= 1  # the real doctor passes the clean fixture
    videos = wait_videos(page, 2)
    assert all(0 <= v["t"] < 80 / 30 for v in videos)  # episode 0 starts the shared mp4s

    rows.nth(3).click()  # episode 3: frames 289..425 of both cameras' shared files
    # The click re-renders the view (its URL is #/dataset?...&episode=3): wait for the new episode.
    page.wait_for_function("(document.body.dataset.rendered || '').endsWith('episode=3')")
    assert page.locator("#episode h2").text_content() == "Episode 3"
    page.wait_for_function(
        "[...document.querySelectorAll('video')].length === 2 && "
        "[...document.querySelectorAll('video')].every(v => v.readyState >= 2 && v.currentTime > 9.6)"
    )
    videos = wait_videos(page, 2)
    assert all(289 / 30 <= v["t"] < 290 / 30 for v in videos), videos
    ink = canvas_ink(page, "canvas.plot")
    assert len(ink) == 2 and min(ink) > 2000, ink  # state and action, 6 joints each
    x0 = cursor_x(page, "canvas[data-series=state]")
    assert x0 > 0

    page.click("button:has-text('play')")
    page.wait_for_function(
        "parseInt(document.querySelector('.controls .muted').textContent.split(' ')[1]) >= 20"
    )
    page.click("button:has-text('pause')")
    page.wait_for_timeout(100)
    label = page.locator(".controls .muted").text_content()
    frame = int(label.split()[1])
    assert 20 <= frame < 137, label
    t_front, t_wrist = page.evaluate("[...document.querySelectorAll('video')].map(v => v.currentTime)")
    assert 289 / 30 <= t_front <= 426 / 30 and abs(t_front - t_wrist) < 0.1  # cameras on one clock
    assert frame == int((t_front - 289 / 30) * 30 + 1e-6)  # the label (and cursor) follow currentTime
    x1 = cursor_x(page, "canvas[data-series=state]")
    assert x1 > x0 + 20, (x0, x1)  # the cursor moved right with the video
    page.screenshot(path=str(shots / "view_dataset.png"), full_page=True)
    assert page.errors == []


def test_eval_view_shows_success_table_and_rollouts(page, base_url, shots):
    open_view(page, base_url + "/#/eval?path=embodia_runs/eval/e1")
    table = page.locator("table:has(caption:text('Success by task'))")
    assert table.locator("tbody tr").count() == 2
    text = table.inner_text()
    assert "touch" in text and "pick" in text and "65.8 %" in text  # Wilson upper bound for 0/2
    assert page.locator("table:has(caption:text('Success by group')) tbody tr").count() == 2
    # The hold-still policy never reaches a block: the failure table and the captions say so.
    failures = page.locator("table:has(caption:text('Why episodes failed'))").inner_text()
    assert "never reached 2" in failures
    assert "stopped at: never reached" in page.locator("figcaption").first.inner_text()
    videos = wait_videos(page, 2)
    assert all(v["src"].endswith(".mp4") for v in videos)
    page.screenshot(path=str(shots / "view_eval.png"), full_page=True)
    assert page.errors == []


def test_training_view_draws_curves_and_lists_checkpoints(page, base_url, shots):
    open_view(page, base_url + "/#/run?path=embodia_runs/train/t1")
    ink = canvas_ink(page, "canvas.plot")
    assert len(ink) == 3 and min(ink) > 1000, ink  # loss, learning rate, gradient norm
    assert page.locator("canvas[data-series=loss]").get_attribute("data-drawn") == "24"  # one point per step
    names = page.locator("table:has(th:text('checkpoint')) tbody tr td:first-child").all_inner_texts()
    assert names == ["step-0000016", "step-0000024 (latest)", "final"]  # keep_checkpoints = 2
    page.screenshot(path=str(shots / "view_training.png"), full_page=True)
    assert page.errors == []


def test_live_page_plays_both_cameras_and_follows_the_loop(page, tmp_path, shots):
    """What `embodia teleop` opens: the loop's cameras as MJPEG in <img> elements and its state, updated
    while a loop publishes at 30 Hz; 'ended' once the loop closes the feed."""
    import numpy as np

    from embodia.view.live import LiveFeed
    from embodia.view.viewer import running_viewer

    feed, stop = LiveFeed("teleoperation: test loop"), threading.Event()

    def loop():
        t = 0
        while not stop.is_set():
            front = np.zeros((128, 128, 3), np.uint8)
            front[:, (2 * t) % 128] = (255, 160, 0)
            wrist = np.full((128, 128, 3), (30, 90, 160), np.uint8)
            feed.publish({"observation.images.front": front, "observation.images.wrist": wrist,
                          "observation.state": np.full(6, 0.01 * t)}, sent=np.zeros(6))  # fmt: skip
            t += 1
            stop.wait(1 / 30)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        with running_viewer(tmp_path, port=0, live=feed) as url:
            open_view(page, url)
            page.wait_for_function(
                "() => { const i = [...document.querySelectorAll('img.live')];"
                " return i.length === 2 && i.every(x => x.complete && x.naturalWidth === 128); }"
            )
            first = page.locator("#main p.muted").first.inner_text()
            page.wait_for_function(f"() => document.querySelector('#main p.muted').textContent !== {first!r}")
            assert "live" in first and "ticks" in first
            page.screenshot(path=str(shots / "view_live.png"))
            stop.set()
            thread.join()
            feed.close()
            page.wait_for_function(
                "() => document.querySelector('#main p.muted').textContent.startsWith('ended')"
            )
            assert page.errors == []
    finally:
        stop.set()


def test_bad_path_shows_the_servers_message(page, base_url):
    page.goto(base_url + "/#/dataset?path=../..")
    page.wait_for_function("document.body.dataset.ready === '1'")
    assert "outside the served folder" in page.locator("#error").text_content()
    # The refused request itself is the only console error (the browser logs every failed fetch).
    assert page.errors and all("403" in e for e in page.errors), page.errors


# ---------------------------------------------------------------------------------------------- reports


@pytest.mark.parametrize("kind, images, videos", [("doctor", 1, 0), ("eval", 1, 2), ("demo", 1, 1)])
def test_report_opens_offline(page, outputs, shots, kind, images, videos):
    """Each report is one HTML file opened from disk (file://, no server): plots inline, videos beside."""
    path = outputs[kind] / "report.html"
    html = path.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "the report references the network"
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    if videos:
        wait_videos(page, videos)  # preload="metadata" still decodes the first frame (the poster)
    assert page.locator("video").count() == videos
    sizes = page.evaluate("[...document.images].map(i => [i.complete, i.naturalWidth])")
    assert len(sizes) >= images and all(done and w > 0 for done, w in sizes), sizes
    assert page.locator("table").count() >= 1
    page.screenshot(path=str(shots / f"report_{kind}.png"), full_page=True)
    assert page.errors == []


def test_teleop_page_drives_the_arm_with_keys_and_a_gamepad_and_saves(browser, tmp_path, shots):
    """What `embodia teleop --sim` opens: synthetic key presses move the gripper as the key map says
    (down with F, forward with W), Enter starts and saves an episode (into a dataset the doctor passes),
    an injected gamepad's stick moves it too, and the page logs no console error."""
    import json

    from embodia.data.sim_teleop import SimTeleop, SimTeleopConfig
    from embodia.view.live import LiveFeed
    from embodia.view.viewer import running_viewer

    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    # The browser's Gamepad API, injected: one pad whose left stick is pushed forward while
    # window.__stick is set (the standard mapping: axis 1 negative is up/forward).
    context.add_init_script(
        "window.__stick = 0; navigator.getGamepads = () => [{index: 0, id: 'test pad', connected: true,"
        " mapping: 'standard', axes: [0, -window.__stick, 0, 0],"
        " buttons: Array.from({length: 17}, () => ({pressed: false, value: 0}))}];"
    )
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    root = tmp_path / "demos"
    feed = LiveFeed("teleoperation")
    try:
        with SimTeleop(SimTeleopConfig(task="pick", dataset=str(root), seed=3)) as session:
            publish = lambda s: feed.publish(s.view_frames, s.leader.q, success=s.success)  # noqa: E731
            with (
                session.running(on_tick=publish),
                running_viewer(tmp_path, port=0, live=feed, teleop=session) as url,
            ):
                assert url.endswith("#/teleop")
                open_view(page, url)
                page.wait_for_function(
                    "() => [...document.querySelectorAll('img.live')].every(i => i.complete && i.naturalWidth === 256)"
                )
                assert "pick" in session.state()["family"] and page.locator("#instruction").inner_text()

                def target():
                    return session.state()["control"]["target_m"]

                page.keyboard.press("Enter")  # start recording
                page.wait_for_function(
                    "() => document.querySelector('#rec-state').textContent.startsWith('recording')"
                )
                z0, x0 = target()[2], target()[0]

                def hold(key: str, moved) -> None:
                    """Hold `key` until the target has moved as asked (the loop's pace under load varies:
                    a fixed hold moved 3 cm at ease and 2.7 cm under CI's load), at most 10 s."""
                    page.keyboard.down(key)
                    for _ in range(200):
                        if moved(target()):
                            break
                        page.wait_for_timeout(50)
                    page.keyboard.up(key)

                hold("f", lambda t: t[2] < z0 - 0.035)  # F: down
                hold("w", lambda t: t[0] > x0 + 0.025)  # W: forward
                page.wait_for_timeout(300)
                after = target()
                assert after[2] < z0 - 0.03 and after[0] > x0 + 0.02, (x0, z0, after)
                assert abs(after[1] - session.state()["control"]["target_m"][1]) < 1e-9  # it stopped
                page.keyboard.press("e")  # close the gripper
                page.wait_for_timeout(300)
                assert session.state()["control"]["gripper"] == "closed"
                page.evaluate("window.__stick = 1")
                for _ in range(200):  # the stick held until the gripper has moved forward, at most 10 s
                    if target()[0] > after[0] + 0.015:
                        break
                    page.wait_for_timeout(50)
                page.evaluate("window.__stick = 0")
                page.wait_for_timeout(300)
                assert target()[0] > after[0] + 0.01
                page.wait_for_function(
                    "() => document.querySelector('#gamepad').textContent.includes('test pad')"
                )
                page.keyboard.press("Enter")  # save
                page.wait_for_function(
                    "() => document.querySelector('#saved').textContent.startsWith('1 saved')"
                )
                page.screenshot(path=str(shots / "view_teleop.png"))
        assert errors == [], errors
    finally:
        context.close()
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["total_episodes"] == 1 and "next.success" in info["features"]
    assert main(["doctor", "data", str(root), "--out", str(tmp_path / "doctor")]) in (0, 1)  # it opens

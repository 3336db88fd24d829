"""Commands for the real SO-101: `calibrate`, and `emulator` (the servo bus without an arm)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from embodia.commands.common import console
from embodia.configs import nested, opt, port, positive_int, task_files
from embodia.data.sim_teleop import SimTeleopConfig


@dataclass(frozen=True)
class FollowerArm:
    """The follower a command drives: a real SO-101 on its port, with its cameras, or the simulated one."""

    follower: str | None = opt(None, "the follower's serial port, or 'sim' for the simulated arm")
    follower_id: str = opt("so101", "the follower's name (calibration <id>.json)")
    calibration_dir: str | None = opt(
        None, "the folder holding the arms' <id>.json files (default: LeRobot's)"
    )
    cameras: str = opt("front=0,wrist=2", "the follower's cameras as NAME=SOURCE,... (an OpenCV device index, "
                       "/dev/video path or video file), named with embodia's camera names")  # fmt: skip

    def build(self, image_size: int, watchdog_s: float = 0.5, render: bool = True):
        """The follower, not yet connected; `render=False` leaves the simulated arm without cameras."""
        from embodia.data.teleop import SimFollower
        from embodia.robots.so101_arm import ArmConfig, SO101Follower

        if self.follower == "sim":
            return SimFollower(image_size=image_size, render=render)
        cams = parse_cameras(self.cameras, image_size)
        return SO101Follower(ArmConfig(port=self.follower, id=self.follower_id, calibration_dir=self.calibration_dir,
                                       cameras=cams, watchdog_s=watchdog_s))  # fmt: skip


def parse_cameras(text: str, size: int):
    """'front=0,wrist=/dev/video2' -> camera configs at the recording's image size."""
    from embodia.robots.camera import CameraConfig

    cams = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, source = part.partition("=")
        if not sep or not name.strip() or not source.strip():
            raise ValueError(f"--cameras: {part!r} is not NAME=SOURCE (e.g. front=0,wrist=/dev/video2)")
        cams.append(CameraConfig(name.strip(), source.strip(), width=size, height=size))
    return tuple(cams)


@dataclass(frozen=True)
class CalibrateOptions:
    port: str = opt(help="the arm's serial port (e.g. /dev/ttyACM0; `embodia emulator` prints one)")
    role: str = opt("follower", "which arm of the pair", choices=("follower", "leader"))
    id: str = opt("so101", "the arm's name: its calibration file is <id>.json")
    calibration_dir: str | None = opt(
        None,
        "the folder holding <id>.json (default: LeRobot's, $HF_LEROBOT_CALIBRATION/robots/so_follower ...)",
    )
    write_only: bool = opt(False, "write the existing file's calibration to the servos, do not recalibrate")


def cmd_calibrate(o: CalibrateOptions) -> int:
    """Calibrate an SO-101 by LeRobot's procedure (middle pose, then each joint through its range) and save
    LeRobot's calibration file, which LeRobot and embodia both read."""
    from pathlib import Path

    from embodia.robots.calibrate import calibrate_arm, terminal_waits, write_calibration
    from embodia.robots.calibration import MOTORS, calibration_path, load_calibration, save_calibration
    from embodia.robots.feetech.bus import BusError, FeetechBus
    from embodia.runs import stop_on_sigterm

    path = calibration_path(o.role, o.id, None if o.calibration_dir is None else Path(o.calibration_dir))
    existing = load_calibration(path) if o.write_only else None  # a bad file fails before the bus opens
    bus = FeetechBus(o.port, MOTORS)
    with stop_on_sigterm():  # `kill` stops like Ctrl-C: the torque goes off below
        try:
            bus.connect()
            if existing is not None:
                bus.set_torque(False)
                write_calibration(bus, existing)
                console.print(f"wrote the calibration of [bold]{path}[/] to the servos on {o.port}")
                return 0
            calibration = calibrate_arm(bus, *terminal_waits())
            save_calibration(path, calibration)
        except BusError as exc:
            console.print(f"[bold red]error:[/] {exc}")
            return 1
        finally:
            if bus.connected:  # a calibrated arm is left limp, as LeRobot leaves it after calibrating
                with contextlib.suppress(BusError):
                    bus.set_torque(False)
            bus.close()
    console.print(f"calibration saved to [bold]{path}[/]")
    for name, c in calibration.items():
        console.print(f"  {name:<14} offset {c.homing_offset:>5}  range {c.range_min:>4}..{c.range_max:<4}")
    return 0


@dataclass(frozen=True)
class EmulatorOptions:
    seconds: float | None = opt(None, "stop after this long (default: until Ctrl-C)")


def cmd_emulator(o: EmulatorOptions) -> int:
    """Emulate an SO-101's servo bus (six STS3215 servos) on a pseudo-terminal: give its port to `embodia
    calibrate`, embodia's driver or LeRobot's, as if an arm were plugged in."""
    import time

    from embodia.robots.emulator import BusEmulator

    with BusEmulator() as bus:
        console.print(
            f"SO-101 servo bus emulated on [bold]{bus.port}[/] (ids 1-6); Ctrl-C stops it", highlight=False
        )
        deadline = None if o.seconds is None else time.monotonic() + o.seconds
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        console.print(
            f"instructions served: {bus.instructions}; goals outside the limits: {len(bus.violations)}"
        )
    return 0


@dataclass(frozen=True)
class TeleopOptions:
    sim: bool = opt(
        False, "drive the simulated SO-101 (the tabletop scene in MuJoCo) instead of a real follower"
    )
    arm: FollowerArm = nested(FollowerArm, "the follower arm (or --sim)")
    leader: str | None = opt(None, "the leader arm's serial port")
    leader_id: str = opt("so101_leader", "the leader's name (its calibration file is <id>.json)")
    image_size: int = opt(
        256, "camera frames' size, pixels (the simulated arm renders at it)", parse=positive_int
    )
    seconds: float | None = opt(None, "stop after this long (default: until Ctrl-C)")
    out: str | None = opt(
        None, "where to write report.json (default: ./embodia_runs/teleop/<time>-<follower>)"
    )
    no_view: bool = opt(False, "do not show the cameras in the browser viewer")
    task_files: list[str] = task_files()  # --sim: their scene objects are in the simulated scene
    view_port: int = opt(8765, "the viewer's port (loopback only; 0 picks a free one)", parse=port)
    # --sim without --leader: drive the simulated arm from the browser (keys, gamepad, the page's web API).
    browser: SimTeleopConfig = nested(
        SimTeleopConfig, "the browser session (--sim without --leader)", exclude=("view_size",)
    )


def cmd_teleop(o: TeleopOptions) -> int:
    """Teleoperate: the leader arm drives the real follower or the simulated SO-101, at 30 Hz through the
    follower's safety layer, with the cameras live in the browser viewer; prints how far the follower
    trails the leader per joint and the loop's timing."""
    import json
    from dataclasses import replace
    from pathlib import Path

    from embodia.data.teleop import teleoperate
    from embodia.robots.so101_arm import ArmConfig, SO101Leader
    from embodia.runs import new_run_dir, stop_on_sigterm

    if (o.arm.follower is None) == (not o.sim):
        raise ValueError("give the follower's port (--follower PORT) or --sim, not both")
    if o.seconds is not None and o.seconds <= 0:
        raise ValueError("--seconds must be positive")
    if o.leader is None:
        if not o.sim:
            raise ValueError(
                "--leader PORT is required for a real follower (--sim alone: the browser drives it)"
            )
        return _browser_teleop(o)
    leader = SO101Leader(ArmConfig(port=o.leader, id=o.leader_id, calibration_dir=o.arm.calibration_dir))
    arm = replace(o.arm, follower="sim") if o.sim else o.arm
    follower = arm.build(o.image_size, render=not o.no_view)
    name = "sim" if o.sim else o.arm.follower_id
    out = Path(o.out) if o.out else new_run_dir("teleop", name)
    out.mkdir(parents=True, exist_ok=True)
    where = "simulated" if o.sim else "real"
    # `kill` (SIGTERM) stops like Ctrl-C: the follower goes to rest, then torque off, and the report is written.
    with (
        stop_on_sigterm(),
        leader,
        follower,
        _live_view(out, o, f"teleoperation: {o.leader} -> the {where} follower") as feed,
    ):
        console.print(f"teleoperating the {where} follower from {o.leader}; Ctrl-C stops")
        report = teleoperate(
            leader, follower, seconds=o.seconds, on_tick=None if feed is None else feed.publish
        )
        if hasattr(follower, "go_to_rest"):
            follower.go_to_rest()  # then torque off as the block exits
    (out / "report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    console.print(report.table(), highlight=False)
    console.print(f"report: [bold]{out / 'report.json'}[/]")
    return 0


def _browser_teleop(o: TeleopOptions) -> int:
    """The simulated arm driven from the browser page (#/teleop): keys, a gamepad, or a script through
    the page's web API (embodia.view.teleop); saved episodes go to --record."""
    import json
    import time
    from dataclasses import replace
    from pathlib import Path

    from embodia.data.sim_teleop import SimTeleop
    from embodia.runs import new_run_dir, stop_on_sigterm
    from embodia.view.live import LiveFeed
    from embodia.view.viewer import running_viewer

    if o.no_view:
        raise ValueError("--no-view leaves nothing to drive the arm with: the browser page is the controller")
    cfg = replace(o.browser, view_size=o.image_size)
    out = Path(o.out) if o.out else new_run_dir("teleop", "browser")
    out.mkdir(parents=True, exist_ok=True)
    feed = LiveFeed("teleoperation: the browser -> the simulated SO-101")

    def publish(session: SimTeleop) -> None:
        feed.publish(session.view_frames, session.leader.q, success=session.success)

    with SimTeleop(cfg) as session, running_viewer(out, port=o.view_port, live=feed, teleop=session) as url:
        console.print(f"teleoperation page: [bold]{url}[/] (Ctrl-C stops)", highlight=False)
        if cfg.dataset:
            console.print(f"saved episodes go to [bold]{cfg.dataset}[/]", highlight=False)
        start = time.monotonic()
        with session.running(on_tick=publish), stop_on_sigterm():  # `kill` stops like Ctrl-C
            try:
                while o.seconds is None or time.monotonic() - start < o.seconds:
                    time.sleep(0.1)
            except KeyboardInterrupt:
                pass
        state = session.state()
    report = {"saved": state["saved"], "discarded": state["discarded"], "dataset": cfg.dataset,
              "timing": state["timing"], "ticks": state["ticks"], "view_frames_served": dict(feed.served)}  # fmt: skip
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"{state['saved']} episode(s) saved, {state['discarded']} discarded; {state['ticks']} ticks, "
                  f"{state['timing']['ticks_missed']} missed; report: [bold]{out / 'report.json'}[/]")  # fmt: skip
    return 0


@contextlib.contextmanager
def _live_view(root, o: TeleopOptions, title: str):
    """The browser viewer on the run folder with the loop's live cameras (None with --no-view)."""
    if o.no_view:
        yield None
        return
    from embodia.view.live import LiveFeed
    from embodia.view.viewer import running_viewer

    feed = LiveFeed(title)
    with running_viewer(root, port=o.view_port, live=feed) as url:
        console.print(f"live cameras: [bold]{url}[/]", highlight=False)
        yield feed

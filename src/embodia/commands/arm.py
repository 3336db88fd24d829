"""Commands for the real SO-101: `calibrate`, and `emulator` (the servo bus without an arm)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from embodia.commands.common import console
from embodia.configs import opt


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

    path = calibration_path(o.role, o.id, None if o.calibration_dir is None else Path(o.calibration_dir))
    existing = load_calibration(path) if o.write_only else None  # a bad file fails before the bus opens
    bus = FeetechBus(o.port, MOTORS)
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

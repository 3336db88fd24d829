"""The Feetech STS3215's control table: the servo of the SO-100 and SO-101 arms.

Addresses, sizes and sign bits are the ones LeRobot 0.4.4 uses (`lerobot/motors/feetech/tables.py`,
`STS_SMS_SERIES_CONTROL_TABLE` and its encodings table), so embodia's driver and LeRobot's address the
same bytes. Registers below address 40 live in EEPROM, the rest in RAM. Feetech's Lock register (55)
decides whether an EEPROM write is *kept across a power cycle* (Lock 0) or only until power-off
(Lock 1); the new value takes effect either way, which is what LeRobot relies on when it writes a
calibration without unlocking first.
"""

from __future__ import annotations

from dataclasses import dataclass

MODEL_NUMBER = 777  # STS3215 (LeRobot's MODEL_NUMBER_TABLE["sts3215"])
RESOLUTION = 4096  # encoder ticks per turn
MAX_POSITION = RESOLUTION - 1
EEPROM_END = 40  # addresses below are EEPROM

# Baud_Rate register values (LeRobot's STS_SMS_SERIES_BAUDRATE_TABLE).
BAUDRATES = {1_000_000: 0, 500_000: 1, 250_000: 2, 128_000: 3, 115_200: 4, 57_600: 5, 38_400: 6, 19_200: 7}


@dataclass(frozen=True)
class Register:
    name: str
    address: int
    size: int
    sign_bit: int | None = None  # sign-magnitude encoding: the sign's bit
    read_only: bool = False

    @property
    def eeprom(self) -> bool:
        return self.address < EEPROM_END


_TABLE = (
    Register("Firmware_Major_Version", 0, 1, read_only=True),
    Register("Firmware_Minor_Version", 1, 1, read_only=True),
    Register("Model_Number", 3, 2, read_only=True),
    Register("ID", 5, 1),
    Register("Baud_Rate", 6, 1),
    Register("Return_Delay_Time", 7, 1),
    Register("Response_Status_Level", 8, 1),
    Register("Min_Position_Limit", 9, 2),
    Register("Max_Position_Limit", 11, 2),
    Register("Max_Temperature_Limit", 13, 1),
    Register("Max_Voltage_Limit", 14, 1),
    Register("Min_Voltage_Limit", 15, 1),
    Register("Max_Torque_Limit", 16, 2),
    Register("Phase", 18, 1),
    Register("Unloading_Condition", 19, 1),
    Register("LED_Alarm_Condition", 20, 1),
    Register("P_Coefficient", 21, 1),
    Register("D_Coefficient", 22, 1),
    Register("I_Coefficient", 23, 1),
    Register("Minimum_Startup_Force", 24, 2),
    Register("CW_Dead_Zone", 26, 1),
    Register("CCW_Dead_Zone", 27, 1),
    Register("Protection_Current", 28, 2),
    Register("Angular_Resolution", 30, 1),
    Register("Homing_Offset", 31, 2, sign_bit=11),
    Register("Operating_Mode", 33, 1),
    Register("Protective_Torque", 34, 1),
    Register("Protection_Time", 35, 1),
    Register("Overload_Torque", 36, 1),
    Register("Velocity_closed_loop_P_proportional_coefficient", 37, 1),
    Register("Over_Current_Protection_Time", 38, 1),
    Register("Velocity_closed_loop_I_integral_coefficient", 39, 1),
    Register("Torque_Enable", 40, 1),
    Register("Acceleration", 41, 1),
    Register("Goal_Position", 42, 2, sign_bit=15),
    Register("Goal_Time", 44, 2),
    Register("Goal_Velocity", 46, 2, sign_bit=15),
    Register("Torque_Limit", 48, 2),
    Register("Lock", 55, 1),
    Register("Present_Position", 56, 2, sign_bit=15, read_only=True),
    Register("Present_Velocity", 58, 2, sign_bit=15, read_only=True),
    Register("Present_Load", 60, 2, sign_bit=10, read_only=True),
    Register("Present_Voltage", 62, 1, read_only=True),
    Register("Present_Temperature", 63, 1, read_only=True),
    Register("Status", 65, 1, read_only=True),
    Register("Moving", 66, 1, read_only=True),
    Register("Present_Current", 69, 2, read_only=True),
    Register("Maximum_Velocity_Limit", 84, 1),
    Register("Maximum_Acceleration", 85, 1),
)
REGISTERS = {r.name: r for r in _TABLE}

# What a servo holds when it leaves the factory (the values the emulator powers up with). Firmware 3.9
# and the gains are those of current STS3215 batches; the rest follow Feetech's STS3215 memory table.
FACTORY = {
    "Firmware_Major_Version": 3,
    "Firmware_Minor_Version": 9,
    "Model_Number": MODEL_NUMBER,
    "ID": 1,
    "Baud_Rate": 0,
    "Return_Delay_Time": 0,
    "Response_Status_Level": 1,
    "Min_Position_Limit": 0,
    "Max_Position_Limit": MAX_POSITION,
    "Max_Temperature_Limit": 70,
    "Max_Voltage_Limit": 140,
    "Min_Voltage_Limit": 40,
    "Max_Torque_Limit": 1000,
    "Phase": 12,
    "Unloading_Condition": 44,
    "LED_Alarm_Condition": 47,
    "P_Coefficient": 32,
    "D_Coefficient": 32,
    "I_Coefficient": 0,
    "Minimum_Startup_Force": 16,
    "CW_Dead_Zone": 1,
    "CCW_Dead_Zone": 1,
    "Protection_Current": 500,
    "Angular_Resolution": 1,
    "Homing_Offset": 0,
    "Operating_Mode": 0,
    "Protective_Torque": 20,
    "Protection_Time": 200,
    "Overload_Torque": 80,
    "Velocity_closed_loop_P_proportional_coefficient": 10,
    "Over_Current_Protection_Time": 200,
    "Velocity_closed_loop_I_integral_coefficient": 200,
    "Torque_Enable": 0,
    "Acceleration": 0,
    "Goal_Time": 0,
    "Goal_Velocity": 0,
    "Torque_Limit": 1000,
    "Lock": 1,
    "Present_Voltage": 120,
    "Present_Temperature": 30,
    "Maximum_Velocity_Limit": 0,
    "Maximum_Acceleration": 0,
}

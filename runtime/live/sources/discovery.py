"""What cameras this machine has, for the message a user gets when the one they asked for is absent."""
from __future__ import annotations

import glob


def realsense_devices() -> list[str]:
    """"name (serial)" of every RealSense the SDK sees; [] without pyrealsense2 or cameras."""
    try:
        import pyrealsense2 as rs
    except ImportError:
        return []
    found = []
    for dev in rs.context().query_devices():
        try:
            found.append(f"{dev.get_info(rs.camera_info.name)} (serial {dev.get_info(rs.camera_info.serial_number)})")
        except RuntimeError:
            found.append("an unnamed RealSense device")
    return found


def video_devices() -> list[str]:
    """The V4L2 device nodes (/dev/video*) OpenCV could open by index or path."""
    return sorted(glob.glob("/dev/video*"))


def found_summary() -> str:
    rs_found = realsense_devices()
    v4l = video_devices()
    return (f"RealSense cameras: {', '.join(rs_found) or 'none'}; "
            f"video devices: {', '.join(v4l) or 'none'}")


NO_CAMERA_HINT = ("replay a recording with `--input file://REC.db3` (or .bag; alias `--replay FILE.db3`), "
                  "or run with no hardware at all with `--input sim://` (alias `--sensor sim`)")

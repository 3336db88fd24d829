"""Where things live on the network, from embodia's side: which hosts count as this machine (the one rule
that every listening server here applies before it binds: the policy server asks for an API key off
loopback, the viewer refuses to leave it), and which path arguments are really Hugging Face Hub ids
(embodia reads local folders only, and says so)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

# The names a local browser or client uses for this machine.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps a server reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname: assume it is reachable from elsewhere


# A Hub repository id as huggingface_hub validates it: `owner/name`, letters, digits, `-`, `_`, `.`,
# at most 96 characters, no `--` or `..`, neither part starting or ending with `-` or `.`.
_HUB_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?"
_HUB_ID = re.compile(rf"{_HUB_PART}/{_HUB_PART}")
HUB_ID_MAX_LEN = 96


def looks_like_hub_id(arg: str | Path) -> bool:
    """Whether a path argument reads as a Hub id (`lerobot/pusht`) rather than a path: exactly one
    slash, no leading `./`, `/` or `~`, only the characters the Hub allows, and nothing there locally."""
    text = str(arg)
    if len(text) > HUB_ID_MAX_LEN or not _HUB_ID.fullmatch(text) or "--" in text or ".." in text:
        return False
    return not Path(text).exists()


def hub_id_hint(arg: str | Path, repo_type: str) -> str | None:
    """For an argument that looks like a Hub id, the sentence that says embodia does not download
    from the Hub and how to get the files; None for anything else. `repo_type` is "dataset" or
    "model"."""
    if not looks_like_hub_id(arg):
        return None
    flag = " --repo-type dataset" if repo_type == "dataset" else ""
    return (
        f"{str(arg)!r} is not a local folder; it looks like a Hugging Face Hub {repo_type} id, and embodia "
        f"does not download from the Hub (yet): download it first (e.g. `hf download {arg}{flag} "
        f"--local-dir DIR`, or `huggingface-cli download` with older huggingface_hub) and pass DIR"
    )

"""The Hugging Face Hub: datasets and policies pulled by id wherever a folder is accepted, and pushed with
the cards LeRobot's conventions expect.

    LeRobotDataset.open("lerobot/svla_so101_pickplace")     # pulled into Hugging Face's cache, then read
    load_policy("you/so101-beside@v1")                       # a revision: branch, tag or commit
    push_dataset("datasets/beside", "you/so101-beside")      # + a dataset card and the v3.0 tag

**Which one an argument means** (every command that takes a dataset or checkpoint folder):

1. an existing local path is that path, even when it also reads as a Hub id (`./owner/name` or an
   absolute path always is a path);
2. for checkpoints, a shipped name (`base`, `metaworld_mt10`, `metaworld_mt50`);
3. `owner/name` or `owner/name@revision` is a Hub repository, downloaded by
   `huggingface_hub.snapshot_download` into Hugging Face's cache (`HF_HUB_CACHE`, `HF_HOME`: the same
   cache `hf download` and LeRobot use) at that revision. A dataset with no revision is taken at the
   `v3.0` tag LeRobot pushes with each dataset (as LeRobot does), else at `main`;
4. anything else is an error that says so.

With `HF_HUB_OFFLINE=1` nothing is downloaded: an id resolves from the cache (`local_files_only`) or
fails with an error naming the id, the setting and the cache. A failed download fails the same way,
before any command creates its run folder.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

# A Hub repository id as huggingface_hub validates it: `owner/name`, letters, digits, `-`, `_`, `.`,
# at most 96 characters, no `--` or `..`, neither part starting or ending with `-` or `.`; optionally
# `@revision` (a branch, tag or commit; branches may hold slashes, as in `refs/pr/1`).
_HUB_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?"
_HUB_ID = re.compile(rf"({_HUB_PART}/{_HUB_PART})(?:@([A-Za-z0-9_.][A-Za-z0-9_./-]*))?")
HUB_ID_MAX_LEN = 96


def split_hub_id(arg: str | Path) -> tuple[str, str | None] | None:
    """(repo id, revision or None) if a path argument reads as a Hub id (`lerobot/pusht`,
    `you/policy@v1`) rather than a path: one slash before any `@`, no leading `./`, `/` or `~`, only the
    characters the Hub allows, and nothing of that name here (a local path always wins)."""
    text = str(arg)
    m = _HUB_ID.fullmatch(text)
    if m is None or len(m.group(1)) > HUB_ID_MAX_LEN or "--" in m.group(1) or ".." in text:
        return None
    if Path(text).exists():
        return None
    return m.group(1), m.group(2)


def looks_like_hub_id(arg: str | Path) -> bool:
    return split_hub_id(arg) is not None


DATASET_TAG = "v3.0"  # LeRobot loads a dataset at the tag of its codebase version


class HubError(ValueError):
    """A Hub id that cannot be resolved or pushed (a ValueError: the CLI prints it without a traceback)."""


def offline() -> bool:
    """Whether HF_HUB_OFFLINE is set (read now, not when huggingface_hub was imported)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def cache_dir() -> Path:
    """Hugging Face's hub cache, HF_HUB_CACHE read now (huggingface_hub reads it once, at import)."""
    from huggingface_hub import constants

    return Path(os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE)


@dataclass(frozen=True)
class HubRef:
    repo_id: str
    revision: str | None
    repo_type: str  # "dataset" | "model"

    def __str__(self) -> str:
        return self.repo_id + (f"@{self.revision}" if self.revision else "")


def pull(arg: str | Path, repo_type: str) -> Path:
    """The local folder of Hub id `arg` (`owner/name[@revision]`), downloaded into the cache if needed."""
    parsed = split_hub_id(arg)
    if parsed is None:
        raise HubError(f"{arg}: not a Hugging Face Hub id (owner/name or owner/name@revision)")
    ref = HubRef(parsed[0], parsed[1], repo_type)
    revisions = [ref.revision] if ref.revision else [DATASET_TAG, None] if repo_type == "dataset" else [None]
    error: Exception | None = None
    for revision in revisions:
        try:
            return _snapshot(ref.repo_id, repo_type, revision)
        except Exception as exc:  # noqa: BLE001 - sorted into a HubError below
            if not _is_missing_revision(exc) or revision is None:
                error = exc
                break
            error = exc  # no such tag: try the next revision
    raise _explain(ref, error) from None


def _snapshot(repo_id: str, repo_type: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download

    return Path(
        snapshot_download(
            repo_id, repo_type=repo_type, revision=revision, cache_dir=cache_dir(), local_files_only=offline()
        )  # fmt: skip
    )


def _is_missing_revision(exc: Exception) -> bool:
    from huggingface_hub.errors import LocalEntryNotFoundError, RevisionNotFoundError

    # Offline, a tag that was never pulled is a missing snapshot in the cache: try the next revision.
    return isinstance(exc, RevisionNotFoundError | LocalEntryNotFoundError)


def _explain(ref: HubRef, exc: Exception | None) -> HubError:
    """The error for a user: the id, what happened, and what to do."""
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    kind = f"Hugging Face Hub {ref.repo_type} {str(ref)!r}"
    where = f"the local Hub cache ({cache_dir()})"
    if offline() or isinstance(exc, LocalEntryNotFoundError):
        if offline():
            return HubError(
                f"{kind} is not in {where}, and HF_HUB_OFFLINE=1 forbids downloading it: unset "
                f"HF_HUB_OFFLINE on a machine with network to download it once (or `hf download "
                f"{ref.repo_id}{' --repo-type dataset' if ref.repo_type == 'dataset' else ''}`), or pass "
                "a local folder"
            )
        return HubError(
            f"{kind} could not be downloaded (no connection to the Hub: {_cause(exc)}) and is not in "
            f"{where}; check the network (or HF_ENDPOINT), or set HF_HUB_OFFLINE=1 to use the cache only"
        )
    if isinstance(exc, GatedRepoError):
        return HubError(f"{kind} is gated: accept its terms on the Hub and log in (`hf auth login`)")
    if isinstance(exc, RepositoryNotFoundError):
        return HubError(
            f"{kind} does not exist, or is private (log in with `hf auth login` or set HF_TOKEN); "
            "a local folder of that name would be used first, but there is none here"
        )
    if isinstance(exc, RevisionNotFoundError):
        return HubError(f"{kind}: no such revision (a branch, tag or commit of the repository)")
    return HubError(f"{kind} could not be downloaded: {_cause(exc)}")


def _cause(exc: Exception | None) -> str:
    while exc is not None and exc.__cause__ is not None and exc.__cause__ is not exc:
        exc = exc.__cause__
    text = " ".join(str(exc).split()) if exc is not None else "unknown error"
    return text[:300]


def resolve_folder(arg: str | Path, repo_type: str) -> Path | None:
    """Rules 1 and 3 above: the local folder `arg`, or the Hub repository it names (downloaded); None
    when it is neither (the caller says what it expected)."""
    if Path(arg).exists():
        return Path(arg)
    if split_hub_id(arg) is not None:
        return pull(arg, repo_type)
    return None


# ------------------------------------------------------------------------------------------- pushing
@dataclass(frozen=True)
class Push:
    """What `push_folder` sends: a folder, the repository, its card (README.md) and an optional tag."""

    folder: Path
    repo_id: str
    repo_type: str  # "dataset" | "model"
    card: str
    private: bool = False
    branch: str | None = None
    tag: str | None = None  # re-pointed at the pushed revision if it exists (LeRobot's codebase tag)
    allow_patterns: tuple[str, ...] | None = None


def push_folder(push: Push, api=None) -> str:
    """Create the repository if needed, upload the folder (its own README.md left out), then the card,
    then the tag; returns the repository's URL. `api` is an `huggingface_hub.HfApi` (the default one:
    HF_TOKEN or `hf auth login`, HF_ENDPOINT)."""
    from huggingface_hub import HfApi

    if split_hub_id(push.repo_id) is None or "@" in push.repo_id:
        raise HubError(f"{push.repo_id!r}: a Hub repository id is owner/name (use --branch for a revision)")
    if offline():
        raise HubError(f"cannot push {push.repo_id!r}: HF_HUB_OFFLINE=1 is set")
    api = api or HfApi()
    kw = {"repo_id": push.repo_id, "repo_type": push.repo_type}
    try:
        url = api.create_repo(**kw, private=push.private, exist_ok=True)
        if push.branch:
            api.create_branch(**kw, branch=push.branch, exist_ok=True)
        ignore = ["README.md", ".cache/**", "*.partial/**"]
        api.upload_folder(**kw, folder_path=str(push.folder), revision=push.branch,
                          allow_patterns=list(push.allow_patterns) if push.allow_patterns else None,
                          ignore_patterns=ignore, commit_message=f"Upload {push.repo_type} with embodia")  # fmt: skip
        api.upload_file(**kw, path_or_fileobj=push.card.encode(), path_in_repo="README.md",
                        revision=push.branch, commit_message="Card written by embodia")  # fmt: skip
        if push.tag:
            refs = api.list_repo_refs(**kw)
            if any(t.name == push.tag for t in refs.tags):
                api.delete_tag(**kw, tag=push.tag)
            api.create_tag(**kw, tag=push.tag, revision=push.branch)
    except Exception as exc:  # noqa: BLE001 - every Hub failure becomes a HubError for the user
        raise _push_error(push, exc) from None
    return str(url)


def _push_error(push: Push, exc: Exception) -> HubError:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    what = f"pushing {push.repo_type} {push.repo_id!r} to the Hugging Face Hub failed"
    if status in (401, 403) or type(exc).__name__ == "LocalTokenNotFoundError":
        return HubError(
            f"{what}: not allowed (log in with `hf auth login` or set HF_TOKEN, with write access)"
        )
    return HubError(f"{what}: {_cause(exc)}")


def card_text(card_data: dict, body: str) -> str:
    """A card: YAML front matter (the Hub's metadata: license, tags, task categories ...) and Markdown."""
    from huggingface_hub import CardData

    return f"---\n{CardData(**card_data).to_yaml()}\n---\n\n{body.strip()}\n"

"""What `embodia view` shows, as JSON-ready dicts: finding datasets, evaluation results and training runs
under a root folder, and summarising each one. No web framework here, so it is testable on its own.

Paths travel as POSIX strings relative to the served root. `resolve_inside` is the one gate between a
path from a request and the file system: every path is resolved (symlinks followed) and must land inside
the root's resolved path, so `..`, absolute paths and symlinks that point elsewhere are all refused.

What is recognised, folder by folder (a folder can be several things):

    dataset        meta/info.json (LeRobotDataset v3.0 or v2.1)
    eval           results.json whose "schema" starts with "embodia.eval"
    training run   metrics.jsonl or train_config.json (embodia train's run folder)
    data doctor    doctor.json with "checks" and "root": attached to the dataset it names (below)
    report         any folder with a report.html (demo, run, eval, doctor data / train ...)

A data doctor output is attached to a dataset when its doctor.json's "root" (the dataset path the doctor
was given) resolves to the dataset's folder: as written when absolute, else relative to the served root
and to the current directory (the doctor ran from some working directory, usually the one `embodia view`
starts in). When several doctor outputs name one dataset, the newest doctor.json wins.
"""

from __future__ import annotations

import json
import math
import os
import threading
from pathlib import Path
from typing import Any

# Walking an arbitrary tree (the current directory may be $HOME) must stay cheap: bounded depth and folder
# count, and folders that never hold embodia outputs are skipped.
MAX_DEPTH = 6
MAX_FOLDERS = 20_000
_SKIP_DIRS = {"node_modules", "__pycache__", "site-packages", ".venv", "venv", ".git"}
# Plot payloads stay small for long episodes/runs: at most this many points per series (even stride).
MAX_POINTS = 4000


class ViewerError(Exception):
    """A request the viewer cannot answer; `status` is the HTTP status to send with the message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# ---------------------------------------------------------------------------------------------- paths


def resolve_inside(root: Path, rel: str | None) -> Path:
    """The real path of `rel` under `root`, or ViewerError(403/404). `root` must already be resolved."""
    text = (rel or "").replace("\\", "/")
    if "\x00" in text:
        raise ViewerError(400, "path contains a NUL byte")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise ViewerError(403, f"absolute paths are not served; give a path relative to the root: {rel!r}")
    try:
        path = (root / text).resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # symlink loops
        raise ViewerError(404, f"cannot resolve {rel!r}: {exc}") from None
    if path != root and root not in path.parents:
        raise ViewerError(403, f"{rel!r} is outside the served folder")
    if any(part.startswith(".") for part in path.relative_to(root).parts):
        # Hidden files and folders (.git, .env, caches) are never embodia outputs: do not serve them.
        raise ViewerError(403, f"{rel!r} is hidden; hidden files are not served")
    if not path.exists():
        raise ViewerError(404, f"{rel!r} does not exist under the served folder")
    return path


def rel_of(root: Path, path: Path) -> str:
    """POSIX path of `path` relative to the root ('.' for the root itself)."""
    rel = path.relative_to(root).as_posix()
    return rel or "."


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _finite(x: Any) -> float | None:
    """JSON has no NaN/inf; plots skip None."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


# ---------------------------------------------------------------------------------------------- index


def _kinds(folder: Path, names: set[str]) -> list[str]:
    kinds = []
    if "meta" in names and (folder / "meta" / "info.json").is_file():
        kinds.append("dataset")
    if "results.json" in names:
        data = _read_json(folder / "results.json")
        if isinstance(data, dict) and str(data.get("schema", "")).startswith("embodia.eval"):
            kinds.append("eval")
    if "metrics.jsonl" in names or "train_config.json" in names:
        kinds.append("run")
    if "doctor.json" in names:
        data = _read_json(folder / "doctor.json")
        if isinstance(data, dict) and "checks" in data and "root" in data:
            kinds.append("doctor")
    return kinds


def _walk(root: Path):
    """(folder, kinds, filenames) for every folder under root, bounded (MAX_DEPTH, MAX_FOLDERS); yields
    None once when the folder budget runs out. Symlinked folders are not entered (they may point anywhere)."""
    for visited, (dirpath, dirnames, filenames) in enumerate(os.walk(root, followlinks=False), 1):
        if visited > MAX_FOLDERS:
            yield None
            return
        folder = Path(dirpath)
        kinds = _kinds(folder, set(filenames) | set(dirnames))
        yield folder, kinds, filenames
        if "dataset" in kinds or len(folder.relative_to(root).parts) >= MAX_DEPTH:
            dirnames[:] = []  # a dataset's chunks hold nothing else worth finding
        else:
            # Checkpoint folders hold weights only; hidden folders are caches and VCS data (never served).
            dirnames[:] = sorted(
                d
                for d in dirnames
                if not d.startswith(".") and d not in _SKIP_DIRS and d not in ("checkpoints", "final")
            )


def scan(root: Path) -> dict[str, Any]:
    """Every dataset, eval folder, training run and report under `root` (resolved), JSON-ready."""
    found: dict[str, list[Path]] = {"dataset": [], "eval": [], "run": [], "doctor": [], "report": []}
    truncated = False
    for item in _walk(root):
        if item is None:
            truncated = True
            break
        folder, kinds, filenames = item
        for kind in kinds:
            found[kind].append(folder)
        if "report.html" in filenames:
            found["report"].append(folder)
    doctors = doctor_index(root, found["doctor"])
    datasets = []
    for folder in found["dataset"]:
        entry = {"path": rel_of(root, folder), "name": folder.name}
        info = _read_json(folder / "meta" / "info.json") or {}
        entry.update({k: info.get(k) for k in ("total_episodes", "total_frames", "fps", "robot_type")})
        entry["codebase_version"] = info.get("codebase_version")
        doc = doctors.get(folder)
        entry["doctor"] = None if doc is None else doc["path"]
        entry["doctor_severity"] = None if doc is None else doc["severity"]
        datasets.append(entry)
    evals = []
    for folder in found["eval"]:
        data = _read_json(folder / "results.json") or {}
        overall = data.get("overall") or {}
        evals.append({"path": rel_of(root, folder), "name": folder.name, "suite": data.get("suite"),
                      "success_rate": overall.get("success_rate"), "n": overall.get("n")})  # fmt: skip
    runs = []
    for folder in found["run"]:
        cfg = _read_json(folder / "train_config.json") or {}
        runs.append({"path": rel_of(root, folder), "name": folder.name, "preset": cfg.get("name"),
                     "steps": cfg.get("steps"), "final": (folder / "final" / "config.json").is_file()})  # fmt: skip
    reports = [{"path": rel_of(root, f / "report.html"), "name": rel_of(root, f)} for f in found["report"]]
    return {
        "root": str(root),
        "datasets": datasets,
        "evals": evals,
        "runs": runs,
        "doctors": sorted(doctors_list(root, found["doctor"]), key=lambda d: d["path"]),
        "reports": sorted(reports, key=lambda r: r["path"]),
        "truncated": truncated,
    }


def _doctor_target(root: Path, doctor_dir: Path, named: str) -> Path | None:
    p = Path(named)
    candidates = [p] if p.is_absolute() else [root / p, Path.cwd() / p, doctor_dir / p]
    for c in candidates:
        try:
            if (c / "meta" / "info.json").is_file():
                return c.resolve()
        except OSError:
            continue
    return None


def doctors_list(root: Path, folders: list[Path]) -> list[dict[str, Any]]:
    out = []
    for folder in folders:
        data = _read_json(folder / "doctor.json") or {}
        target = _doctor_target(root, folder, str(data.get("root", "")))
        dataset = None
        if target is not None and (target == root or root in target.parents):
            dataset = rel_of(root, target)
        out.append({"path": rel_of(root, folder), "severity": data.get("severity"), "dataset": dataset,
                    "named": data.get("root"), "mtime": (folder / "doctor.json").stat().st_mtime})  # fmt: skip
    return out


def doctor_index(root: Path, folders: list[Path]) -> dict[Path, dict[str, Any]]:
    """dataset folder (resolved) -> the newest doctor output that names it."""
    best: dict[Path, dict[str, Any]] = {}
    for d in doctors_list(root, folders):
        if d["dataset"] is None:
            continue
        key = (root / d["dataset"]).resolve()
        if key not in best or d["mtime"] > best[key]["mtime"]:
            best[key] = d
    return best


# ---------------------------------------------------------------------------------------------- dataset

_DATASETS: dict[Path, tuple[tuple[int, int], Any]] = {}
_DATASETS_LOCK = threading.Lock()  # requests run in uvicorn's thread pool


def _open_dataset(folder: Path):
    from embodia.data.format import DatasetError
    from embodia.data.reader import LeRobotDataset

    info = folder / "meta" / "info.json"
    if not info.is_file():
        raise ViewerError(404, f"{folder.name}: not a LeRobotDataset (no meta/info.json)")
    # Opening validates every metadata file; each episode click would redo it, so keep the opened
    # dataset while its metadata is unchanged (an edit or a resumed recording rewrites info.json).
    key = (info.stat().st_mtime_ns, info.stat().st_size)
    with _DATASETS_LOCK:
        cached = _DATASETS.get(folder)
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        ds = LeRobotDataset.open(folder)
    except (DatasetError, OSError, ValueError, KeyError) as exc:
        raise ViewerError(422, f"cannot open the dataset: {exc}") from None
    with _DATASETS_LOCK:
        if len(_DATASETS) >= 16:
            _DATASETS.pop(next(iter(_DATASETS)))
        _DATASETS[folder] = (key, ds)
    return ds


def _doctor_for(root: Path, folder: Path) -> tuple[str | None, dict | None]:
    """The newest doctor output naming this dataset: (its folder relative to root, doctor.json)."""
    folders = [item[0] for item in _walk(root) if item is not None and "doctor" in item[1]]
    match = doctor_index(root, folders).get(folder)
    if match is None:
        return None, None
    return match["path"], _read_json(root / match["path"] / "doctor.json")


def _doctor_flags(doc: dict) -> list[dict[str, Any]]:
    """Every WARN/FAIL finding of a doctor.json, flat: check, severity, episode, frames, message."""
    flags = []
    for check in doc.get("checks", []):
        for f in check.get("findings", []):
            flags.append({"check": check.get("name"), "severity": f.get("severity"), "episode": f.get("episode"),
                          "frames": f.get("frames", []), "message": f.get("message", "")})  # fmt: skip
    return flags


def dataset_summary(root: Path, folder: Path) -> dict[str, Any]:
    ds = _open_dataset(folder)
    doctor_path, doc = _doctor_for(root, folder)
    flags = _doctor_flags(doc) if doc else []
    per_episode: dict[int, list[str]] = {}
    for f in flags:
        if f["episode"] is not None:
            per_episode.setdefault(int(f["episode"]), []).append(f["severity"])
    episodes = []
    for ep in ds.episodes:
        sev = per_episode.get(ep["episode_index"], [])
        episodes.append({"index": ep["episode_index"], "length": ep["length"], "tasks": ep["tasks"],
                         "seconds": round(ep["length"] / ds.fps, 3),
                         "flag": "FAIL" if "FAIL" in sev else ("WARN" if sev else None)})  # fmt: skip
    return {
        "path": rel_of(root, folder),
        "name": folder.name,
        "version": ds.version,
        "fps": ds.fps,
        "robot_type": ds.robot_type,
        "cameras": ds.camera_keys,
        "tasks": ds.tasks,
        "episodes": episodes,
        "frames": ds.num_frames,
        "doctor": None if doc is None else {
            "path": doctor_path, "severity": doc.get("severity"), "counts": doc.get("counts"),
            "checks": [{"name": c.get("name"), "severity": c.get("severity"), "summary": c.get("summary")}
                       for c in doc.get("checks", [])],
            "dataset_flags": [f for f in flags if f["episode"] is None],
        },
    }  # fmt: skip


def _names(ds, key: str, width: int) -> list[str]:
    names = ds.features.get(key, {}).get("names")
    if isinstance(names, dict):  # LeRobot sometimes nests names: {"motors": [...]}
        names = next(iter(names.values()), None)
    if isinstance(names, list) and len(names) == width:
        return [str(n) for n in names]
    return [f"{key}[{i}]" for i in range(width)]


def _series(ds, data: dict, key: str) -> dict[str, Any] | None:
    if key not in data:
        return None
    arr = data[key]
    arr = arr.reshape(len(arr), -1)
    stride = max(1, math.ceil(len(arr) / MAX_POINTS))
    cols = [[_finite(v) for v in arr[::stride, j].tolist()] for j in range(arr.shape[1])]
    return {"names": _names(ds, key, arr.shape[1]), "values": cols, "stride": stride}


def episode_detail(root: Path, folder: Path, episode: int) -> dict[str, Any]:
    ds = _open_dataset(folder)
    try:
        ep = ds.episode(episode)
    except IndexError:
        raise ViewerError(404, f"{folder.name} has no episode {episode} (0..{ds.num_episodes - 1})") from None
    from embodia.data.format import DatasetError

    try:
        data = ds.episode_data(episode)
    except (DatasetError, OSError, ValueError) as exc:
        raise ViewerError(422, f"cannot read episode {episode}: {exc}") from None
    videos = []
    for cam in ds.camera_keys:
        v = ep.get("videos", {}).get(cam)
        if v is None:
            continue  # image features (PNG in parquet) have no video to play
        path = (folder / v["file"]).resolve()
        if path != root and root not in path.parents:
            continue  # a video symlinked out of the root is not served, so do not offer it
        videos.append({"camera": cam, "file": rel_of(root, path),
                       "from": v["from_timestamp"], "to": v["to_timestamp"]})  # fmt: skip
    _, doc = _doctor_for(root, folder)
    flags = [f for f in _doctor_flags(doc) if f["episode"] == episode] if doc else []
    return {
        "index": episode,
        "length": ep["length"],
        "fps": ds.fps,
        "tasks": ep["tasks"],
        "videos": videos,
        "state": _series(ds, data, "observation.state"),
        "action": _series(ds, data, "action"),
        "flags": flags,
    }


# ---------------------------------------------------------------------------------------------- eval


def eval_summary(root: Path, folder: Path) -> dict[str, Any]:
    data = _read_json(folder / "results.json")
    if not isinstance(data, dict) or not str(data.get("schema", "")).startswith("embodia.eval"):
        raise ViewerError(404, f"{folder.name}: no embodia results.json here (is it an eval output folder?)")
    episodes = []
    for e in data.get("episodes", []):
        video = e.get("video")
        if video:
            try:
                video = rel_of(root, _inside(root, folder / video))
            except ViewerError:
                video = None  # missing or escaping: shown without a video
        episodes.append({k: e.get(k) for k in ("index", "task", "group", "instruction", "seed", "success",
                                               "steps", "failure")} | {"video": video})  # fmt: skip
    report = folder / "report.html"
    return {
        "path": rel_of(root, folder),
        "name": folder.name,
        "suite": data.get("suite"),
        "settings": {k: data.get(k) for k in ("suite", "kind", "split", "episodes_per_task", "image_size",
                                              "max_steps", "replan_every", "embodiment", "checkpoint_hash")},
        "overall": data.get("overall"),
        "mean_task_success_rate": data.get("mean_task_success_rate"),
        "tasks": data.get("tasks", {}),
        "groups": data.get("groups", {}),
        "failures": data.get("failures") if isinstance(data.get("failures"), dict) else {},
        "measures": _measure_texts(data.get("measures")),
        "episodes": episodes,
        "report": rel_of(root, report) if report.is_file() else None,
    }  # fmt: skip


def _measure_texts(measures: Any) -> dict[str, str]:
    """Task -> the eval's one-line summary of how far off its episodes were; {} for results without."""
    from embodia.sim.progress import measure_text  # the tabletop's wording; loads gymnasium

    if not isinstance(measures, dict):
        return {}
    out = {}
    for task, by_kind in measures.items():
        try:
            out[str(task)] = measure_text(by_kind)
        except (AttributeError, KeyError, TypeError, ValueError):
            continue  # a hand-edited or foreign results.json: show the rest
    return out


def _inside(root: Path, path: Path) -> Path:
    real = path.resolve()
    if (real != root and root not in real.parents) or not real.is_file():
        raise ViewerError(404, f"{path.name}: missing or outside the served folder")
    return real


# ---------------------------------------------------------------------------------------------- training


def _read_metrics(path: Path) -> tuple[list[dict], int]:
    """Rows of metrics.jsonl; a line being written while we read (or otherwise broken) is counted, not fatal."""
    rows, bad = [], 0
    if not path.is_file():
        return rows, bad
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if isinstance(row, dict) and "step" in row:
                rows.append(row)
            else:
                bad += 1
    return rows, bad


def _checkpoint(root: Path, folder: Path) -> dict[str, Any]:
    files = sorted(p.name for p in folder.iterdir() if p.is_file())
    state = _read_json(folder / "train_state.json") or {}
    cfg = _read_json(folder / "config.json") or {}
    meta = cfg.get("metadata") if isinstance(cfg, dict) else None
    step = state.get("step", meta.get("train_step") if isinstance(meta, dict) else None)
    if step is None and folder.name.startswith("step-"):
        try:
            step = int(folder.name[5:])
        except ValueError:
            step = None
    return {
        "path": rel_of(root, folder),
        "name": folder.name,
        "step": step,
        "files": files,
        "complete": all(f in files for f in ("config.json", "model.safetensors", "normalization.json")),
        "bytes": sum((folder / f).stat().st_size for f in files),
        "mtime": folder.stat().st_mtime,
    }


def run_summary(root: Path, folder: Path) -> dict[str, Any]:
    metrics_path = folder / "metrics.jsonl"
    if not metrics_path.is_file() and not (folder / "train_config.json").is_file():
        raise ViewerError(404, f"{folder.name}: not a training run (no metrics.jsonl or train_config.json)")
    rows, bad = _read_metrics(metrics_path)
    stride = max(1, math.ceil(len(rows) / MAX_POINTS))
    picked = rows[::stride]
    if rows and picked[-1] is not rows[-1]:
        picked.append(rows[-1])  # always show where the run is now
    curves = {k: [_finite(r.get(k)) for r in picked] for k in ("loss", "lr", "grad_norm", "samples_per_s")}
    checkpoints = []
    ckpt_root = folder / "checkpoints"
    if ckpt_root.is_dir():
        # Hidden folders are checkpoints still being written (renamed into place when complete).
        checkpoints = [
            _checkpoint(root, p)
            for p in sorted(ckpt_root.iterdir())
            if p.is_dir() and not p.name.startswith(".")
        ]
    if (folder / "final").is_dir():
        checkpoints.append(_checkpoint(root, folder / "final"))
    cfg = _read_json(folder / "train_config.json") or {}
    latest = ckpt_root / "latest"
    return {
        "path": rel_of(root, folder),
        "name": folder.name,
        "config": {k: cfg.get(k) for k in ("name", "datasets", "steps", "batch_size", "lr", "warmup_steps",
                                           "seed", "init_from") if k in cfg},
        "steps": [r.get("step") for r in picked],
        "curves": curves,
        "last": rows[-1] if rows else None,
        "bad_lines": bad,
        "checkpoints": checkpoints,
        "latest": latest.read_text().strip() if latest.is_file() else None,
    }  # fmt: skip

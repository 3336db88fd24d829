"""The data doctor's result and its outputs: `Diagnosis` (one `CheckResult` per check), the console
table (`summary_table`), doctor.json and report.html (`Diagnosis.write`, `write_html`): the checks,
their evidence, per-episode score histograms and the action and state traces of flagged episodes.

`embodia.data.doctor` reads a dataset and runs the checks into a `Diagnosis`; this module holds and
renders it, so it imports the checks' data model (`doctor_checks`) and never the doctor itself."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from embodia.data.doctor_checks import _RANK, FAIL, PASS, SKIP, WARN, Finding, Scan, worst
from embodia.runs import atomic_write_text


@dataclass
class CheckResult:
    name: str
    group: str
    title: str
    threshold: str
    severity: str
    summary: str
    findings: list[Finding] = field(default_factory=list)
    scores: dict[int, float] = field(default_factory=dict)
    score_label: str = ""
    score_threshold: float | None = None


@dataclass
class Diagnosis:
    root: str
    fps: int
    robot_type: str | None
    action_kind: str
    kind_source: str
    episodes: int
    frames: int
    cameras: list[str]
    video_scanned: bool
    wall_s: float
    results: list[CheckResult]
    scan: Scan | None = field(default=None, repr=False)  # the traces, for plots and --fix

    @property
    def severity(self) -> str:
        return worst(r.severity for r in self.results)

    @property
    def counts(self) -> dict[str, int]:
        return {s: sum(r.severity == s for r in self.results) for s in (PASS, WARN, FAIL, SKIP)}

    def result(self, name: str) -> CheckResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(f"no check {name!r}; checks: {[r.name for r in self.results]}")

    def fail_episodes(self) -> list[int]:
        """Episodes with at least one FAIL finding (what --fix drops)."""
        found = {f.episode for r in self.results for f in r.findings if f.severity == FAIL}
        return sorted(found - {None})

    def idle_trims(self) -> dict[int, tuple[int, int]]:
        """episode -> (frames to cut at the start, at the end), from the idle-ends findings."""
        trims: dict[int, list[int]] = {}
        for r in self.results:
            for f in r.findings if r.name == "actions.idle_ends" else []:
                (start, end), cut = f.frames[0], trims.setdefault(f.episode, [0, 0])
                cut[0 if start == 0 else 1] = end - start + 1
        return {e: (a, b) for e, (a, b) in trims.items()}

    def to_dict(self) -> dict[str, Any]:
        # Not asdict(self): it would deep-copy the scan's per-frame arrays only to drop them.
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("results", "scan")}
        out["severity"] = self.severity
        out["counts"] = self.counts
        out["fail_episodes"] = self.fail_episodes()
        out["idle_trims"] = {str(e): list(t) for e, t in self.idle_trims().items()}
        out["checks"] = []
        for r in self.results:
            d = asdict(r)
            d["scores"] = {str(k): v for k, v in r.scores.items()}
            for f in d["findings"]:
                f["frames"] = [list(x) for x in f["frames"]]
                f["seconds"] = [[a / self.fps, (b + 1) / self.fps] for a, b in f["frames"]]
            out["checks"].append(d)
        return out

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """doctor.json and report.html in `out_dir`."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "doctor.json"
        atomic_write_text(path, json.dumps(_jsonable(self.to_dict()), indent=2) + "\n")
        return {"json": path, "html": write_html(self, out_dir / "report.html")}


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


_STYLE = {PASS: "green", WARN: "yellow", FAIL: "bold red", SKIP: "dim"}
MAX_TRACE_EPISODES = 8


def summary_table(diag: Diagnosis):
    """A rich table: one row per check with its result and a short evidence summary."""
    from rich.table import Table

    c = diag.counts
    table = Table(title=f"embodia doctor data: {diag.root} ({diag.episodes} episodes, {diag.action_kind})",
                  caption=f"{c[FAIL]} FAIL, {c[WARN]} WARN, {c[PASS]} PASS, {c[SKIP]} SKIP in {diag.wall_s:.1f} s")  # fmt: skip
    table.add_column("check")
    table.add_column("result")
    table.add_column("evidence", overflow="fold")
    for r in diag.results:
        table.add_row(r.name, f"[{_STYLE[r.severity]}]{r.severity}[/]", r.summary)
    return table


def write_html(diag: Diagnosis, path: Path) -> Path:
    """report.html of the diagnosis at `path`."""
    from embodia.report.html import Report

    c = diag.counts
    rep = Report(f"Data doctor: {Path(diag.root).name}", subtitle=f"{diag.root}")
    rep.key_values({
        "result": diag.severity, "checks": f"{c[FAIL]} FAIL, {c[WARN]} WARN, {c[PASS]} PASS, {c[SKIP]} SKIP",
        "episodes / frames": f"{diag.episodes} / {diag.frames} at {diag.fps} fps", "robot_type": diag.robot_type,
        "action kind": f"{diag.action_kind} ({diag.kind_source})", "cameras": ", ".join(diag.cameras) or "none",
        "videos decoded": diag.video_scanned, "wall time": f"{diag.wall_s:.1f} s",
        "episodes with a FAIL": ", ".join(map(str, diag.fail_episodes())) or "none",
    })  # fmt: skip
    rep.heading("Checks").table(
        [[r.name, r.severity, r.threshold, r.summary] for r in diag.results],
        ["check", "result", "threshold", "evidence"],
    )
    flagged = [r for r in diag.results if r.findings]
    if flagged:
        rep.heading("Evidence")
    for r in flagged:
        rows = [[f.severity, "dataset" if f.episode is None else f.episode,
                 ", ".join(f"{a}-{b}" for a, b in f.frames), f.message] for f in r.findings[:200]]  # fmt: skip
        rep.table(rows, ["severity", "episode", "frames", "evidence"], caption=f"{r.name}: {r.title}")
    # Checks whose scores are all equal (every step exactly 1 / fps, ...) would plot a single bar.
    scored = [r for r in diag.results if r.score_label and _spread(list(r.scores.values())) > 1e-6]
    if scored:
        rep.heading("Per-episode scores")
        for r in scored:
            rep.figure(_histogram(r), caption=f"{r.name}: {r.score_label}")
    if diag.scan is not None:
        eps = _flagged_episodes(diag)
        if eps:
            rep.heading("Action and state of flagged episodes")
            rep.paragraph("Shaded: the frames named in the evidence (red FAIL, orange WARN).")
        for ep, marks in eps[:MAX_TRACE_EPISODES]:
            fig = _traces(diag, ep, marks)
            if fig is not None:
                rep.figure(fig, caption=f"episode {ep}: " + "; ".join(sorted({m[3] for m in marks})))
    return rep.save(path)


def _flagged_episodes(diag: Diagnosis) -> list[tuple[int, list[tuple[int, int, str, str]]]]:
    marks: dict[int, list[tuple[int, int, str, str]]] = defaultdict(list)
    for r in diag.results:
        for f in r.findings:
            if f.episode is not None:
                marks[f.episode] += [(a, b, f.severity, r.name) for a, b in f.frames] or [
                    (0, -1, f.severity, r.name)
                ]
    order = sorted(marks, key=lambda e: (-max(_RANK[m[2]] for m in marks[e]), e))
    return [(e, marks[e]) for e in order]


def _spread(values: list[float]) -> float:
    v = np.array([x for x in values if np.isfinite(x)])
    return float(np.ptp(v) / max(np.abs(v).max(), 1e-12)) if len(v) > 1 else 0.0


def _histogram(r: CheckResult):
    from embodia.report.html import new_figure

    fig = new_figure(6, 2.4)
    ax = fig.gca()
    values = np.array([v for v in r.scores.values() if np.isfinite(v)])
    ends = [values.min(), values.max()] + ([r.score_threshold] if r.score_threshold is not None else [])
    # Bins span the threshold too, so a narrow cluster far from it still shows as a bar.
    ax.hist(values, bins=np.linspace(min(ends), max(ends), 41), color="#4c72b0")
    if r.score_threshold is not None:
        ax.axvline(r.score_threshold, color="#c44e52", linestyle="--", label="threshold")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel(r.score_label)
    ax.set_ylabel("episodes")
    return fig


def _traces(diag: Diagnosis, ep: int, marks: list[tuple[int, int, str, str]]):
    from embodia.report.html import new_figure

    e = next((x for x in diag.scan.episodes if x.index == ep), None)
    if e is None or e.action is None:
        return None
    panels = [("action", e.action, diag.scan.a_range)] + (
        [("state", e.state, diag.scan.s_range)] if e.state is not None else []
    )
    fig = new_figure(7, 1.8 * len(panels) + 0.6)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    t = np.arange(e.length) / diag.fps
    for ax, (label, x, rng) in zip(axes, panels, strict=True):
        key = "action" if label == "action" else "observation.state"
        names = diag.scan.features.get(key, {}).get("names") or list(range(x.shape[1]))
        for d in range(x.shape[1]):
            ax.plot(t, x[:, d] / rng[d], lw=0.9, label=str(names[d]))
        for a, b, sev, _ in marks:
            b = e.length - 1 if b < 0 else b
            ax.axvspan(
                a / diag.fps, (b + 1) / diag.fps, color="#c44e52" if sev == FAIL else "#dd8452", alpha=0.25
            )
        ax.set_ylabel(f"{label} / range")
    axes[0].legend(fontsize=6, ncol=min(6, e.action.shape[1]), loc="upper right")
    axes[-1].set_xlabel("time (s)")
    return fig

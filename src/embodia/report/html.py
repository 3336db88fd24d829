"""Self-contained HTML reports: one file with inline CSS, tables, figures and videos beside it.

Shared by the evaluation report and later the data doctor, training doctor and web viewer, so it is
deliberately generic: a `Report` collects blocks in order and `save()` writes one HTML file.

* Everything textual is HTML-escaped; no block takes raw HTML, so a task string or a file name from a
  dataset can never inject markup.
* Figures are embedded (base64 PNG or inline SVG), so the file can be mailed or archived alone.
  Videos are the exception: mp4s are large, so `<video>` tags point at files beside the HTML by
  relative path (copy the folder, not just the file).
* matplotlib draws with the Agg canvas, attached per figure (`new_figure`), so building a report
  never touches pyplot's global backend or opens a window, and works on a headless machine.

Example::

    rep = Report("eval: tabletop")
    rep.heading("Per task").table([["pick", 0.9]], columns=["task", "success"])
    fig = new_figure(); fig.gca().plot([0, 1]); rep.figure(fig, caption="loss")
    rep.video("videos/pick_seed1.mp4", caption="pick, seed 1").save(out / "report.html")
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from embodia.runs import atomic_write_text

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 70rem;
       padding: 0 1rem; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.6rem; border-bottom: 2px solid #ddd; padding-bottom: .3rem; }
h2 { font-size: 1.25rem; margin-top: 2rem; } h3 { font-size: 1.05rem; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .9rem; }
caption { text-align: left; font-weight: 600; padding-bottom: .3rem; }
th, td { border: 1px solid #ddd; padding: .25rem .6rem; text-align: left; vertical-align: top; }
th { background: #f4f4f6; } tr:nth-child(even) td { background: #fafafa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1rem 0; } figcaption { font-size: .85rem; color: #555; }
figure img, figure svg { max-width: 100%; height: auto; }
.videos { display: flex; flex-wrap: wrap; gap: 1rem; }
.videos figure { margin: 0; } video { width: 256px; image-rendering: pixelated; background: #000; }
pre { background: #f4f4f6; padding: .6rem; overflow-x: auto; font-size: .85rem; }
footer { margin-top: 3rem; font-size: .8rem; color: #777; }
"""


def new_figure(width: float = 7.0, height: float = 3.5) -> Any:
    """A matplotlib Figure drawn by Agg, independent of pyplot (no global state, no GUI)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _cell(value: Any) -> str:
    if getattr(value, "shape", None) == () and hasattr(value, "item"):
        value = value.item()  # numpy scalars (np.float32 is not a float, np.bool_ not a bool)
    if isinstance(value, bool) or value is None:
        return f"<td>{_esc('' if value is None else ('yes' if value else 'no'))}</td>"
    if isinstance(value, int):
        return f'<td class="num">{value}</td>'
    if isinstance(value, float):
        text = "nan" if math.isnan(value) else f"{value:.4g}"
        return f'<td class="num">{text}</td>'
    return f"<td>{_esc(value)}</td>"


def _relative_url(relpath: str | Path) -> str:
    """A safe relative URL for a file beside the report; absolute paths and schemes are refused, because
    the report must stay valid when its folder is moved, and `javascript:` must never reach an attribute."""
    text = str(relpath).replace("\\", "/")
    p = PurePosixPath(text)
    if not text or p.is_absolute() or ":" in p.parts[0] or ".." in p.parts:
        raise ValueError(
            f"media paths must be relative to the report's folder, without '..' or a scheme; got {relpath!r}"
        )
    return quote(p.as_posix(), safe="/._-~")


class Report:
    """An HTML document built block by block; every method returns `self` so calls can chain."""

    def __init__(self, title: str, subtitle: str | None = None):
        self.title = title
        self._blocks: list[str] = [f"<h1>{_esc(title)}</h1>"]
        if subtitle:
            self._blocks.append(f'<p class="subtitle">{_esc(subtitle)}</p>')
        self._videos: list[str] | None = None  # an open row of videos, flushed by the next block

    # ------------------------------------------------------------------ blocks
    def heading(self, text: str, level: int = 2) -> Report:
        if not 1 <= level <= 6:
            raise ValueError(f"heading level must be 1..6, got {level}")
        return self._add(f"<h{level}>{_esc(text)}</h{level}>")

    def paragraph(self, text: str) -> Report:
        return self._add(f"<p>{_esc(text)}</p>")

    def preformatted(self, text: str) -> Report:
        """Monospaced text kept as is (logs, configs, tracebacks)."""
        return self._add(f"<pre>{_esc(text)}</pre>")

    def key_values(self, items: Mapping[str, Any], caption: str | None = None) -> Report:
        """A two-column table of named values (run settings, provenance)."""
        return self.table([[k, v] for k, v in items.items()], columns=["", ""], caption=caption, header=False)

    def table(
        self,
        rows: Sequence[Sequence[Any] | Mapping[str, Any]],
        columns: Sequence[str] | None = None,
        caption: str | None = None,
        header: bool = True,
    ) -> Report:
        """A table of rows (sequences, or mappings keyed by column name).

        With mapping rows and no `columns`, the columns are the keys in first-seen order. Numbers are
        right-aligned (floats to 4 significant digits; format them yourself for other precision),
        booleans read yes/no, None is an empty cell.
        """
        rows = list(rows)
        if columns is None:
            if rows and all(isinstance(r, Mapping) for r in rows):
                columns = list(dict.fromkeys(k for r in rows for k in r))
            elif rows:
                raise ValueError("table: give `columns` when rows are sequences")
            else:
                columns = []
        columns = list(columns)
        parts = ["<table>"]
        if caption:
            parts.append(f"<caption>{_esc(caption)}</caption>")
        if header:
            parts.append("<thead><tr>" + "".join(f"<th>{_esc(c)}</th>" for c in columns) + "</tr></thead>")
        parts.append("<tbody>")
        for n, row in enumerate(rows):
            if isinstance(row, Mapping):
                values = [row.get(c) for c in columns]
            else:
                values = list(row)
                if len(values) != len(columns):
                    raise ValueError(f"table row {n} has {len(values)} cells for {len(columns)} columns")
            parts.append("<tr>" + "".join(_cell(v) for v in values) + "</tr>")
        parts.append("</tbody></table>")
        return self._add("".join(parts))

    def figure(self, fig: Any, caption: str | None = None, fmt: str = "png", close: bool = True) -> Report:
        """Embed a matplotlib figure: base64 PNG (default, compact for dense plots) or inline SVG.

        The figure is rendered by Agg whatever canvas it came with. `close` detaches it from pyplot's
        figure registry when it was made there (so loops over many figures do not leak memory).
        """
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        if fmt not in ("png", "svg"):
            raise ValueError(f"figure format must be 'png' or 'svg', got {fmt!r}")
        if not isinstance(fig.canvas, FigureCanvasAgg):
            FigureCanvasAgg(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=100, metadata={"Date": None} if fmt == "svg" else None)
        if close:
            _close_if_pyplot(fig)
        if fmt == "png":
            data = base64.b64encode(buf.getvalue()).decode("ascii")
            body = f'<img alt="{_esc(caption or "figure")}" src="data:image/png;base64,{data}">'
        else:
            svg = buf.getvalue().decode("utf-8")
            # Drop the XML prolog and DOCTYPE: inside HTML only the <svg> element is valid.
            body = svg[svg.index("<svg") :]
        cap = f"<figcaption>{_esc(caption)}</figcaption>" if caption else ""
        return self._add(f"<figure>{body}{cap}</figure>")

    def video(self, relpath: str | Path, caption: str | None = None) -> Report:
        """A looping, muted `<video>` for an mp4 beside the report. Consecutive videos share a row."""
        url = _relative_url(relpath)
        cap = f"<figcaption>{_esc(caption)}</figcaption>" if caption else ""
        tag = (
            f'<figure><video src="{_esc(url)}" controls muted loop playsinline preload="metadata"></video>'
            f"{cap}</figure>"
        )
        if self._videos is None:
            self._videos = []
        self._videos.append(tag)
        return self

    # ------------------------------------------------------------------ output
    def render(self) -> str:
        self._flush_videos()
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        body = "\n".join(self._blocks)
        return (
            "<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_esc(self.title)}</title><style>{_CSS}</style></head>\n"
            f"<body>\n{body}\n<footer>generated by embodia, {_esc(stamp)}</footer>\n</body></html>\n"
        )

    def save(self, path: str | Path) -> Path:
        """Write the report atomically (a reader never sees half a file); returns the path."""
        path = Path(path)
        atomic_write_text(path, self.render())
        return path

    def _add(self, block: str) -> Report:
        self._flush_videos()
        self._blocks.append(block)
        return self

    def _flush_videos(self) -> None:
        if self._videos:
            self._blocks.append('<div class="videos">' + "".join(self._videos) + "</div>")
        self._videos = None


def _close_if_pyplot(fig: Any) -> None:
    import sys

    plt = sys.modules.get("matplotlib.pyplot")  # only if the caller already uses pyplot
    if plt is not None:
        plt.close(fig)

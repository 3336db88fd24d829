"""The generic HTML report builder: escaping, tables, embedded figures, video tags, atomic save."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest

from embodia.report.html import Report, new_figure

EVIL = '<script>alert("x")</script> & co'


def test_all_text_is_escaped(tmp_path):
    rep = Report(EVIL, subtitle=EVIL)
    rep.heading(EVIL).paragraph(EVIL).preformatted(EVIL)
    rep.table([[EVIL, 1]], columns=[EVIL, "n"], caption=EVIL)
    rep.key_values({EVIL: EVIL})
    rep.video("videos/a.mp4", caption=EVIL)
    html = rep.save(tmp_path / "r.html").read_text()
    assert "<script>" not in html
    assert html.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co") >= 9
    assert html.startswith("<!DOCTYPE html>") and "<style>" in html and html.rstrip().endswith("</html>")


def test_table_cells_and_mapping_rows():
    rep = Report("t").table(
        [
            {"task": "pick", "rate": 0.123456, "n": np.int64(3), "ok": np.bool_(True)},
            {"task": "push", "x": None},
        ]
    )
    html = rep.render()
    heads = re.findall(r"<th>(.*?)</th>", html)
    assert heads == ["task", "rate", "n", "ok", "x"]
    assert '<td class="num">0.1235</td>' in html and '<td class="num">3</td>' in html
    assert "<td>yes</td>" in html and "<td></td>" in html
    with pytest.raises(ValueError, match="3 cells for 2 columns"):
        Report("t").table([[1, 2, 3]], columns=["a", "b"])
    with pytest.raises(ValueError, match="give `columns`"):
        Report("t").table([[1, 2]])


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_figures_are_embedded(fmt):
    fig = new_figure(3, 2)
    fig.add_subplot().plot([0, 1, 2], [1, 0, 1])
    html = Report("f").figure(fig, caption="loss <curve>", fmt=fmt).render()
    assert "loss &lt;curve&gt;" in html
    if fmt == "png":
        data = re.search(r'src="data:image/png;base64,([^"]+)"', html).group(1)
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "<svg" in html and "<?xml" not in html and "<!DOCTYPE svg" not in html


def test_pyplot_figures_work_too():
    import matplotlib

    matplotlib.use("Agg")  # headless test machine; the builder itself never needs pyplot
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.bar([0, 1], [0.5, 0.9])
    num = fig.number
    assert "data:image/png;base64," in Report("p").figure(fig).render()
    assert not plt.fignum_exists(num)  # closed, so loops over many figures do not leak


def test_videos_are_relative_links_grouped_in_a_row():
    rep = Report("v").video("videos/pick seed 1.mp4", "one").video("videos/b.mp4").paragraph("after")
    html = rep.render()
    assert html.count('<div class="videos">') == 1
    assert 'src="videos/pick%20seed%201.mp4"' in html and 'src="videos/b.mp4"' in html
    assert html.index('<div class="videos">') < html.index("<p>after</p>")
    for bad in ("/abs/x.mp4", "../x.mp4", "javascript:alert(1)", "https://example.org/x.mp4", ""):
        with pytest.raises(ValueError, match="relative"):
            Report("v").video(bad)


def test_heading_level_is_checked():
    with pytest.raises(ValueError, match="1..6"):
        Report("h").heading("x", level=7)
    with pytest.raises(ValueError, match="png' or 'svg"):
        Report("h").figure(new_figure(), fmt="jpg")

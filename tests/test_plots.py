"""Plots render to PNG without a display, from recorded scenarios."""

from __future__ import annotations

import sys

import pytest
from matplotlib.figure import Figure
from PIL import Image

from sessionkit import history, plots
from sessionkit.store.memory import MemoryStore

from support.scenarios import story


@pytest.fixture(scope="module")
def df():
    store, _ = story()
    return history.load(store)


@pytest.mark.parametrize("name", ["timeline", "progress", "throughput"])
def test_each_plot_is_a_figure_that_saves_as_png(df, name, tmp_path):
    fig = getattr(plots, name)(df)
    assert isinstance(fig, Figure)
    path = tmp_path / f"{name}.png"
    fig.savefig(path, dpi=80)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 300
        colours = im.convert("RGB").getcolors(1_000_000)
        assert len(colours) > 20, "the image is not blank"
    assert "matplotlib.pyplot" not in sys.modules, "plots must not use pyplot"


@pytest.mark.parametrize("name", ["timeline", "progress", "throughput"])
def test_a_plot_as_a_cells_value_is_drawn_without_matplotlib_inline(df, name):
    """Issue 12 (1): a notebook showed '<Figure size 1100x210 with 1 Axes>' instead of the plot.
    IPython's own display formatter (what every front-end gets) now yields a PNG."""
    from IPython.core.interactiveshell import InteractiveShell

    formatter = InteractiveShell.instance().display_formatter
    data, _ = formatter.format(getattr(plots, name)(df))
    png = data.get("image/png")
    assert png is not None and png[:8] == b"\x89PNG\r\n\x1a\n", sorted(data)
    assert "matplotlib.pyplot" not in sys.modules


def test_timeline_has_a_lane_per_label_and_marks(df):
    ax = plots.timeline(df).axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert sorted(labels) == ["colab A", "kaggle B", "laptop D", "local C"]  # by start; A, B tie
    assert ax.get_xlabel() == "time (UTC)" and ax.get_title() == "Sessions"
    assert len(ax.lines) == 2  # a planned handover and a takeover
    assert len(ax.patches) >= 2  # shaded spans with no primary


def test_progress_colours_by_session(df):
    ax = plots.progress(df, job="ingest").axes[0]
    names = [t.get_text() for t in ax.get_legend().get_texts()]
    assert names == ["ingest: colab A", "ingest: kaggle B", "ingest: local C"]
    assert ax.get_ylabel() == "items done"


def test_plots_of_an_empty_store_say_so():
    empty = history.load(MemoryStore())
    for name in ("timeline", "progress", "throughput"):
        fig = getattr(plots, name)(empty)
        assert "no " in fig.axes[0].texts[0].get_text()


def test_the_timelines_legend_lists_only_the_roles_present_and_marks_sit_above_the_lanes(df):
    """Issue 26 (8): the legend listed an "observer" that did not exist, and the rotated
    "planned" label was crammed into the gap band."""
    assert "observer" in {t.get_text() for t in plots.timeline(df).axes[0].get_legend().get_texts()}
    without = df[df["role"] != "observer"]  # the same story without its observer
    ax = plots.timeline(without).axes[0]
    legend = {t.get_text() for t in ax.get_legend().get_texts()}
    assert legend == {"primary", "backup", "no primary"}, legend
    marks = [t for t in ax.texts if t.get_text() in ("planned", "takeover")]
    assert len(marks) == 2 and all(t.get_rotation() == 0 for t in marks)

"""Nice-number ticks, tick labels, scales and escaping of the SVG primitives (golden values by hand)."""

from __future__ import annotations

import pytest

from netcarve.report.svg import Plot, Scale, element, format_ticks, nice_number, nice_ticks, tight_ticks


def test_nice_number_rounds_to_1_2_5() -> None:
    """Heckbert: 0.87 → next nice up 1.0; 0.25 rounded → 0.2 (fraction 2.5 < 3); 3952 up → 5000; 7 rounded → 10."""
    assert nice_number(0.87, round_=False) == pytest.approx(1.0)
    assert nice_number(0.25, round_=True) == pytest.approx(0.2)
    assert nice_number(3952, round_=False) == pytest.approx(5000)
    assert nice_number(7, round_=True) == pytest.approx(10)


def test_ticks_for_an_accuracy_range() -> None:
    """0 … 0.87, about 5 ticks: range 1.0, step nice(1.0 / 4 = 0.25) = 0.2, loose ends 0 and 1.0."""
    assert nice_ticks(0, 0.87) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]


def test_ticks_for_model_sizes_and_trial_numbers() -> None:
    """1930 … 5882: range nice(3952) = 5000, step nice(1250) = 1000 → 1000 … 6000.
    Trials 0 … 11 with 6 ticks: range 20, step nice(4) = 5 → 0 … 15, tight: 0, 5, 10.
    0 … 1 as integers: step 0.2 is raised to 1."""
    assert nice_ticks(1930, 5882) == [1000.0, 2000.0, 3000.0, 4000.0, 5000.0, 6000.0]
    assert nice_ticks(0, 11, n=6, integer=True) == [0.0, 5.0, 10.0, 15.0]
    assert tight_ticks(0, 11, n=6, integer=True) == [0.0, 5.0, 10.0]
    assert nice_ticks(0, 1, integer=True) == [0.0, 1.0]


def test_ticks_for_negative_and_empty_ranges() -> None:
    """−0.13 … 0.02: range nice(0.15) = 0.2, step nice(0.05) = 0.05 → −0.15 … 0.05.
    An empty range 0.5 … 0.5 is widened by 10 % to 0.45 … 0.55: step nice(0.1/4 = 0.025) = 0.02."""
    assert nice_ticks(-0.13, 0.02) == [-0.15, -0.1, -0.05, 0.0, 0.05]
    assert nice_ticks(0.5, 0.5) == [0.44, 0.46, 0.48, 0.5, 0.52, 0.54, 0.56]
    with pytest.raises(ValueError):
        nice_ticks(0, float("nan"))


def test_tick_labels() -> None:
    assert format_ticks([0.0, 0.2, 0.4]) == ["0.0", "0.2", "0.4"]
    assert format_ticks([0.0, 0.05, 0.1]) == ["0.00", "0.05", "0.10"]
    assert format_ticks([1000.0, 2000.0, 3000.0]) == ["1000", "2000", "3000"]
    assert format_ticks([0.0, 200000.0, 400000.0]) == ["0", "200k", "400k"]
    assert format_ticks([0.0, 5e6, 1e7, 1.5e7]) == ["0", "5M", "10M", "15M"]


def test_scale_maps_and_flips() -> None:
    y = Scale(0.0, 1.0, 300.0, 20.0)
    assert y(0.0) == 300.0 and y(1.0) == 20.0 and y(0.5) == 160.0


def test_elements_escape_attributes_and_text() -> None:
    text = element("text", "<script>x</script>", class_='a" onload="b', x=1.25, text_anchor="end")
    assert text == (
        '<text class="a&quot; onload=&quot;b" x="1.2" text-anchor="end">&lt;script&gt;x&lt;/script&gt;</text>'
    )
    assert element("circle", cx=1.0, r="3", title="<b>") == '<circle cx="1.0" r="3"><title>&lt;b&gt;</title></circle>'
    assert element("line", x1=0.0) == '<line x1="0.0"/>'


def test_plot_axis_labels_are_escaped_and_domain_covers_the_data() -> None:
    plot = Plot((1930, 5882), (0.1, 0.52))
    plot.axes("<x>", "y & z")
    svg = plot.render("a <plot>")
    assert "&lt;x&gt;" in svg and "y &amp; z" in svg and "a &lt;plot&gt;" in svg and "<x>" not in svg
    assert plot.xticks[0] <= 1930 and plot.xticks[-1] >= 5882
    assert plot.yticks[0] <= 0.1 and plot.yticks[-1] >= 0.52

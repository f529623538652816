"""Tiny SVG plotting primitives (no dependencies): nice ticks, linear scales, axes, points, lines, legends.

Ticks follow Heckbert's "nice numbers" (Graphics Gems, 1990): the step is 1, 2 or 5 × 10^k and the axis is
widened to the enclosing ticks ("loose" labelling), so every data point lies inside the frame. Every text
that reaches the SVG goes through :func:`html.escape`. Styling is left to CSS classes on the elements.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

Point = tuple[float, float]


def nice_number(x: float, round_: bool) -> float:
    """A 1/2/5 × 10^k number near ``x`` > 0: rounded to the nearest (``round_``) or the next one up."""
    exponent = math.floor(math.log10(x) + 1e-12)
    fraction = x / 10**exponent
    if round_:
        nice = 1 if fraction < 1.5 else 2 if fraction < 3 else 5 if fraction < 7 else 10
    else:
        fraction *= 1 - 1e-12  # 0.55 − 0.45 = 0.10000000000000009 counts as 0.1
        nice = 1 if fraction <= 1 else 2 if fraction <= 2 else 5 if fraction <= 5 else 10
    return nice * 10.0**exponent


def _decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step) + 1e-9))


def nice_ticks(lo: float, hi: float, n: int = 5, integer: bool = False) -> list[float]:
    """About ``n`` nice ticks covering [lo, hi], from the tick at or below ``lo`` to the one at or above ``hi``.

    An empty range is widened by 10 % of its value (or ±1 at 0). ``integer`` makes the step at least 1.
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"cannot make ticks for [{lo}, {hi}]")
    lo, hi = min(lo, hi), max(lo, hi)
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    step = nice_number(nice_number(hi - lo, False) / max(n - 1, 1), True)
    if integer:
        step = max(step, 1.0)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    digits = _decimals(step) + 1
    return [round(k * step, digits) + 0.0 for k in range(first, last + 1)]


_SUFFIXES = ((1e9, "G"), (1e6, "M"), (1e3, "k"))


def format_ticks(ticks: Sequence[float]) -> list[str]:
    """Labels with as many decimals as the step needs; an axis reaching 10 000 or more counts in k, M or G."""
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    top = max(abs(t) for t in ticks)
    div, suffix = next(((d, s) for d, s in _SUFFIXES if top >= 10 * d), (1.0, ""))
    digits = _decimals(step / div)
    return [f"{t / div:.{digits}f}{suffix if t else ''}" for t in ticks]


def tight_ticks(lo: float, hi: float, n: int = 5, integer: bool = False) -> list[float]:
    """The nice ticks of [lo, hi] that lie inside it (the axis keeps the data range)."""
    ticks = nice_ticks(lo, hi, n, integer)
    inside = [t for t in ticks if lo - 1e-12 <= t <= hi + 1e-12]
    return inside or ticks


@dataclass(frozen=True)
class Scale:
    """Linear map of the data interval [lo, hi] onto the pixel interval [a, b] (b < a for a y axis)."""

    lo: float
    hi: float
    a: float
    b: float

    def __call__(self, value: float) -> float:
        return self.a + (value - self.lo) / (self.hi - self.lo) * (self.b - self.a)


@dataclass(frozen=True)
class Margin:
    left: float = 78
    right: float = 170  # the legend goes here
    top: float = 16
    bottom: float = 58


def _f(v: float) -> str:
    return f"{v:.1f}"


def element(tag: str, text: str | None = None, **attrs: object) -> str:
    """An SVG element with escaped attributes and text; ``class_`` → class, ``text_anchor`` → text-anchor,
    floats with one decimal. ``title`` (if given) becomes a ``<title>`` child: the hover tooltip."""
    title = attrs.pop("title", None)
    items = []
    for key, value in attrs.items():
        name = key.rstrip("_").replace("_", "-")
        items.append(f'{name}="{escape(_f(value) if isinstance(value, float) else str(value))}"')
    head = f"<{tag} {' '.join(items)}"
    inner = (f"<title>{escape(str(title))}</title>" if title is not None else "") + (escape(text) if text else "")
    return f"{head}>{inner}</{tag}>" if inner else f"{head}/>"


def _points_attr(points: Sequence[Point]) -> str:
    return " ".join(f"{_f(x)},{_f(y)}" for x, y in points)


def _padded(domain: tuple[float, float], pad: float) -> tuple[float, float]:
    lo, hi = min(domain), max(domain)
    extra = (hi - lo) * pad if hi > lo else (abs(lo) * 0.1 or 1.0)
    return lo - extra, hi + extra


def _axis(
    domain: tuple[float, float], pad: float, n: int, loose: bool, integer: bool
) -> tuple[list[float], float, float]:
    """(ticks, lo, hi) of an axis: a loose one ends at its outermost ticks, a tight one at the padded data."""
    lo, hi = _padded(domain, pad)
    ticks = nice_ticks(lo, hi, n, integer) if loose else tight_ticks(lo, hi, n, integer)
    return (ticks, ticks[0], ticks[-1]) if loose else (ticks, lo, hi)


@dataclass
class Plot:
    """One chart: padded data domains with nice ticks, and a list of SVG elements in drawing order."""

    xdomain: tuple[float, float]
    ydomain: tuple[float, float]
    width: float = 760
    height: float = 360
    margin: Margin = field(default_factory=Margin)
    x_integer: bool = False
    x_loose: bool = True
    y_loose: bool = True
    pad: float = 0.04
    parts: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        m = self.margin
        self.xticks, xlo, xhi = _axis(self.xdomain, self.pad, 6, self.x_loose, self.x_integer)
        self.yticks, ylo, yhi = _axis(self.ydomain, self.pad, 5, self.y_loose, False)
        self.x = Scale(xlo, xhi, m.left, self.width - m.right)
        self.y = Scale(ylo, yhi, self.height - m.bottom, m.top)

    @property
    def bottom(self) -> float:
        return self.height - self.margin.bottom

    def axes(self, xlabel: str, ylabel: str) -> None:
        """Frame, grid lines, ticks with labels, and the axis titles."""
        m, out = self.margin, self.parts
        left, right, top, bottom = m.left, self.width - m.right, m.top, self.bottom
        for t, label in zip(self.xticks, format_ticks(self.xticks), strict=True):
            px = self.x(t)
            out.append(element("line", class_="grid", x1=px, y1=top, x2=px, y2=bottom))
            out.append(element("line", class_="tick", x1=px, y1=bottom, x2=px, y2=bottom + 5))
            out.append(element("text", label, class_="tick-label", x=px, y=bottom + 18, text_anchor="middle"))
        for t, label in zip(self.yticks, format_ticks(self.yticks), strict=True):
            py = self.y(t)
            out.append(element("line", class_="grid", x1=left, y1=py, x2=right, y2=py))
            out.append(element("line", class_="tick", x1=left - 5, y1=py, x2=left, y2=py))
            out.append(element("text", label, class_="tick-label", x=left - 8, y=py, text_anchor="end", dy="0.32em"))
        out.append(element("rect", class_="frame", x=left, y=top, width=right - left, height=bottom - top))
        cx, cy = (left + right) / 2, (top + bottom) / 2
        out.append(element("text", xlabel, class_="axis-label", x=cx, y=self.height - 12.0, text_anchor="middle"))
        turn = f"rotate(-90 16 {_f(cy)})"
        out.append(element("text", ylabel, class_="axis-label", x=16.0, y=cy, text_anchor="middle", transform=turn))

    def circle(self, x: float, y: float, cls: str, title: str, r: float = 4.5) -> None:
        """A data point; ``title`` becomes its hover tooltip."""
        self.parts.append(element("circle", class_=cls, cx=self.x(x), cy=self.y(y), r=f"{r:g}", title=title))

    def polyline(self, points: Sequence[Point], cls: str) -> None:
        pixels = [(self.x(x), self.y(y)) for x, y in points]
        self.parts.append(element("polyline", class_=cls, points=_points_attr(pixels)))

    def polygon(self, points: Sequence[Point], cls: str) -> None:
        pixels = [(self.x(x), self.y(y)) for x, y in points]
        self.parts.append(element("polygon", class_=cls, points=_points_attr(pixels)))

    def rug(self, x: float, cls: str, title: str, row: int = 0) -> None:
        """A cross at ``x`` just above the x axis (trials without a value: pruned, failed)."""
        px, py, s = self.x(x), self.bottom - 6 - 9 * row, 3.5
        d = f"M{_f(px - s)},{_f(py - s)}L{_f(px + s)},{_f(py + s)}M{_f(px - s)},{_f(py + s)}L{_f(px + s)},{_f(py - s)}"
        self.parts.append(element("path", class_=cls, d=d, title=title))

    def legend(self, entries: Sequence[tuple[str, str]]) -> None:
        """(css class of the swatch, label) rows right of the frame; a swatch is a small square."""
        x0 = self.width - self.margin.right + 14
        for i, (cls, label) in enumerate(entries):
            y = self.margin.top + 10.0 + 17 * i
            self.parts.append(element("rect", class_=f"swatch {cls}", x=x0, y=y - 9, width="10", height="10"))
            self.parts.append(element("text", label, class_="legend", x=x0 + 16, y=y))

    def render(self, label: str, cls: str = "plot") -> str:
        body = "\n".join(self.parts)
        size = f'viewBox="0 0 {self.width:g} {self.height:g}" width="{self.width:g}" height="{self.height:g}"'
        return (
            f'<svg class="{escape(cls)}" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(label)}" '
            f"{size}>\n{body}\n</svg>"
        )

"""The Reports page's pictures, drawn on the server as SVG: no script, nothing to download.

Each chart is a :class:`Chart` of plain rectangles and a few labels, laid out here in a fixed
``viewBox`` (the browser scales it to the width: a phone gets the same picture, smaller) and drawn
by one template (``reports/partials/chart.html``). Colours are classes (``series-N`` in
static/parley.css: a palette told apart by the colour-blind, Okabe & Ito's), never inline styles:
the page runs under a strict CSP. In a right-to-left language the time axis runs from right to left,
as the page reads. Every bar carries a ``<title>`` (its value, on hover and for screen readers), the
chart a ``<title>`` and ``<desc>``, and the table with the same figures stays beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from html import escape
from itertools import pairwise

from django.utils import formats
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language, ngettext
from django.utils.translation import gettext as _

from reports.models import BUCKET_EDGES
from reports.selectors import ChannelReport

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 40, 8, 10, 28  # room for the value axis and the labels under the bars
SERIES = 8  # colours in the palette; more series take them again


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: int
    title: str


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str  # start | middle | end


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    description: str
    bars: list[Bar]
    labels: list[Label]
    legend: list[tuple[int, str]]
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def view_box(self) -> str:
        return f"0 0 {self.width} {self.height}"

    @property
    def baseline(self) -> float:
        return HEIGHT - BOTTOM

    @property
    def plot_left(self) -> int:
        return LEFT

    @property
    def plot_right(self) -> int:
        return WIDTH - RIGHT

    def svg(self) -> SafeString:
        """The markup, built here rather than by a template loop: a year of stacked days is a
        couple of thousand rectangles, and a template would spend most of the page's time on them.
        Every text is escaped; numbers are written with a dot whatever the language."""
        title_id, desc_id = f"{self.id}-title", f"{self.id}-desc"
        parts = [
            f'<svg class="chart-svg" viewBox="0 0 {self.width} {self.height}" role="img" '
            f'aria-labelledby="{title_id} {desc_id}" xmlns="http://www.w3.org/2000/svg">',
            f'<title id="{title_id}">{escape(self.title)}</title><desc id="{desc_id}">{escape(self.description)}</desc>',
            f'<line class="chart-axis" x1="{LEFT}" y1="{self.baseline}" x2="{WIDTH - RIGHT}" y2="{self.baseline}"/>',
        ]
        parts.extend(
            f'<rect class="chart-bar series-{bar.series}" x="{bar.x:g}" y="{bar.y:g}" width="{bar.width:g}" '
            f'height="{bar.height:g}"><title>{escape(bar.title)}</title></rect>'
            for bar in self.bars
        )
        parts.extend(
            f'<text class="chart-label" x="{label.x:g}" y="{label.y:g}" text-anchor="{label.anchor}">{escape(label.text)}</text>'
            for label in self.labels
        )
        parts.append("</svg>")
        return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped


def _scale(top: int) -> float:
    return (HEIGHT - TOP - BOTTOM) / top if top else 0.0


def _slots(count: int, *, rtl: bool) -> list[tuple[float, float]]:
    """(x, width) of ``count`` equal slots across the plot, first slot at the reading start."""
    plot = WIDTH - LEFT - RIGHT
    step = plot / max(count, 1)
    gap = min(step * 0.15, 4.0)
    slots = [(LEFT + i * step + gap / 2, step - gap) for i in range(count)]
    if rtl:
        slots = [(WIDTH - RIGHT - (x - LEFT) - width, width) for x, width in slots]
    return slots


def _axis(top: int, first: str, last: str, *, rtl: bool, count: int) -> list[Label]:
    slots = _slots(count, rtl=rtl)
    labels = [Label(LEFT - 4, TOP + 8, str(top), "end"), Label(LEFT - 4, HEIGHT - BOTTOM, "0", "end")]
    if slots:
        (x0, w0), (x1, w1) = slots[0], slots[-1]
        labels.append(Label(x0 + w0 / 2, HEIGHT - 8, first, "middle" if count == 1 else ("end" if rtl else "start")))
        if count > 1:
            labels.append(Label(x1 + w1 / 2, HEIGHT - 8, last, "start" if rtl else "end"))
    return labels


def _day(day: date) -> str:
    return _day_in(day, get_language())


@lru_cache(maxsize=4096)
def _day_in(day: date, language: str | None) -> str:
    """A day as the language writes it short; cached, as formatting a date costs a tenth of a
    millisecond and a year's chart names every day."""
    return formats.date_format(day, "SHORT_DATE_FORMAT")


def volume(report: ChannelReport, *, rtl: bool = False) -> Chart:
    """Customer messages per day, stacked by channel (the table's channels, in its order)."""
    channels = [row for row in report.rows if row.inbound]
    colour = {row.channel_id: index % SERIES for index, row in enumerate(channels)}
    top = max((sum(day.inbound.values()) for day in report.days), default=0)
    scale = _scale(top)
    bars = []
    text = _("%(day)s, %(channel)s: %(n)s customer messages")
    for (x, width), day in zip(_slots(len(report.days), rtl=rtl), report.days, strict=True):
        y: float = HEIGHT - BOTTOM
        shown = _day(day.day) if day.inbound else ""
        for row in channels:
            n = day.inbound.get(row.channel_id or 0, 0)
            if not n:
                continue
            height = n * scale
            y -= height
            title = text % {"day": shown, "channel": row.name, "n": n}
            bars.append(Bar(round(x, 2), round(y, 2), round(width, 2), round(height, 2), colour[row.channel_id], title))
    first, last = (_day(report.days[0].day), _day(report.days[-1].day)) if report.days else ("", "")
    return Chart(
        id="chart-volume",
        title=_("Customer messages per day, by channel"),
        description=ngettext(
            "%(n)s customer message over %(days)s days, from %(first)s to %(last)s; the busiest day had %(top)s.",
            "%(n)s customer messages over %(days)s days, from %(first)s to %(last)s; the busiest day had %(top)s.",
            report.total.inbound,
        )
        % {"n": report.total.inbound, "days": len(report.days), "first": first, "last": last, "top": top},
        bars=bars,
        labels=_axis(top, first, last, rtl=rtl, count=len(report.days)),
        legend=[(colour[row.channel_id], row.name) for row in channels],
    )


def bot_outcomes(report: ChannelReport, *, rtl: bool = False) -> Chart:
    """The bot's answers and hand-offs per day, stacked."""
    top = max((day.bot_answers + day.bot_handoffs for day in report.days), default=0)
    scale = _scale(top)
    bars = []
    answered, handed = _("%(day)s: the bot answered %(n)s"), _("%(day)s: the bot handed %(n)s to people")
    for (x, width), day in zip(_slots(len(report.days), rtl=rtl), report.days, strict=True):
        y: float = HEIGHT - BOTTOM
        for series, n, text in ((0, day.bot_answers, answered), (1, day.bot_handoffs, handed)):
            if n:
                height = n * scale
                y -= height
                bars.append(
                    Bar(
                        round(x, 2),
                        round(y, 2),
                        round(width, 2),
                        round(height, 2),
                        series,
                        text % {"day": _day(day.day), "n": n},
                    )
                )
    first, last = (_day(report.days[0].day), _day(report.days[-1].day)) if report.days else ("", "")
    total = report.total
    return Chart(
        id="chart-bot",
        title=_("The bot: answered and handed off, per day"),
        description=_("%(answers)s answers and %(handoffs)s hand-offs from %(first)s to %(last)s.")
        % {"answers": total.bot_answers, "handoffs": total.bot_handoffs, "first": first, "last": last},
        bars=bars,
        labels=_axis(top, first, last, rtl=rtl, count=len(report.days)),
        legend=[(0, _("Answered by the bot")), (1, _("Handed off to people"))],
    )


def bucket_labels() -> list[str]:
    """Short names of the histogram buckets: "< 1 min", "1-5 min", ..., "7 d +"."""

    def short(seconds: int) -> str:
        if seconds < 3600:
            return _("%(n)s min") % {"n": seconds // 60}
        if seconds < 86400:
            return _("%(n)s h") % {"n": seconds // 3600}
        return _("%(n)s d") % {"n": seconds // 86400}

    labels = [_("< %(upper)s") % {"upper": short(BUCKET_EDGES[1])}]
    for low, high in pairwise(BUCKET_EDGES[1:]):
        # An en dash between two numbers, as in print.
        labels.append(_("%(low)s–%(high)s") % {"low": short(low), "high": short(high)})  # noqa: RUF001
    labels.append(_("%(low)s +") % {"low": short(BUCKET_EDGES[-1])})
    return labels


def distribution(buckets: list[int], *, chart_id: str, title: str, series: int, rtl: bool = False) -> Chart:
    """A histogram of durations in the fixed buckets, shortest first (in reading order)."""
    names = bucket_labels()
    top = max(buckets, default=0)
    scale = _scale(top)
    bars = []
    for (x, width), n, name in zip(_slots(len(buckets), rtl=rtl), buckets, names, strict=True):
        if n:
            height = n * scale
            title_text = ngettext("%(bucket)s: %(n)s conversation", "%(bucket)s: %(n)s conversations", n) % {
                "bucket": name,
                "n": n,
            }
            bars.append(
                Bar(
                    round(x, 2),
                    round(HEIGHT - BOTTOM - height, 2),
                    round(width, 2),
                    round(height, 2),
                    series,
                    title_text,
                )
            )
    return Chart(
        id=chart_id,
        title=title,
        description=", ".join(f"{name}: {n}" for name, n in zip(names, buckets, strict=True)),
        bars=bars,
        labels=_axis(top, names[0], names[-1], rtl=rtl, count=len(buckets)),
        legend=[],
    )


def charts(report: ChannelReport, *, rtl: bool = False) -> list[Chart]:
    return [
        volume(report, rtl=rtl),
        distribution(
            report.first_response_buckets,
            chart_id="chart-first-response",
            title=_("First response by a person: how long it took"),
            series=2,
            rtl=rtl,
        ),
        distribution(
            report.resolution_buckets, chart_id="chart-resolution", title=_("Time to resolution"), series=3, rtl=rtl
        ),
        bot_outcomes(report, rtl=rtl),
    ]

"""Reading the status page back: its tables per section and its chart's bars, from the
HTML the server sent or the DOM a browser rendered (the same parser for both)."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Bar:
    """One bar of the chart: its coloured segments (fill, width) and the label after it."""

    segments: list[tuple[str, float]] = field(default_factory=list)
    label: str = ""


@dataclass
class StatusPage:
    title: str = ""
    text: str = ""  # every text node, space-joined
    tables: dict[str, list[list[str]]] = field(default_factory=dict)  # section id → rows
    bars: dict[str, Bar] = field(default_factory=dict)  # unit or agency code → its bar
    cards: dict[str, str] = field(default_factory=dict)  # unit → the card's text
    chart_width: float = 0.0  # the viewBox width of the chart

    def rows(self, section: str) -> dict[str, list[str]]:
        """A section's body rows keyed by their first cell (tables with one row per key)."""
        return {row[0]: row[1:] for row in self.tables.get(section, []) if row}

    def column(self, section: str, key: str, index: int) -> str:
        return self.rows(section)[key][index]


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = StatusPage()
        self._texts: list[str] = []
        self._section: str | None = None
        self._in_body = False
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._bar: str | None = None
        self._bar_text: list[str] | None = None
        self._card: str | None = None
        self._card_texts: list[str] = []
        self._in_title = False
        self._depth_in_rect = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "section":
            self._section = attributes.get("id")
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "svg" and attributes.get("id") == "progress-chart":
            self.page.chart_width = float(attributes["viewbox"].split()[2])
        elif tag == "g" and "bar" in attributes.get("class", "").split():
            self._bar = attributes["data-code"]
            self.page.bars[self._bar] = Bar()
        elif tag == "rect" and self._bar is not None:
            self.page.bars[self._bar].segments.append(
                (attributes["fill"], float(attributes["width"]))
            )
            self._depth_in_rect += 1
        elif tag == "text" and self._bar is not None and self._depth_in_rect == 0:
            self._bar_text = []
        elif tag == "article" and "card" in attributes.get("class", "").split():
            self._card = attributes["data-unit"]
            self._card_texts = []
        elif tag == "title" and self._bar is None and not self.page.title:
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join(" ".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._section is not None:
                self.page.tables.setdefault(self._section, []).append(self._row)
            self._row = None
        elif tag == "rect" and self._depth_in_rect:
            self._depth_in_rect -= 1
        elif tag == "text" and self._bar_text is not None and self._bar is not None:
            self.page.bars[self._bar].label = "".join(self._bar_text).strip()
            self._bar_text = None
        elif tag == "g" and self._bar is not None:
            self._bar = None
        elif tag == "article" and self._card is not None:
            self.page.cards[self._card] = " ".join(" ".join(self._card_texts).split())
            self._card = None
        elif tag == "title":
            self._in_title = False
        elif tag == "section":
            self._section = None

    def handle_data(self, data: str) -> None:
        self._texts.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._bar_text is not None:
            self._bar_text.append(data)
        if self._card is not None:
            self._card_texts.append(data)
        if self._in_title:
            self.page.title += data


def read_status_page(markup: str) -> StatusPage:
    reader = _Reader()
    reader.feed(markup)
    reader.close()
    reader.page.text = " ".join(" ".join(reader._texts).split())
    return reader.page

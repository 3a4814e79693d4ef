"""The HTML report of the bundled example (issue 19): whole tables, readable attrs, p-values
of 0 and infinities in words, a wrapping config block, no repeated notes, the simulated-data
banner, and no third-party warning during the run."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from olinkpipe.workflow import run
from olinkpipe.workflow.report import _fmt, _merge_warnings, _table_html


class _Report(HTMLParser):
    """Tables (by the preceding <h3>), their cells, <p>/<li> texts and the config <pre>."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.paragraphs: list[str] = []
        self.items: list[str] = []
        self.banners: list[str] = []
        self.pre_class = ""
        self._h3 = None
        self._name = None
        self._rows: list[list[str]] | None = None
        self._in_body = False
        self._cell: list[str] | None = None
        self._text: list[str] | None = None
        self._tag = None
        self._details = 0
        self._class = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "details":
            self._details += 1
        if tag == "h3":
            self._h3 = []
        elif tag == "table" and self._name and not self._details:
            self._rows = []
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._rows is not None and self._in_body:
            self._rows.append([])
        elif tag == "td" and self._rows is not None and self._in_body:
            self._cell = []
        elif tag in ("p", "li", "pre"):
            self._text, self._tag, self._class = [], tag, a.get("class", "")

    def handle_endtag(self, tag):
        if tag == "details":
            self._details -= 1
        if tag == "h3" and self._h3 is not None:
            self._name, self._h3 = "".join(self._h3), None
        elif tag == "td" and self._cell is not None:
            self._rows[-1].append("".join(self._cell))
            self._cell = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "table" and self._rows is not None:
            self.tables[self._name] = self._rows
            self._rows, self._name = None, None
        elif tag == self._tag and self._text is not None:
            text = "".join(self._text)
            if tag == "pre":
                self.pre_class = self._class
            elif tag == "li":
                self.items.append(text)
            else:
                self.paragraphs.append(text)
                if "banner" in self._class:
                    self.banners.append(text)
            self._text, self._tag = None, None

    def handle_data(self, data):
        for buf in (self._h3, self._cell, self._text):
            if buf is not None:
                buf.append(data)


@pytest.fixture(scope="module")
def example_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "out"
    result = run(None, out=out)
    parser = _Report()
    parser.feed(result.report.read_text(encoding="utf-8"))
    return result, parser


def test_every_table_is_whole(example_run):
    result, rep = example_run
    assert rep.tables, "no table parsed"
    for name in result.tables:
        csv = pd.read_csv(result.out / "tables" / f"{name}.csv")
        assert len(rep.tables[name]) == len(csv), name  # e.g. table_one: 42 of 42 rows
    html_text = result.report.read_text(encoding="utf-8")
    assert "Showing" not in html_text and " of 42 rows" not in html_text
    assert "href='tables/table_one.csv'" in html_text


def test_long_text_cells_are_not_cut(example_run):
    result, rep = example_run
    ora = pd.read_csv(result.out / "tables" / "ora.csv")
    genes = ora["genes"].fillna("").astype(str).tolist()
    assert max(map(len, genes)) > 60
    col = list(ora.columns).index("genes")
    assert [r[col] for r in rep.tables["ora"]] == genes


def test_no_python_reprs_and_p_values_in_words(example_run):
    result, rep = example_run
    html_text = result.report.read_text(encoding="utf-8")
    for repr_bit in ("{'", "{&#x27;", "[(", "(&#x27;", "[&#x27;", "[[", "None,"):
        assert repr_bit not in html_text, repr_bit
    cells = [c for rows in rep.tables.values() for r in rows for c in r]
    assert not {"inf", "-inf", "nan", "NaN"} & set(cells)
    gsea = pd.read_csv(result.out / "tables" / "gsea.csv")
    zero = gsea["p_value"].eq(0).to_numpy()
    assert zero.any()  # the example has permutation p-values of 0
    col = list(gsea.columns).index("p_value")
    shown = np.array([r[col] for r in rep.tables["gsea"]])
    assert set(shown[zero]) == {"< 0.001"}  # 1000 permutations


def test_banner_config_and_notes(example_run):
    result, rep = example_run
    assert rep.banners and "Simulated data" in rep.banners[0]
    assert any("simulated" in p.lower() for p in rep.paragraphs[-20:])  # in Methods too
    assert rep.pre_class == "config"
    html_text = result.report.read_text(encoding="utf-8")
    assert "pre.config{" in html_text and "white-space:pre-wrap" in html_text
    left_out = [p for p in rep.paragraphs if p.startswith("Left out of")]
    assert len(left_out) == len(set(left_out))
    assert len(rep.items) == len(set(rep.items))
    pairs = [i for i in rep.items if "incomplete or duplicated pair" in i]
    assert len(pairs) == 1 and "differential, protein_changes:" in pairs[0]


def test_example_run_raises_no_third_party_warning(example_run):
    result, _ = example_run
    warnings = json.loads((result.out / "run.json").read_text())["warnings"]
    assert warnings and all(w.startswith("OlinkpipeWarning:") for w in warnings), warnings


def test_fmt_writes_values_in_words():
    assert _fmt(float("inf")) == "∞" and _fmt(-np.inf) == "−∞" and _fmt(np.nan) == ""
    assert _fmt({"CAR-T": 23, "Control": 44}) == "CAR-T: 23; Control: 44"
    assert _fmt([["P04", "no post sample"], ["P20", "no pre sample"]]) == (
        "P04 – no post sample; P20 – no pre sample"
    )
    assert _fmt([{"group": "A", "median": np.inf}]) == "group: A, median: ∞"
    assert _merge_warnings(["W: a: x y", "W: b: x y", "W: a: x y", "W: c: z"]) == [
        "W: a, b: x y",
        "W: c: z",
    ]


def test_table_p_value_zero_without_permutations():
    frame = pd.DataFrame({"term": ["a", "b"], "p_value": [0.0, 0.2], "odds_ratio": [np.inf, 1]})
    out = _table_html(frame)
    assert "&lt; 1e-300" in out and "∞" in out and ">0<" not in out

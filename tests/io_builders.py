"""Builders of Olink exports for the io tests: long tables and NPX Manager wide workbooks.

Everything here is written by the tests themselves, laid out the way Olink software writes
it (see the layouts in ``olinkpipe/io/wide.py``).
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

PANELS = [
    ("Olink Inflammation", "v.3021", "INF", ["IL6", "TNF", "CXCL8"]),
    ("Olink Cardiometabolic", "v.3602", "CAM", ["CHL1", "NRP1", "TNF"]),
]


def make_long(
    n_samples: int = 6,
    *,
    seed: int = 0,
    controls: bool = True,
    lod_per_plate: bool = False,
    extra: bool = True,
) -> pd.DataFrame:
    """A Target-96-like long table: 2 panels x 3 assays, samples on 2 plates per panel.

    The assay name TNF occurs on both panels under different OlinkIDs; SampleID ``1001``
    is numeric-looking; one sample has NaN NPX on one assay; sample ``S2`` has a QC warning
    on the INF panel; with ``controls`` the control ``CONTROL_SAMPLE_AS 1`` runs on both
    plates of each panel (one SampleID, two plates).
    """
    rng = np.random.default_rng(seed)
    samples = [f"S{i}" for i in range(1, n_samples)] + ["1001"]
    half = (len(samples) + 1) // 2
    rows = []
    oid = 1000
    for panel, version, short, assays in PANELS:
        for assay in assays:
            oid += 1
            lod = {1: round(rng.normal(2, 0.3), 6), 2: round(rng.normal(2, 0.3), 6)}
            mf = round(rng.uniform(0, 0.2), 4)
            entries = [(s, 1 if k < half else 2) for k, s in enumerate(samples)]
            if controls:
                entries += [("CONTROL_SAMPLE_AS 1", 1), ("CONTROL_SAMPLE_AS 1", 2)]
            for k, (s, plate) in enumerate(entries):
                npx = float(np.round(rng.normal(5, 1.5), 6))
                if s == "S3" and assay == "NRP1":
                    npx = np.nan
                row = {
                    "SampleID": s,
                    "Index": k + 1,
                    "OlinkID": f"OID{oid:05d}",
                    "UniProt": f"P{oid:05d}",
                    "Assay": assay,
                    "MissingFreq": mf,
                    "Panel": panel,
                    "Panel_Version": version,
                    "PlateID": f"Run_{short}_plate{plate}",
                    "QC_Warning": "Warning" if (s == "S2" and short == "INF") else "Pass",
                    "LOD": lod[plate] if lod_per_plate else lod[1],
                    "NPX": npx,
                }
                if extra:
                    row["Subject"] = None if s.startswith("CONTROL") else f"P{s[-1]}"
                    row["Time"] = (
                        None if s.startswith("CONTROL") else ("Baseline", "Week.6")[k % 2]
                    )
                rows.append(row)
    df = pd.DataFrame(rows)
    if extra:
        df["Project"] = "study1"
    return df


def make_explore(seed: int = 1) -> pd.DataFrame:
    """An Explore-3072-like long table with the v1 extra columns; QC varies per cell."""
    rng = np.random.default_rng(seed)
    rows = []
    samples = ["S01", "S02", "CONTROL_SAMPLE_P1_A12"]
    panels = ["Cardiometabolic", "Oncology"]
    oid = 20000
    for panel in panels:
        for _ in range(4):
            oid += 1
            for k, s in enumerate(samples):
                rows.append(
                    {
                        "SampleID": s,
                        "Index": k + 1,
                        "OlinkID": f"OID{oid}",
                        "UniProt": f"Q{oid}",
                        "Assay": f"G{oid}",
                        "MissingFreq": 0.25,
                        "Panel": panel,
                        "Panel_Lot_Nr": "B04404",
                        "PlateID": "P1",
                        "QC_Warning": "WARN" if rng.random() < 0.3 else "PASS",
                        "LOD": round(rng.normal(-3, 1), 4),
                        "NPX": round(rng.normal(0, 2), 4),
                        "Normalization": "Plate control",
                        "Assay_Warning": "PASS",
                        "Sample_Type": "CONTROL" if s.startswith("CONTROL") else "SAMPLE",
                        "WellID": f"A{k + 1}",
                        "IntraCV": round(rng.uniform(5, 20), 4),
                        "Count": int(rng.integers(100, 5000)),
                        "Processing_StartDate": "2023-01-01",
                        "Processing_EndDate": 20230102,
                        "ExploreVersion": "0.0.0",
                    }
                )
    return pd.DataFrame(rows)


def write_long(df: pd.DataFrame, path: Path, *, sep: str = ",", decimal: str = ".", **kw) -> Path:
    df.to_csv(path, sep=sep, decimal=decimal, index=False, **kw)
    return path


def sort_long(df: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in ("SampleID", "OlinkID", "PlateID", "Index") if c in df.columns]
    return df.sort_values(keys).reset_index(drop=True)


# ------------------------------------------------------------------------------------------
# NPX Manager wide workbooks
# ------------------------------------------------------------------------------------------


def _wide_parts(long: pd.DataFrame):
    """Assays (in order), samples (rows) and per-panel plate/QC from a long table."""
    assays = long.drop_duplicates("OlinkID")[
        ["OlinkID", "UniProt", "Assay", "Panel", "Panel_Version", "LOD", "MissingFreq"]
    ].reset_index(drop=True)
    long = long.copy()
    long["_occ"] = long.groupby(["SampleID", "Panel", "OlinkID"]).cumcount()
    keys = long.drop_duplicates(["SampleID", "_occ"])[["SampleID", "_occ"]].values.tolist()
    return assays, keys, long


def wide_grid(
    long: pd.DataFrame,
    *,
    layout: str = "A",
    numeric_ids: bool = True,
    trailing_space: str | None = "S4",
    normalization: bool = True,
    markers: dict | None = None,
    data_type: str = "NPX data",
) -> list[list[object]]:
    """The cell grid of an NPX Manager wide export (layout A or B) of ``long``."""
    assays, keys, long = _wide_parts(long)
    panels = list(dict.fromkeys(assays["Panel"]))

    # NPX Manager writes e.g. "Olink INFLAMMATION(v.3021)"
    def shout(p: str) -> str:
        return "Olink " + p.removeprefix("Olink ").upper() if p.startswith("Olink ") else p

    full = [
        f"{shout(p)}({v})" for p, v in zip(assays["Panel"], assays["Panel_Version"], strict=True)
    ]
    panel_full = {
        p: f"{shout(p)}({long.loc[long.Panel == p, 'Panel_Version'].iloc[0]})" for p in panels
    }
    value = long.set_index(["SampleID", "_occ", "OlinkID"])["NPX"]
    plate = long.drop_duplicates(["SampleID", "_occ", "Panel"]).set_index(
        ["SampleID", "_occ", "Panel"]
    )
    markers = markers or {}

    def sid(s: str) -> object:
        if numeric_ids and re.fullmatch(r"\d+", s):
            return int(s)
        if s == trailing_space:
            return s + "  "
        return s

    grid: list[list[object]] = [["Biomarkörer study", "Olink NPX Manager 2.1.0.224"], [data_type]]
    if layout == "A":
        tail_p = [panel_full[p] for p in panels]
        grid.append(["Panel"] + full + tail_p + tail_p)
        grid.append(
            ["Assay"]
            + list(assays["Assay"])
            + ["Plate ID"] * len(panels)
            + ["QC Warning"] * len(panels)
        )
    else:
        assert len(panels) == 1
        grid.append(["Panel", panel_full[panels[0]]])
        grid.append([])
        grid += [
            ["# Plates", int(long.PlateID.nunique())],
            ["# Samples", len(keys)],
            ["# Flagged positions", 1],
            ["# Proteins detected > 75%", f"{len(assays)} / {len(assays)}"],
            ["%CV (Inter)", 8],
            ["%CV (Intra)", 4],
            ["Normalization Method", "Intensity Normalized (v.2)"],
            [],
        ]
        grid.append(
            ["Assay"]
            + list(assays["Assay"])
            + ["Plate ID", "QC Warning", "QC Deviation from median", "QC Deviation from median"]
        )
    uni = ["Uniprot ID"] + list(assays["UniProt"])
    if layout == "B":
        uni += [None, None, "Inc Ctrl 2", "Det Ctrl"]
    grid.append(uni)
    grid.append(["OlinkID"] + list(assays["OlinkID"]))
    grid.append([])
    for s, occ in keys:
        row: list[object] = [sid(s)]
        for o in assays["OlinkID"]:
            v = value.get((s, occ, o), np.nan)
            row.append(markers.get((s, o), None if np.isnan(v) else float(v)))
        for p in panels:
            row.append(plate.loc[(s, occ, p), "PlateID"] if (s, occ, p) in plate.index else None)
        for p in panels:
            q = plate.loc[(s, occ, p), "QC_Warning"] if (s, occ, p) in plate.index else None
            row.append(q)
        if layout == "B":
            row += [0.1, -0.05]
        grid.append(row)
    grid.append([])
    grid.append(["LOD"] + [float(x) for x in assays["LOD"]])
    mf = [int(x) if float(x).is_integer() else float(x) for x in assays["MissingFreq"]]
    grid.append(["Missing Data freq."] + mf)
    if normalization:
        grid.append(["Normalization"] + ["Intensity Normalized (v.2)"] * len(assays))
    return grid


def write_wide_xlsx(
    path: Path,
    grid: list[list[object]],
    *,
    sheet: str = "NPX Data",
    user_sheet_first: bool = False,
) -> Path:
    """Write a wide grid with openpyxl, optionally after a user-made first sheet."""
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    if user_sheet_first:
        ws.title = "OlinkAnalyze"
        ws.append(["my own matrix", "x"])
        ws.append(["Assay", "IL6"])
        ws.append(["OlinkID", "OID99999"])
        ws.append(["S1", 1.0])
        ws = wb.create_sheet(sheet)
    else:
        ws.title = sheet
    for row in grid:
        ws.append(list(row))
    wb.save(path)
    return path


def write_wide_csv(
    path: Path, grid: list[list[object]], *, sep: str = ";", decimal: str = ","
) -> Path:
    lines = []
    for row in grid:
        cells = []
        for v in row:
            if v is None:
                cells.append("")
            elif isinstance(v, float):
                cells.append(repr(v).replace(".", decimal))
            else:
                cells.append(str(v))
        lines.append(sep.join(cells))
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    return path


def break_xlsx(path: Path) -> Path:
    """Damage an xlsx like olinkr's: sheet dimension A1:A1 and a dangling drawing rel."""
    src = path.read_bytes()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(src)) as zin, zipfile.ZipFile(out, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                text = data.decode("utf-8")
                text = re.sub(r'<dimension ref="[^"]*"\s*/>', '<dimension ref="A1:A1"/>', text)
                if "xmlns:r=" not in text.split(">", 2)[1]:
                    text = text.replace(
                        "<worksheet ",
                        '<worksheet xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" ',
                        1,
                    )
                text = text.replace("</worksheet>", '<drawing r:id="rId1"/></worksheet>')
                data = text.encode("utf-8")
            zout.writestr(item, data)
        zout.writestr(
            "xl/worksheets/_rels/sheet1.xml.rels",
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
            'relationships/drawing" Target="../drawings/drawing1.xml"/></Relationships>',
        )
    path.write_bytes(out.getvalue())
    return path


# --------------------------------------------------------------------------- streaming
def read_both(path, monkeypatch, *, streamed=True):
    """(streamed read, in-memory read) of ``path``: the streaming reader's path checked
    (taken, or not with ``streamed=False``), and the same warnings from both."""
    import warnings

    import olinkpipe as op
    from olinkpipe.io import stream

    calls = []
    real = stream.read_all

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(stream, "read_all", spy)
        with warnings.catch_warnings(record=True) as w1:
            warnings.simplefilter("always")
            new = op.read_npx(path)
    assert bool(calls) == streamed, "streamed" if streamed else "read whole"
    with monkeypatch.context() as m:
        m.setattr(stream, "try_parquet", lambda *a, **k: None)
        m.setattr(stream, "try_csv", lambda *a, **k: None)
        with warnings.catch_warnings(record=True) as w2:
            warnings.simplefilter("always")
            old = op.read_npx(path)
    assert [str(x.message) for x in w1] == [str(x.message) for x in w2]
    return new, old

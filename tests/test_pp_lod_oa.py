"""LOD as OlinkAnalyze 5.0.2's ``olink_lod`` (NCLOD, FixedLOD, Both) on a Reveal-like export.

The export is built here (:func:`reveal_long`: 2 plates × (6 samples, 6 negative controls,
2 plate controls), 5 assays on 2 blocks plus one extension control per block; intensity-
and plate-control-normalized assays, some with negative-control counts ≤ 150 so that
their LOD is count-based; one NC failing QC, two NPX missing). The expected numbers are
OlinkAnalyze's, computed in R 4.2.2 on the same rows written as ``reveal.csv``::

    d <- read.table("reveal.csv", sep = ";", header = TRUE,
                    colClasses = c(Block = "character")) |> tibble::as_tibble()
    nc <- OlinkAnalyze::olink_lod(d, lod_method = "NCLOD")               # LOD
    fx <- OlinkAnalyze::olink_lod(d, lod_file_path = "fixed.csv",
                                  lod_method = "FixedLOD")               # LOD
    both <- OlinkAnalyze::olink_lod(d, lod_file_path = "fixed.csv",
                                    lod_method = "Both")                 # NCLOD, FixedLOD
    OlinkAnalyze:::olink_nc_lod(d)                                       # the NC table

(``both`` equals ``nc`` / ``fx`` column for column.) Tolerance 1e-12 (R prints 15
significant digits; the values are below 20 in magnitude).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import olinkpipe as op
from olinkpipe._layout import below_lod_matrix, lod_matrix, qc_warning_matrix
from olinkpipe.errors import OlinkpipeWarning, ValidationError
from olinkpipe.pp import _lazy

TOL = 1e-12
ASSAYS = ["OID50001", "OID50002", "OID50003", "OID50004", "OID50005", "OID59991", "OID59992"]
FIXED = """OlinkID;DataAnalysisRefID;LODNPX;LODCount;LODMethod;Panel;Version
OID50001;D1;1.25;150;lod_npx;Reveal;6.0.0
OID50002;D1;0.80;180;lod_count;Reveal;6.0.0
OID50003;D2;2.10;150;lod_npx;Reveal;6.0.0
OID50004;D2;0.50;160;lod_count;Reveal;6.0.0
OID50005;D2;1.75;150;lod_npx;Reveal;6.0.0
OID50001;D9;9.00;999;lod_npx;Reveal;6.0.0
"""
nan = np.nan
# OlinkAnalyze:::olink_nc_lod(d): LODNPX, LODCount, LODMethod per OlinkID (DARID D1, D2)
NC_TABLE = {
    "OID50001": (4.1710940767611504, 1738, "lod_npx"),
    "OID50002": (3.4946321220440373, 150, "lod_count"),
    "OID50003": (4.0921232329888877, 1500, "lod_npx"),
    "OID50004": (4.4538056916391167, 150, "lod_count"),
    "OID50005": (3.0876457481498960, 150, "lod_count"),
}
# olink_lod(d, lod_method = "NCLOD")$LOD, by SampleID × ASSAYS
NCLOD = {
    "NC10": [-2.47990592323885, -14.7011019142252, 4.09212323298889, -9.26906867350306,
             -14.8135686735031, nan, nan],
    "NC22": [nan, -18.2079967037023, 4.09212323298889, -9.87847969558351, -16.4394796955835,
             nan, nan],
    "PC21": [-1.98340592323885, -17.1700754288626, 4.09212323298889, -10.4656023607932,
             -17.0266023607932, nan, nan],
    "S10": [-2.47990592323885, -14.3266761577516, 4.09212323298889, -9.04475067908689,
            -14.5892506790869, nan, nan],
    "S11": [-2.47990592323885, -14.4899606598988, nan, -8.85819651648096, -14.402696516481,
            nan, nan],
    "S21": [-1.98340592323885, -18.2450277589031, 4.09212323298889, -9.21390473086352,
            -15.7749047308635, nan, nan],
}  # fmt: skip
# olink_lod(d, lod_file_path = "fixed.csv", lod_method = "FixedLOD")$LOD
FIXEDLOD = {
    "NC10": [-5.401, -14.4380675083914, 2.1, -9.17595926911157, -4.6435, nan, nan],
    "NC22": [nan, -17.9449622978685, 2.1, -9.78537029119203, -4.4705, nan, nan],
    "PC21": [-4.9045, -16.9070410230288, 2.1, -10.3724929564017, -4.4705, nan, nan],
    "S10": [-5.401, -14.0636417519178, 2.1, -8.9516412746954, -4.6435, nan, nan],
    "S11": [-5.401, -14.226926254065, nan, -8.76508711208947, -4.6435, nan, nan],
    "S21": [-4.9045, -17.9819933530693, 2.1, -9.12079532647204, -4.4705, nan, nan],
}  # fmt: skip


def reveal_long(seed: int = 3) -> pd.DataFrame:
    """A Reveal-like long export (OlinkAnalyze's columns for Explore HT / Reveal)."""
    rng = np.random.default_rng(seed)
    assays = [  # OlinkID, Block, Normalization, NC count level, DataAnalysisRefID
        ("OID50001", "1", "Intensity", "high", "D1"),
        ("OID50002", "1", "Intensity", "low", "D1"),
        ("OID50003", "2", "Plate control", "high", "D2"),
        ("OID50004", "2", "Plate control", "low", "D2"),
        ("OID50005", "2", "Intensity", "low", "D2"),
        ("OID59991", "1", "", "ext", "D1"),
        ("OID59992", "2", "", "ext", "D2"),
    ]
    rows = []
    for plate in ("Plate1", "Plate2"):
        samples = [(f"S{plate[-1]}{k}", "SAMPLE") for k in range(6)]
        samples += [(f"NC{plate[-1]}{k}", "NEGATIVE_CONTROL") for k in range(6)]
        samples += [(f"PC{plate[-1]}{k}", "PLATE_CONTROL") for k in range(2)]
        for w, (sid, stype) in enumerate(samples):
            for oid, block, norm, level, darid in assays:
                mean = {"SAMPLE": 6.0, "NEGATIVE_CONTROL": 1.0, "PLATE_CONTROL": 5.0}[stype]
                mean += 0.7 if plate == "Plate2" else 0.0
                pc = round(mean + rng.normal(0, 0.8), 3)
                if level == "ext":
                    count = int(rng.integers(4000, 20000))
                elif stype == "NEGATIVE_CONTROL":
                    count = int(rng.integers(200, 900) if level == "high" else rng.integers(5, 70))
                else:
                    count = int(rng.integers(300, 3000))
                rows.append(
                    {
                        "SampleID": sid,
                        "SampleType": stype,
                        "WellID": f"W{w:02d}",
                        "PlateID": plate,
                        "DataAnalysisRefID": darid,
                        "OlinkID": oid,
                        "UniProt": f"P{oid[-4:]}",
                        "Assay": f"A{oid[-4:]}",
                        "AssayType": "ext_ctrl" if level == "ext" else "assay",
                        "Panel": "Reveal",
                        "Block": block,
                        "Count": count,
                        "ExtNPX": round(pc - 2.0 + rng.normal(0, 0.3), 3),
                        "NPX": round(pc - 5.0, 3),
                        "Normalization": norm or "Plate control",
                        "PCNormalizedNPX": pc,
                        "AssayQC": "PASS",
                        "SampleQC": "PASS",
                    }
                )
    df = pd.DataFrame(rows)
    df.loc[df["SampleID"] == "NC13", "SampleQC"] = "WARN"  # not used for the NC LOD
    df.loc[(df["SampleID"] == "NC22") & (df["OlinkID"] == "OID50001"), "NPX"] = np.nan
    cell = (df["SampleID"] == "S11") & (df["OlinkID"] == "OID50003")
    df.loc[cell, ["NPX", "PCNormalizedNPX"]] = np.nan
    return df


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("reveal")
    csv = root / "reveal.csv"
    reveal_long().to_csv(csv, sep=";", index=False, na_rep="NA")
    fixed = root / "fixed.csv"
    fixed.write_text(FIXED)
    return csv, fixed


@pytest.fixture(scope="module")
def reveal(files):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)
        return op.read_npx(files[0])


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)
        return fn(*args, **kwargs)


def cells(adata, layer, expected):
    rows = pd.Index(adata.obs["SampleID"]).get_indexer(list(expected))
    cols = adata.var_names.get_indexer(ASSAYS)
    got = np.asarray(adata.layers[layer])[np.ix_(rows, cols)]
    return got, np.array(list(expected.values()))


def test_reveal_export_is_recognised(reveal, tmp_path):
    assert reveal.uns["olinkpipe"]["product"] == "Reveal"
    assert set(reveal.layers) >= {"Count", "ExtNPX", "PCNormalizedNPX"}  # QC: on demand
    # a parquet export says so in its metadata (OlinkAnalyze: Product = "Reveal")
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    df = reveal_long()
    df["Panel"] = "Olink Reveal panel"  # the metadata decides, not the panel name
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = {b"Product": b"Reveal", b"DataFileType": b"NPX File"}
    path = tmp_path / "reveal.parquet"
    pq.write_table(table.replace_schema_metadata(meta), path)
    assert quiet(op.read_npx, path).uns["olinkpipe"]["product"] == "Reveal"
    ht = reveal_long().assign(Panel="Explore_HT")
    path = tmp_path / "ht.csv"
    ht.to_csv(path, sep=";", index=False)
    assert quiet(op.read_npx, path).uns["olinkpipe"]["product"] == "Explore HT"


def test_nclod_matches_olinkanalyze(reveal):
    res = quiet(op.pp.compute_lod, reveal)
    got, exp = cells(res, "lod", NCLOD)
    np.testing.assert_allclose(got, exp, atol=TOL, rtol=0)
    tab = res.uns["olinkpipe"]["lod"]["table"].set_index("OlinkID")
    for oid, (lod_npx, lod_count, how) in NC_TABLE.items():
        assert tab.loc[oid, "LODNPX"] == pytest.approx(lod_npx, abs=TOL)
        assert tab.loc[oid, "LODCount"] == lod_count
        assert tab.loc[oid, "LODMethod"] == how
    assert tab.loc["OID50004", "DataAnalysisRefID"] == "D2"
    assert res.uns["olinkpipe"]["lod"]["n_count_based"] == 3
    np.testing.assert_array_equal(below_lod_matrix(res), res.X < lod_matrix(res))


def test_fixed_lod_matches_olinkanalyze(reveal, files):
    res = quiet(op.pp.compute_lod, reveal, method="fixed", fixed_lod=files[1])
    got, exp = cells(res, "lod", FIXEDLOD)
    np.testing.assert_allclose(got, exp, atol=TOL, rtol=0)
    assert res.uns["olinkpipe"]["lod"]["file"] == str(files[1])
    # the same through read_fixed_lod, and with the older LodNPX spelling
    again = quiet(op.pp.read_fixed_lod, reveal, files[1])
    np.testing.assert_array_equal(again.layers["lod"], res.layers["lod"])
    old = pd.read_csv(files[1], sep=";").rename(
        columns={"LODNPX": "LodNPX", "LODCount": "LodCount", "LODMethod": "LodMethod"}
    )
    again = quiet(op.pp.compute_lod, reveal, method="fixed", fixed_lod=old)
    np.testing.assert_array_equal(again.layers["lod"], res.layers["lod"])


@pytest.mark.parametrize("prefer", ["nclod", "fixed"])
def test_both_keeps_both_lods(reveal, files, prefer):
    res = quiet(op.pp.compute_lod, reveal, method="both", fixed_lod=files[1], prefer=prefer)
    main, other = (NCLOD, FIXEDLOD) if prefer == "nclod" else (FIXEDLOD, NCLOD)
    other_layer = "FixedLOD" if prefer == "nclod" else "NCLOD"
    np.testing.assert_allclose(*cells(res, "lod", main), atol=TOL, rtol=0)
    np.testing.assert_allclose(*cells(res, other_layer, other), atol=TOL, rtol=0)
    rec = res.uns["olinkpipe"]["lod"]
    assert rec["other_layer"] == other_layer and {"table", "fixed_table"} <= set(rec)
    np.testing.assert_array_equal(below_lod_matrix(res), res.X < lod_matrix(res))


def test_count_rule_off_and_missing_counts(reveal):
    # count_rule=False: every assay gets LODNPX − the plate's median sample PC-NPX
    res = quiet(op.pp.compute_lod, reveal, count_rule=False)
    pc = np.asarray(reveal.layers["PCNormalizedNPX"])
    st = reveal.obs["SampleType"].to_numpy()
    j = reveal.var_names.get_loc("OID50002")  # intensity-normalized
    for plate in ("Plate1", "Plate2"):
        rows = (reveal.obs["PlateID"] == plate).to_numpy()
        exp = NC_TABLE["OID50002"][0] - np.median(pc[rows & (st == "SAMPLE"), j])
        np.testing.assert_allclose(res.layers["lod"][rows, j], exp, atol=TOL)
    j = reveal.var_names.get_loc("OID50004")  # plate-control-normalized: LODNPX itself
    np.testing.assert_allclose(res.layers["lod"][:, j], NC_TABLE["OID50004"][0], atol=TOL)
    # without the counts of the extension controls a count-based LOD falls back to LODNPX
    no_ext = reveal[:, reveal.var["AssayType"] != "ext_ctrl"].copy()
    with pytest.warns(OlinkpipeWarning, match="lod_count"):
        fb = op.pp.compute_lod(no_ext)
    np.testing.assert_allclose(
        fb.layers["lod"], res.layers["lod"][:, reveal.var["AssayType"] != "ext_ctrl"], atol=TOL
    )


def test_other_normalization_gets_no_lod(reveal):
    a = reveal.copy()
    a.var["Normalization"] = a.var["Normalization"].astype(str)
    a.var.loc["OID50003", "Normalization"] = "EXCLUDED"  # OlinkAnalyze: LOD NA
    res = quiet(op.pp.compute_lod, a)
    assert np.isnan(res.layers["lod"][:, a.var_names.get_loc("OID50003")]).all()


def test_too_few_negative_controls(reveal):
    a = reveal.copy()
    qc = np.asarray(qc_warning_matrix(a)).copy()
    qc[np.flatnonzero(a.obs["SampleID"].isin(["NC10", "NC11"]))] = True
    a.layers["qc_warning"] = qc
    with pytest.raises(ValidationError, match="at least 10 passing negative controls"):
        op.pp.compute_lod(a)


@pytest.mark.parametrize("method", ["nclod", "fixed", "both"])
def test_dask_equals_in_memory(reveal, files, method):
    pytest.importorskip("dask.array")
    kwargs = {"method": method, "fixed_lod": files[1]}
    exp = quiet(op.pp.compute_lod, reveal, **kwargs)
    lazy = _lazy.to_dask(reveal, max_assays=3)
    got = quiet(op.pp.compute_lod, lazy, **kwargs)
    assert _lazy.is_dask(got.layers["lod"])
    for key in ("lod", "below_lod", "FixedLOD"):
        if key in exp.layers:
            np.testing.assert_array_equal(np.asarray(got.layers[key].compute()), exp.layers[key])


@pytest.mark.parametrize(
    ("archive", "version", "warns"),
    [
        ("1.4.0", None, True),  # no Version column
        ("1.4.0", "5.0.0", True),  # older than 6.0.0
        ("1.4.0", "6.0.0", False),
        ("1.5.0", None, False),  # the data were exported with a recent archive
    ],
)
def test_outdated_fixed_lod_file_warns(reveal, archive, version, warns):
    # OlinkAnalyze's check_ht_fixed_lod_version: lots D.0007/08/10/14 exported with Panel
    # Data Archive < 1.5.0 need an Explore HT fixed-LOD file of version >= 6.0.0
    a = reveal.copy()
    a.var["DataAnalysisRefID"] = "D10007"
    a.var["PanelDataArchiveVersion"] = archive
    table = pd.DataFrame(
        {"OlinkID": a.var_names, "DataAnalysisRefID": "D10007", "LODNPX": 1.0}
    ).assign(Panel="Explore_HT", LODMethod="lod_npx")
    if version is not None:
        table["Version"] = version
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        op.pp.compute_lod(a, method="fixed", fixed_lod=table)
    outdated = [w for w in caught if "fixed-LOD file" in str(w.message)]
    assert bool(outdated) == warns

"""Cross-product bridging (pp.bridge_normalize with two products, pp.bridgeability) against
OlinkAnalyze 5.0.2 run in R on the synthetic pair of ``_crossproduct_data`` (real OlinkID
pairs, made-up values; 45 bridge samples S01–S45, a reference outlier, a missing value,
a low-count assay, one HT assay mapped to two Explore 3072 assays).

The R calls (the long tables written with ``_crossproduct_data.long_tables()`` to CSV,
``Block`` read as character, as tibbles)::

    r <- OlinkAnalyze::olink_normalization(df1 = ht, df2 = e3k,
           overlapping_samples_df1 = sprintf("S%02d", 1:NB),  # NB = 45 or 30
           df1_project_nr = "P1", df2_project_nr = "P2", reference_project = "P1")
    # per-assay statistics: df_combo of olink_normalization_bridgeable, captured with
    # trace(OlinkAnalyze:::olink_normalization_bridgeable, exit = quote(...)) as
    # distinct(OlinkID, range_diff, low_cnt, r2_lm, ks_stat) + count(OlinkID)
    # layers: r$MedianCenteredNPX, r$QSNormalizedNPX, r$BridgingRecommendation

Statistics were written by write.csv (15 significant digits): tolerance 1e-12. Layers
were written with 17 digits: tolerance 1e-10 for the quantile-smoothing spline (a least
squares fit in another basis of the same spline space; measured difference 1e-12) and
1e-12 for median centring.
"""

from __future__ import annotations

import json
import warnings

import _crossproduct_data as data
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import olinkpipe as op
from olinkpipe.errors import DesignError, MissingColumnError, OlinkpipeWarning, ValidationError
from olinkpipe.pp import crossstats as cs
from olinkpipe.pp.crossproduct import map_assays

nan = np.nan

# OID -> (range_diff, low_cnt, r2_lm, ks_stat, rows after outlier removal)
OA_STATS_45 = {
    "OID40770_OID20117": (0.20976, False, 0.963726265058721, 0.113636363636364, 44),
    "OID40835_OID31162": (2.14266, False, 0.84580424807415, 0.3, 40),
    "OID40981_OID30796": (3.9507, True, 0.040889821530277, 0.511111111111111, 45),
    "OID43204_OID20074": (0.0070000000000005, False, 0.961605538524784, 0.0888888888888889, 45),
    "OID43204_OID20473": (0.49024, False, 0.980260714695101, 0.555555555555556, 45),
    "OID40986_OID20052": (0.05274, False, 0.975349131348973, 0.783783783783784, 37),
}
OA_STATS_30 = {
    "OID40770_OID20117": (0.60193, False, 0.956772671181636, 0.172413793103448, 29),
    "OID40835_OID31162": (2.03172, False, 0.841035306905946, 0.37037037037037, 27),
    "OID40981_OID30796": (4.32089, True, 0.0977886943205175, 0.5, 30),
    "OID43204_OID20074": (0.24418, False, 0.963126791650031, 0.1, 30),
    "OID43204_OID20473": (0.5486, False, 0.983311017146416, 0.5, 30),
    "OID40986_OID20052": (0.0918899999999989, False, 0.972779515549737, 0.818181818181818, 22),
}
# OA's BridgingRecommendation (the same with 45 and 30 bridge samples)
OA_REC = {
    "OID40770_OID20117": "MedianCentering",
    "OID40835_OID31162": "QuantileSmoothing",
    "OID40981_OID30796": "NotBridgeable",
    "OID43204_OID20074": "MedianCentering",
    "OID43204_OID20473": "QuantileSmoothing",
    "OID40986_OID20052": "QuantileSmoothing",  # OA: QSNormalizedNPX all NA (37 < 40 pairs)
}
# Adj_factor = MedianCenteredNPX - NPX on the Explore 3072 rows
OA_ADJ_45 = {
    "OID40770_OID20117": -0.09060000000000024,
    "OID40835_OID31162": 0.26129999999999987,
    "OID40981_OID30796": 0.5867,
    "OID40986_OID20052": -1.9873999999999996,
    "OID43204_OID20074": -0.06490000000000018,
    "OID43204_OID20473": -1.479,
}
OA_ADJ_30 = {
    "OID40770_OID20117": -0.039699999999999847,
    "OID40835_OID31162": 0.1460999999999999,
    "OID40981_OID30796": 0.40375,
    "OID40986_OID20052": -1.99615,
    "OID43204_OID20074": -0.06390000000000029,
    "OID43204_OID20473": -1.4847000000000001,
}
# r$QSNormalizedNPX of the Explore 3072 rows (Project P2), 45 bridge samples
OA_QS_45 = {
    "OID40835_OID31162": [
        0.844926534219727,
        1.7387194532184227,
        nan,
        0.8311128780981196,
        0.5053430505014844,
        0.6756883316552799,
        0.6912103225374716,
        1.0324565526216678,
        2.7900178733511103,
        1.4894293431197176,
        0.733929599860922,
        -0.22960077399343,
        0.4603551174394955,
        1.813747971633045,
        1.8353684042278973,
        4.484212603431203,
        4.314127703931184,
        4.2504490488222295,
        5.151183254038785,
        0.5040502251163359,
        2.602254391728061,
        3.4244178006173662,
        2.530802877963924,
        5.249183568129836,
        5.833804514500999,
        3.692248548829308,
        3.251574685000416,
        1.3751926187939136,
        0.1463977856866374,
        3.204522288892461,
        1.9734645771790913,
        0.0382837749709228,
        2.459638699851293,
        2.4532164827100806,
        3.4092037125355694,
        1.933141668722288,
        1.9671954367798743,
        1.8093337218678025,
        2.1100483205845455,
        0.8035476768960007,
        3.111217186167754,
        5.225960515023713,
        3.1882474818448654,
        0.1933725711657117,
        2.1224970542723405,
        0.9760618978349312,
        0.5741993382096497,
        3.0975143532832248,
        2.066614270009556,
        1.3890973371714388,
        0.2437371736346176,
        0.8805409829550332,
        2.6623084036453153,
        1.7040682691052995,
        2.6505053216212047,
        nan,
    ],
    "OID43204_OID20473": [
        3.5466932552408186,
        2.7361921355086527,
        4.537171290544208,
        2.2554697408511335,
        1.8878801098124225,
        4.393794128647779,
        2.704013690263092,
        4.392248327962712,
        3.9033370607878553,
        1.7178599634645364,
        2.3759847583116316,
        3.2067680658403006,
        2.6581884941860765,
        3.3207106874489822,
        2.313320255318765,
        3.0541228924439694,
        3.950002799032275,
        4.3606579221145045,
        2.341005382519445,
        2.8031110678641555,
        3.0049943861450954,
        1.7011432252835337,
        4.066313246036192,
        3.5696153844655814,
        3.5582731671134544,
        2.994006380582817,
        3.9710601910483025,
        4.101968352846988,
        4.178842515185536,
        2.7426385550705126,
        3.3262686501153618,
        2.5584172657450823,
        2.654722830001532,
        3.92546318471996,
        3.105990994255751,
        2.9288454755211863,
        3.7061237565314578,
        3.6516284234590186,
        2.351015884832203,
        2.3335846375828755,
        3.6894611758896874,
        3.575064228001184,
        2.7367434635221763,
        4.2181197557729915,
        2.9624272865526766,
        -0.0085859800764609,
        2.315257625322052,
        1.2582447763453366,
        4.2700977250407615,
        3.6004912545234364,
        3.203878968610277,
        -0.8497957857778679,
        1.4590724706835037,
        2.8900717291811544,
        0.3765350285849837,
        nan,
    ],
}
OTHER_ROWS = data.BRIDGE + data.OTHER_ONLY + [data.CONTROL]  # order of OA_QS_45 values


@pytest.fixture(scope="module")
def pair():
    return data.products()


def _bridgeability(ht, e3k, n):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)
        return op.pp.bridgeability(ht, e3k, data.BRIDGE[:n])


def _normalize(ht, e3k, n):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)
        return op.pp.bridge_normalize(ht, e3k, data.BRIDGE[:n])


@pytest.mark.parametrize(("n", "expected"), [(45, OA_STATS_45), (30, OA_STATS_30)])
def test_bridgeability_statistics_match_olinkanalyze(pair, n, expected):
    table = _bridgeability(*pair, n).set_index("OlinkID")
    assert sorted(table.index) == sorted(expected)
    for oid, (rdiff, low, r2, ks, n_used) in expected.items():
        row = table.loc[oid]
        assert row["range_diff"] == pytest.approx(rdiff, abs=1e-12)
        assert bool(row["low_count"]) is low
        assert row["R2"] == pytest.approx(r2, abs=1e-12)
        assert row["KS_statistic"] == pytest.approx(ks, abs=1e-12)
        assert row["n_used"] == n_used


def test_bridgeability_recommendation_and_table(pair):
    table = _bridgeability(*pair, 45).set_index("OlinkID")
    rec = table["BridgingRecommendation"].to_dict()
    # as OA, except CEBPB: 37 pairs with a reference count > 10 < 40 -> median centring
    assert rec == {**OA_REC, "OID40986_OID20052": "MedianCentering"}
    assert not table.loc["OID40986_OID20052", "qs_possible"]
    assert table.loc["OID40986_OID20052", "n_qs"] == 37
    assert table.loc["OID40835_OID31162", "n_qs"] == 44  # S03 missing in Explore 3072
    assert set(table["mapped_by"]) == {"UniProt+Assay"}
    assert table.loc["OID43204_OID20473", "OlinkID_ref"] == "OID43204"  # one HT, two 3072
    attrs = table.attrs
    json.dumps(attrs)
    assert attrs["min_qs_samples"] == 40
    assert attrs["unmapped_ref"] == ["OID41012"]
    assert attrs["unmapped_other"] == ["OID20118"]


def test_bridge_normalize_cross_product_matches_olinkanalyze(pair):
    ht, e3k = pair
    res = _normalize(ht, e3k, 45)
    assert list(res.var_names) == list(OA_ADJ_45)[:3] + [
        "OID43204_OID20074", "OID43204_OID20473", "OID40986_OID20052"
    ]  # fmt: skip
    np.testing.assert_allclose(
        res.var["Adj_factor"].to_numpy(), [OA_ADJ_45[o] for o in res.var_names], atol=1e-12
    )
    other = np.flatnonzero(res.obs["Project"] == "P2")
    ref = np.flatnonzero(res.obs["Project"] == "P1")
    assert list(res.obs["SampleID"].iloc[other]) == OTHER_ROWS
    raw_o = e3k.X[:, e3k.var_names.get_indexer(res.var["OlinkID_other"])]
    raw_r = ht.X[:, ht.var_names.get_indexer(res.var["OlinkID_ref"])]
    mc = res.layers["MedianCenteredNPX"]
    np.testing.assert_allclose(mc[other], raw_o + res.var["Adj_factor"].to_numpy(), atol=1e-12)
    np.testing.assert_array_equal(mc[ref], raw_r)
    qs = res.layers["QSNormalizedNPX"]
    for oid, values in OA_QS_45.items():
        j = res.var_names.get_loc(oid)
        np.testing.assert_allclose(qs[other, j], values, atol=1e-10, equal_nan=True)
    # reference sample rows keep their NPX, control rows are NaN; CEBPB has no spline
    sample_r = ref[res.obs["SampleType"].iloc[ref] == "SAMPLE"]
    np.testing.assert_array_equal(qs[sample_r], raw_r[: len(sample_r)])
    assert np.isnan(qs[ref[-1]]).all() and np.isnan(qs[other[-1]]).all()
    assert np.isnan(qs[other, res.var_names.get_loc("OID40986_OID20052")]).all()
    # X: the recommended value; the reference untouched
    np.testing.assert_array_equal(res.X[ref], raw_r)
    for j, rec in enumerate(res.var["BridgingRecommendation"]):
        want = {"MedianCentering": mc, "QuantileSmoothing": qs}.get(rec)
        want = raw_o[:, j] if want is None else want[other, j]
        np.testing.assert_array_equal(res.X[other, j], want)
    assert res.obs["bridge"].sum() == 90
    rec = res.uns["olinkpipe"]["normalization"]["bridge_normalize"]
    assert rec["method"] == "cross-product" and rec["factors"].shape[0] == 6


def test_too_few_bridge_samples_gives_no_quantile_smoothing(pair):
    ht, e3k = pair
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        res = op.pp.bridge_normalize(ht, e3k, data.BRIDGE[:30])
    assert any("3 assay(s) have fewer than 40 bridge pairs" in str(w.message) for w in rec)
    assert "QuantileSmoothing" not in set(res.var["BridgingRecommendation"])
    oa_qs = [o for o, r in OA_REC.items() if r == "QuantileSmoothing"]
    assert (res.var.loc[oa_qs, "BridgingRecommendation"] == "MedianCentering").all()
    other = np.flatnonzero(res.obs["Project"] == "P2")
    assert np.isnan(res.layers["QSNormalizedNPX"][other]).all()  # OA: all NA too
    np.testing.assert_allclose(
        res.var["Adj_factor"].to_numpy(), [OA_ADJ_30[o] for o in res.var_names], atol=1e-12
    )
    np.testing.assert_array_equal(
        res.X[other][:, res.var_names.get_indexer(oa_qs)],
        res.layers["MedianCenteredNPX"][other][:, res.var_names.get_indexer(oa_qs)],
    )


def test_reverse_order_raises(pair):
    ht, e3k = pair
    with pytest.raises(DesignError, match="must be the reference"):
        op.pp.bridge_normalize(e3k, ht, data.BRIDGE)
    with pytest.raises(DesignError, match="must be the reference"):
        op.pp.bridgeability(e3k, ht, data.BRIDGE)


def test_unmapped_assays_are_recorded(pair):
    ht, e3k = pair
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        res = op.pp.bridge_normalize(ht, e3k, data.BRIDGE)
    msgs = [str(w.message) for w in rec if issubclass(w.category, OlinkpipeWarning)]
    assert any("no match" in m and "OID41012" in m for m in msgs)
    assert any("no match" in m and "OID20118" in m for m in msgs)
    ex = res.uns["olinkpipe"]["excluded"]
    ex = ex[ex["step"] == "bridge_normalize"]
    assert set(ex["id"]) == {"OID41012", "OID20118"}
    assert (ex["kind"] == "assay").all()


def _var(ids, uniprot, assay):
    import anndata as ad

    return ad.AnnData(
        np.zeros((1, len(ids))),
        var=pd.DataFrame({"UniProt": uniprot, "Assay": assay}, index=ids),
    )


def test_map_assays_rules():
    ref = _var(["OID1", "OID2", "OID3", "OID4", "OID5", "OID6"],
               ["P1", "P2", "P3", "P4", "P5", ""], ["A", "B", "C", "D", "E", "F"])  # fmt: skip
    oth = _var(["OID1", "OID7", "OID8", "OID9", "OID10", "OID11"],
               ["X", "P2", "P3", "P4", "P4", ""], ["Z", "B", "Cx", "D", "D", "F"])  # fmt: skip
    m = map_assays(ref, oth)
    got = {(a, b): how for a, b, how in m[["OlinkID_ref", "OlinkID_other", "mapped_by"]].values}
    assert got == {
        ("OID1", "OID1"): "OlinkID",
        ("OID2", "OID7"): "UniProt+Assay",
        ("OID3", "OID8"): "UniProt",
        ("OID4", "OID9"): "UniProt+Assay",  # one reference assay, two of the other product
        ("OID4", "OID10"): "UniProt+Assay",
    }
    assert m.attrs["unmapped_ref"] == ["OID5", "OID6"]  # no partner; empty UniProt never pairs
    assert m.attrs["unmapped_other"] == ["OID11"]
    assert list(m["OlinkID"])[:2] == ["OID1_OID1", "OID2_OID7"]
    # loose: isoform suffix, case and punctuation ignored (OA's table pairs these too)
    loose = map_assays(
        _var(["h1", "h2"], ["NT-proBNP", "Q13114"], ["NT-proBNP", "TRAF3"]),
        _var(["e1", "e2"], ["NTproBNP", "Q13114-2"], ["NTproBNP", "TRAF3"]),
    )
    assert list(loose["OlinkID"]) == ["h1_e1", "h2_e2"]
    assert set(loose["mapped_by"]) == {"UniProt+Assay (loose)"}
    # the same key several times on both sides: ambiguous, nothing paired
    amb = map_assays(
        _var(["a1", "a2"], ["P"] * 2, ["A"] * 2), _var(["b1", "b2"], ["P"] * 2, ["A"] * 2)
    )
    assert amb.empty and amb.attrs["ambiguous_uniprot"] == ["P"]
    # a user mapping replaces the rule; pairs naming absent assays are ignored
    user = pd.DataFrame(
        {"OlinkID_HT": ["OID5", "OID2", "nope"], "OlinkID_E3072": ["OID11", "OID7", "OID1"]}
    )
    m = map_assays(ref, oth, user)
    assert list(m["OlinkID"]) == ["OID2_OID7", "OID5_OID11"]
    assert set(m["mapped_by"]) == {"mapping"}
    with pytest.raises(ValidationError, match="none of its pairs"):
        map_assays(ref, oth, pd.DataFrame({"a": ["x"], "b": ["y"]}))


def test_user_mapping_in_bridge_normalize(pair):
    ht, e3k = pair
    mapping = pd.DataFrame({"OlinkID_HT": ["OID40770"], "OlinkID_E3072": ["OID20117"]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)
        res = op.pp.bridge_normalize(ht, e3k, data.BRIDGE, mapping=mapping)
    assert list(res.var_names) == ["OID40770_OID20117"]
    assert res.var["Adj_factor"].iloc[0] == pytest.approx(
        OA_ADJ_45["OID40770_OID20117"], abs=1e-12
    )
    with pytest.raises(ValidationError, match="cross-product"):
        op.pp.bridge_normalize(ht, ht, data.BRIDGE, mapping=mapping)


def test_needs_counts(pair):
    ht, e3k = pair
    e3k = e3k.copy()
    del e3k.layers["Count"]
    with pytest.raises(MissingColumnError, match="Count"), warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)
        op.pp.bridge_normalize(ht, e3k, data.BRIDGE)


def test_product_pairs(pair):
    ht, e3k = pair
    rev = ht.copy()
    rev.uns["olinkpipe"] = {"product": "Reveal"}
    assert _bridgeability(rev, e3k, 45).attrs["min_qs_samples"] == 32  # OA: E3072-Reveal
    assert _bridgeability(rev, ht, 45).attrs["min_qs_samples"] == 24  # HT-Reveal, both ways
    assert _bridgeability(ht, rev, 45).attrs["min_qs_samples"] == 24
    with pytest.raises(DesignError, match="two different products"):
        op.pp.bridgeability(ht, ht, data.BRIDGE)


def test_kernels_against_scipy_and_numpy():
    rng = np.random.default_rng(1)
    a = np.round(rng.normal(size=(25, 40)), 1)  # ties
    b = np.round(rng.normal(0.3, 1.2, size=(25, 40)), 1)
    a[rng.random(a.shape) < 0.1] = np.nan
    b[np.isnan(a)] = np.nan
    ks = cs.ks_statistic(a, b)
    r2 = cs.r_squared(a, b)
    for j in range(a.shape[1]):
        x, y = a[~np.isnan(a[:, j]), j], b[~np.isnan(b[:, j]), j]
        assert ks[j] == pytest.approx(stats.ks_2samp(x, y).statistic, abs=1e-14)
        assert r2[j] == pytest.approx(np.corrcoef(x, y)[0, 1] ** 2, abs=1e-12)
    # R: quantile(c(3, 1, 4, 1, 5, 9, 2, 6), c(0.1, 0.9)) -> 1.0, 6.9 (type 7)
    np.testing.assert_allclose(
        cs.quantile_1d([3, 1, 4, 1, 5, 9, 2, 6], [0.1, 0.9]), [1.0, 6.9], atol=1e-14
    )


def _with_control_assay(a):
    """``a`` plus an external-control assay under the same OlinkID in both products."""
    import anndata as ad

    extra = ad.AnnData(
        np.linspace(0, 1, a.n_obs)[:, None],
        obs=a.obs,
        var=pd.DataFrame(
            {
                "Assay": ["Ext Ctrl"],
                "UniProt": [""],
                "Panel": ["x"],
                "AssayType": ["ext_ctrl"],
                "Normalization": ["Plate control"],
                "is_control": [True],
            },
            index=["OID99999"],
        ),  # fmt: skip
        layers={"Count": np.full((a.n_obs, 1), 1000.0)},
    )
    out = ad.concat([a, extra], axis=1, merge="same")
    out.obs = a.obs.copy()
    out.uns["olinkpipe"] = dict(a.uns["olinkpipe"])
    return out


def test_control_assays_are_not_bridged_and_result_writes(pair, tmp_path):
    import anndata as ad

    ht, e3k = (_with_control_assay(a) for a in pair)
    res = _normalize(ht, e3k, 45)
    row = res.var.loc["OID99999_OID99999"]
    assert row["mapped_by"] == "OlinkID" and row["BridgingRecommendation"] == "NotBridgeable"
    j = res.var_names.get_loc("OID99999_OID99999")
    other = np.flatnonzero(res.obs["Project"] == "P2")
    np.testing.assert_array_equal(res.X[other, j], e3k.X[:, -1])  # unadjusted
    assert np.isnan(res.layers["QSNormalizedNPX"][:, j]).all()  # OA: control assays dropped
    res.write_h5ad(tmp_path / "x.h5ad")
    back = ad.read_h5ad(tmp_path / "x.h5ad")
    assert list(back.var["BridgingRecommendation"]) == list(res.var["BridgingRecommendation"])
    factors = back.uns["olinkpipe"]["normalization"]["bridge_normalize"]["factors"]
    assert factors.shape[0] == res.n_vars


def test_dask_input_is_refused(pair):
    da = pytest.importorskip("dask.array")
    ht, e3k = pair
    lazy = e3k.copy()
    lazy.X = da.from_array(e3k.X)
    with pytest.raises(ValidationError, match="in-memory"):
        op.pp.bridge_normalize(ht, lazy, data.BRIDGE)

"""tl.ora and tl.gsea against scipy, statsmodels and gseapy computed here."""

from __future__ import annotations

import json
import warnings
from importlib import metadata

import gseapy
import numpy as np
import pandas as pd
import pytest
from scipy.stats import fisher_exact, hypergeom
from statsmodels.stats.multitest import multipletests

import olinkpipe as op
from olinkpipe.errors import DesignError, MissingColumnError, ValidationError
from olinkpipe.tl.enrich import running_score

GENES = [f"G{i:03d}" for i in range(240)]


def _sets(seed=0, n_sets=40):
    rng = np.random.default_rng(seed)
    pool = GENES[:200]  # G200..G239 are in no set
    return {
        f"set{j:02d}": list(rng.choice(pool, size=int(rng.integers(3, 40)), replace=False))
        for j in range(n_sets)
    }


def _result(seed=1, n=180):
    rng = np.random.default_rng(seed)
    genes = list(rng.choice(GENES, size=n, replace=False))
    est = rng.normal(scale=1.0, size=n)
    stat = est * 3 + rng.normal(scale=0.5, size=n)
    p = np.clip(rng.uniform(size=n) ** 3, 1e-12, 1)
    frame = pd.DataFrame(
        {"gene": genes, "estimate": est, "statistic": stat, "p_value": p, "p_adj": np.nan}
    )
    frame["p_adj"] = multipletests(frame["p_value"], method="fdr_bh")[1]
    return frame


def _reference_ora(result, sets, *, direction, alpha, min_size, max_size):
    """Per-set loop with scipy, written independently of the kernel."""
    all_set_genes = set().union(*map(set, sets.values()))
    tested = result[result["p_value"].notna()]
    universe = set(tested["gene"]) & all_set_genes
    sig = tested["p_adj"] < alpha
    if direction == "up":
        sig &= tested["estimate"] > 0
    elif direction == "down":
        sig &= tested["estimate"] < 0
    selected = set(tested.loc[sig, "gene"]) & universe
    big_n, n = len(universe), len(selected)
    rows = {}
    for term, genes in sets.items():
        members = set(genes) & universe
        big_k = len(members)
        if not min_size <= big_k <= max_size:
            continue
        k = len(members & selected)
        p_h = hypergeom.sf(k - 1, big_n, big_k, n)
        table = [[k, big_k - k], [n - k, big_n - big_k - n + k]]
        odds, p_f = fisher_exact(table, alternative="greater")
        rows[term] = (big_k, k, p_h, p_f, odds)
    return rows, big_n, n


@pytest.mark.parametrize("direction", ["up", "down", "both"])
def test_ora_matches_hypergeom_fisher_and_bh(direction):
    sets, res = _sets(), _result()
    out = op.tl.ora(res, sets, direction=direction, alpha=0.1, min_size=3, max_size=30)
    ref, big_n, n = _reference_ora(
        res, sets, direction=direction, alpha=0.1, min_size=3, max_size=30
    )
    assert n > 3 and len(ref) > 20
    assert set(out["term"]) == set(ref)
    assert out.attrs["universe_size"] == big_n and out.attrs["n_selected"] == n
    got = out.set_index("term").loc[list(ref)]
    exp = pd.DataFrame(ref, index=["K", "k", "p_h", "p_f", "odds"]).T
    np.testing.assert_array_equal(got["set_size"], exp["K"].astype(int))
    np.testing.assert_array_equal(got["overlap"], exp["k"].astype(int))
    # tolerance: the kernel calls the same hypergeometric survival function
    np.testing.assert_allclose(got["p_value"], exp["p_h"].astype(float), rtol=1e-12, atol=0)
    np.testing.assert_allclose(got["p_value"], exp["p_f"].astype(float), rtol=1e-9, atol=1e-15)
    finite = np.isfinite(exp["odds"].astype(float))
    np.testing.assert_allclose(got["odds_ratio"][finite], exp["odds"][finite].astype(float))
    np.testing.assert_allclose(got["expected"], n * exp["K"].astype(float) / big_n)
    # BH over the sets tested, against statsmodels
    bh = multipletests(out["p_value"], method="fdr_bh")[1]
    np.testing.assert_allclose(out["p_adj"], bh, rtol=1e-12)
    assert out["p_value"].is_monotonic_increasing
    assert list(out.columns) == [
        "term", "direction", "set_size", "overlap", "expected", "odds_ratio",
        "p_value", "p_adj", "genes", "assays",
    ]  # fmt: skip
    assert (out["direction"] == direction).all()
    # the overlap columns list exactly the selected members, most significant first
    tested = res[res["p_value"].notna()]
    sel = tested["p_adj"] < 0.1
    if direction == "up":
        sel &= tested["estimate"] > 0
    elif direction == "down":
        sel &= tested["estimate"] < 0
    p_of = dict(zip(tested["gene"], tested["p_value"], strict=True))
    selected = set(tested.loc[sel, "gene"])
    for term, row in out.set_index("term").iterrows():
        expect = sorted(set(sets[term]) & selected, key=lambda g: (p_of[g], g))
        got_genes = row["genes"].split(";") if row["genes"] else []
        assert got_genes == expect, term
        assert row["assays"] == row["genes"]  # a gene column: the label is the gene


def test_ora_hand_worked_example():
    # Universe of 10 genes (all in a set), 4 significant; set A has 4 members, 3 of them
    # significant: P(X >= 3) = [C(4,3)C(6,1) + C(4,4)C(6,0)] / C(10,4) = 25/210.
    genes = [f"g{i}" for i in range(10)]
    res = pd.DataFrame(
        {
            "gene": genes,
            "estimate": [1.0] * 10,
            "statistic": 1.0,
            "p_value": [0.001] * 4 + [0.9] * 6,
            "p_adj": [0.004] * 4 + [0.9] * 6,
        }
    )
    sets = {"A": ["g0", "g1", "g2", "g9"], "B": genes[3:]}
    out = op.tl.ora(res, sets, min_size=1).set_index("term")
    assert out.loc["A", "p_value"] == pytest.approx(25 / 210, rel=1e-12)
    assert out.loc["A", "overlap"] == 3 and out.loc["A", "expected"] == pytest.approx(1.6)
    assert out.loc["A", "odds_ratio"] == pytest.approx(3 * 5 / (1 * 1))
    assert out.loc["A", "genes"] == "g0;g1;g2"
    assert out.loc["B", "p_value"] == pytest.approx(1.0)


def test_ora_universe_is_tested_genes_in_sets():
    sets = {"S1": ["A", "B", "C", "D"], "S2": ["C", "D", "E", "F", "Z"]}
    res = pd.DataFrame(
        {
            "gene": ["A", "B", "C", "D", "E", "F", "OUT1", "OUT2", "NAN"],
            "estimate": [1, 1, 1, -1, -1, 1, 1, 1, 1.0],
            "statistic": 0.0,
            "p_value": [1e-5, 1e-4, 0.5, 0.5, 0.5, 0.5, 1e-6, 1e-6, np.nan],
            "p_adj": [1e-4, 1e-3, 0.6, 0.6, 0.6, 0.6, 1e-5, 1e-5, np.nan],
        }
    )
    out = op.tl.ora(res, sets, min_size=2).set_index("term")
    # OUT1/OUT2 (in no set), NAN (untested) and Z (not measured) are not in the universe
    assert out.attrs["universe_size"] == 6
    assert out.attrs["untested"] == ["NAN"]
    assert out.loc["S2", "set_size"] == 4
    assert out.loc["S1", "p_value"] == pytest.approx(hypergeom.sf(1, 6, 4, 2))
    # a user universe is intersected with the collection's genes
    out2 = op.tl.ora(res, sets, min_size=2, universe=["A", "B", "C", "D", "E", "F", "Z", "Q"])
    assert out2.attrs["universe_size"] == 7
    assert out2.set_index("term").loc["S2", "set_size"] == 5


def test_ora_size_filter_after_restriction():
    sets = {"small": ["A", "B", "X1", "X2", "X3"], "ok": ["A", "B", "C"]}
    res = pd.DataFrame(
        {"gene": list("ABC"), "estimate": 1.0, "statistic": 1.0, "p_value": 0.01, "p_adj": 0.01}
    )
    out = op.tl.ora(res, sets, min_size=3)
    assert out["term"].tolist() == ["ok"]  # "small" has 2 measured members
    assert out.attrs["n_sets_tested"] == 1


def test_ora_several_assays_of_one_gene_count_once():
    sets = {"S": ["IL6", "TNF", "IL10"], "T": ["CCL2", "IL6", "CXCL8"]}
    res = pd.DataFrame(
        {
            "OlinkID": ["OID1", "OID2", "OID3", "OID4", "OID5"],
            "Assay": ["IL6", "IL6", "TNF", "MCP-1", "IL8"],
            "UniProt": ["P05231", "P05231", "P01375", "P13500", "P10145"],
            "estimate": [-0.5, 1.0, 1.0, 1.0, -1.0],
            "statistic": 1.0,
            "p_value": [0.01, 1e-6, 1e-5, 1e-3, 0.5],
            "p_adj": [0.02, 1e-5, 1e-4, 2e-3, 0.5],
        }
    )
    out = op.tl.ora(res, sets, min_size=2)
    assert out.attrs["duplicate_genes"] == {"IL6": {"used": "OID2", "ignored": ["OID1"]}}
    assert out.attrs["universe_size"] == 4  # IL6 once, TNF, CCL2 (MCP-1), CXCL8 (IL8)
    t = out.set_index("term").loc["T"]
    assert t["genes"] == "IL6;CCL2" and t["assays"] == "IL6;MCP-1"
    assert t["set_size"] == 3
    json.dumps(out.attrs)


def test_ora_records_collection_and_version_on_kegg():
    kegg = op.genesets.load("KEGG_2021_Human")
    jak = kegg["JAK-STAT signaling pathway"]
    rng = np.random.default_rng(3)
    background = sorted(kegg.genes - set(jak))
    genes = list(rng.choice(background, 300, replace=False)) + jak[:25]
    est = np.r_[rng.normal(0, 0.2, 300), np.full(25, 1.0)]
    p = np.r_[rng.uniform(0.05, 1, 300), np.full(25, 1e-6)]
    res = pd.DataFrame({"gene": genes, "estimate": est, "statistic": est, "p_value": p})
    res["p_adj"] = multipletests(res["p_value"], method="fdr_bh")[1]
    out = op.tl.ora(res)
    assert out["term"].iloc[0] == "JAK-STAT signaling pathway"
    assert out.attrs["collection"] == "KEGG_2021_Human"
    assert out.attrs["collection_version"] == metadata.version("blitzgsea")
    assert out.attrs["collection_source"].startswith("blitzgsea:")


def test_missing_columns_are_named():
    with pytest.raises(MissingColumnError, match=r"\['p_value', 'p_adj'\]"):
        op.tl.ora(pd.DataFrame({"Assay": ["IL6"], "estimate": [1.0]}), {"S": ["IL6"]})
    with pytest.raises(MissingColumnError, match=r"Assay \(or gene\)"):
        op.tl.ora(
            pd.DataFrame({"name": ["IL6"], "estimate": [1.0], "p_value": [0.1], "p_adj": [0.1]}),
            {"S": ["IL6"]},
        )
    with pytest.raises(MissingColumnError, match="statistic"):
        op.tl.gsea(pd.DataFrame({"gene": ["IL6"], "estimate": [1.0], "p_value": [0.1]}), {})
    with pytest.raises(DesignError, match="direction"):
        op.tl.ora(_result(), _sets(), direction="sideways")
    with pytest.raises(DesignError, match="rank_by"):
        op.tl.gsea(_result(), _sets(), rank_by="fold")
    with pytest.raises(ValidationError, match="min_size"):
        op.tl.ora(_result(), _sets(), min_size=10, max_size=5)


# ------------------------------------------------------------------------------- GSEA


def _gsea_inputs():
    res = _result(seed=5, n=200)
    sets = _sets(seed=6, n_sets=25)
    ranked = set(res["gene"])
    sets = {t: [g for g in gs if g in ranked] for t, gs in sets.items()}
    return res, sets


def test_gsea_matches_gseapy_prerank_directly():
    res, sets = _gsea_inputs()
    out = op.tl.gsea(res, sets, permutations=200, min_size=5, max_size=500, seed=7)
    rnk = res.set_index("gene")["statistic"].sort_values(ascending=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gseapy's own notices: it is only the reference
        pre = gseapy.prerank(
            rnk=rnk, gene_sets=sets, permutation_num=200, min_size=5, max_size=500,
            seed=7, threads=1, outdir=None, no_plot=True, verbose=False,
        )  # fmt: skip
    ref = pre.res2d.set_index("Term")
    got = out.set_index("term").loc[ref.index]
    assert len(got) == len(ref) > 10
    np.testing.assert_allclose(got["es"], ref["ES"].astype(float), rtol=1e-12)
    np.testing.assert_allclose(got["nes"], ref["NES"].astype(float), rtol=1e-12)
    np.testing.assert_allclose(got["p_value"], ref["NOM p-val"].astype(float), rtol=1e-12)
    np.testing.assert_allclose(got["p_adj"], ref["FDR q-val"].astype(float), rtol=1e-12)
    assert got["leading_edge"].tolist() == ref["Lead_genes"].tolist()
    assert list(out.columns) == [
        "term",
        "set_size",
        "es",
        "nes",
        "p_value",
        "p_adj",
        "leading_edge",
    ]
    for term in ref.index[:5]:
        r = pre.results[term]
        assert got.loc[term, "set_size"] == len(r["hits"])
        # the running score the plots draw equals gseapy's
        curve = running_score(out.attrs["ranking"]["metric"], out.attrs["hits"][term])
        np.testing.assert_allclose(curve, np.asarray(r["RES"], dtype=float), atol=1e-10)
        assert np.max(np.abs(curve)) == pytest.approx(abs(r["es"]), rel=1e-9)
    json.dumps(out.attrs)


def test_gsea_same_seed_same_result_and_signed_p():
    res, sets = _gsea_inputs()
    a = op.tl.gsea(res, sets, permutations=100, seed=1)
    b = op.tl.gsea(res, sets, permutations=100, seed=1)
    pd.testing.assert_frame_equal(a, b)
    c = op.tl.gsea(res, sets, permutations=100, seed=2)
    assert not np.allclose(a.sort_values("term")["p_value"], c.sort_values("term")["p_value"])
    s = op.tl.gsea(res, sets, rank_by="signed_p", permutations=50)
    expect = np.sign(res["estimate"]) * -np.log10(res["p_value"])
    expect = pd.Series(expect.to_numpy(), index=res["gene"]).sort_values(ascending=False)
    got = pd.Series(s.attrs["ranking"]["metric"], index=s.attrs["ranking"]["gene"])
    np.testing.assert_allclose(got.loc[expect.index], expect.to_numpy(), rtol=1e-12)
    assert s.attrs["rank_by"] == "signed_p" and s.attrs["seed"] == 0


def test_gsea_enriches_planted_set_from_assay_names():
    # Target 96 names are mapped to symbols: IL-2RB -> IL2RB, PD-L1 -> CD274, ...
    rng = np.random.default_rng(11)
    names = ["IL-2RB", "PD-L1", "IFN-gamma", "IL6", "IL10", "IL-10RA", "IL-10RB", "IL-15RA"]
    filler = [f"G{i:03d}" for i in range(120)]
    res = pd.DataFrame({"Assay": names + filler})
    res["estimate"] = np.r_[np.linspace(2, 1.5, len(names)), rng.normal(0, 0.5, 120)]
    res["statistic"] = res["estimate"] * 4
    res["p_value"] = 0.01
    res["p_adj"] = 0.02
    sets = {
        "JAK-STAT-like": ["IL2RB", "CD274", "IFNG", "IL6", "IL10", "IL10RA", "IL10RB", "IL15RA"],
        "random": filler[:10],
    }
    out = op.tl.gsea(res, sets, permutations=200, seed=0).set_index("term")
    assert out.loc["JAK-STAT-like", "es"] > 0.9
    assert out.loc["JAK-STAT-like", "set_size"] == 8
    assert out.loc["JAK-STAT-like", "p_value"] < 0.05
    assert out.attrs["gene_assay"]["CD274"] == "PD-L1"


def test_gsea_rank_by_estimate_without_p_values():
    # OlinkAnalyze ranks by estimate; a table of estimates alone is enough for that
    genes = [f"G{i:02d}" for i in range(50)]
    res = pd.DataFrame({"gene": genes[::-1], "estimate": np.linspace(-2, 2, 50)})
    out = op.tl.gsea(res, {"a": genes[:6], "b": genes[-6:]}, rank_by="estimate", permutations=50)
    assert list(out.attrs["ranking"]["gene"]) == genes
    np.testing.assert_allclose(out.attrs["ranking"]["metric"], np.linspace(2, -2, 50))
    es = out.set_index("term")["es"]
    assert es["a"] == pytest.approx(1.0) and es["b"] == pytest.approx(-1.0)


def test_ora_user_mapping_overrides_and_unmapped_are_listed():
    sets = {"S": ["IL6", "TNF", "MYGENE", "CCL2"], "T": ["TNF", "CCL2", "IL10", "CD274"]}
    res = pd.DataFrame(
        {
            "OlinkID": ["OID1", "OID2", "OID3", "OID4", "OID5", "OID6"],
            "Assay": ["IL6", "TNF", "odd assay", "MCP-1", "IL10", "PD-L1"],
            "UniProt": ["P05231", "P01375", "", "P13500", "P22301", "Q9NZQ7"],
            "estimate": [1.0, 1.0, 1.0, 1.0, -1.0, 0.2],
            "statistic": 1.0,
            "p_value": [1e-6, 1e-5, 1e-4, 0.5, 0.5, 0.6],
            "p_adj": [1e-5, 1e-4, 1e-3, 0.6, 0.6, 0.6],
        }
    )
    with pytest.warns(op.OlinkpipeWarning, match=r"1 assay\(s\) could not be mapped.*odd assay"):
        plain = op.tl.ora(res, sets, min_size=2)
    assert plain.attrs["unmapped"] == ["odd assay"]
    assert plain.attrs["universe_size"] == 5  # IL6, TNF, CCL2 (MCP-1), IL10, CD274 (PD-L1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mapped = op.tl.ora(res, sets, min_size=2, mapping={"OID3": "MYGENE"})
    s_row = mapped.set_index("term").loc["S"]
    assert s_row["genes"] == "IL6;TNF;MYGENE" and s_row["assays"] == "IL6;TNF;odd assay"
    assert mapped.attrs["unmapped"] == [] and mapped.attrs["universe_size"] == 6
    assert s_row["p_value"] == pytest.approx(hypergeom.sf(2, 6, 4, 3), rel=1e-12)


def test_ora_offline_name_loaded_and_edited_collections_agree():
    # offline collections reuse a cached membership index; an edited copy must not
    kegg = op.genesets.load("KEGG_2021_Human")
    jak = kegg["JAK-STAT signaling pathway"]
    rng = np.random.default_rng(8)
    genes = list(rng.choice(sorted(kegg.genes - set(jak)), 200, replace=False)) + jak[:20]
    res = pd.DataFrame({"gene": genes, "estimate": 1.0, "statistic": 1.0})
    res["p_value"] = np.r_[rng.uniform(0.2, 1, 200), np.full(20, 1e-6)]
    res["p_adj"] = multipletests(res["p_value"], method="fdr_bh")[1]
    by_name = op.tl.ora(res, "KEGG_2021_Human")
    by_obj = op.tl.ora(res, kegg)
    by_dict = op.tl.ora(res, dict(kegg))
    pd.testing.assert_frame_equal(by_name, by_obj)
    cols = ["term", "set_size", "overlap", "p_value", "p_adj", "genes"]
    pd.testing.assert_frame_equal(by_name[cols], by_dict[cols])
    assert by_obj.attrs["collection"] == "KEGG_2021_Human"
    # edit a set in place: the cached index must not be used for the edited collection
    kegg["JAK-STAT signaling pathway"].append(genes[0])
    edited = op.tl.ora(res, kegg).set_index("term")
    ref = by_name.set_index("term")
    term = "JAK-STAT signaling pathway"
    assert edited.loc[term, "set_size"] == ref.loc[term, "set_size"] + 1
    assert edited.attrs["collection"] == "KEGG_2021_Human"
    assert edited.attrs["collection_source"].endswith("(edited after loading)")
    assert by_obj.attrs["collection_source"] == "blitzgsea:data/KEGG_2021_Human"


def test_set_index_restrict_matches_a_python_loop():
    from olinkpipe.genesets.collections import SetIndex

    sets = _sets(seed=9, n_sets=30)
    sets["dup"] = ["G001", "G001", "G002"]
    idx = SetIndex.from_sets(sets)
    rng = np.random.default_rng(2)
    universe = list(rng.choice(GENES, 120, replace=False)) + ["NOT_IN_ANY_SET"]
    terms, mat = idx.restrict(universe, min_size=2, max_size=25)
    pos = {g: i for i, g in enumerate(universe)}
    expect = {}
    for term, members in sets.items():
        cols = sorted({pos[g] for g in members if g in pos})
        if 2 <= len(cols) <= 25:
            expect[term] = cols
    assert list(terms) == list(expect)
    assert mat.shape == (len(expect), len(universe))
    for i, term in enumerate(terms):
        assert mat.indices[mat.indptr[i] : mat.indptr[i + 1]].tolist() == expect[term]
    assert set(mat.data.tolist()) <= {1}


def test_gsea_plot_data_is_shared_read_only_and_json_safe():
    import copy
    import pickle

    res, sets = _gsea_inputs()
    out = op.tl.gsea(res, sets, permutations=20, seed=0)
    ranking = out.attrs["ranking"]
    # pandas deep-copies attrs on every operation: the heavy plot data must be shared
    assert copy.deepcopy(out.attrs)["ranking"] is ranking
    assert out[out["p_value"] <= 1].attrs["hits"] is out.attrs["hits"]
    assert out.copy().attrs["gene_assay"] is out.attrs["gene_assay"]
    with pytest.raises(TypeError, match="read-only"):
        ranking["gene"] = ()
    with pytest.raises(TypeError, match="read-only"):
        out.attrs["hits"].update({})
    assert isinstance(ranking["gene"], tuple)
    back = json.loads(json.dumps(out.attrs))
    assert back["ranking"]["gene"] == list(ranking["gene"])
    assert back["hits"] == {k: list(v) for k, v in out.attrs["hits"].items()}
    again = pickle.loads(pickle.dumps(out))
    assert again.attrs["ranking"] == ranking and again.attrs["hits"] == out.attrs["hits"]
    assert len(repr(out.attrs)) < 3000  # printing attrs does not dump the whole ranking


def test_prepare_genes_steps():
    from olinkpipe.tl._enrich import _best_row_per_gene, _check_result, _genes_per_row

    with pytest.raises(ValidationError, match="takes a DataFrame"):
        _check_result([1, 2], [], "ora")
    with pytest.raises(MissingColumnError, match=r"\['Assay \(or gene\)', 'p_adj'\]"):
        _check_result(pd.DataFrame({"p_value": [0.1]}), ["p_adj"], "ora")
    frame = pd.DataFrame({"gene": ["A;B", np.nan, "C  D", "a,"]}, index=[5, 6, 7, 8])
    checked = _check_result(frame, [], "ora")
    assert checked.index.tolist() == [0, 1, 2, 3]
    labels = checked["gene"].astype(str).to_numpy(dtype=object)
    genes, how, orth = _genes_per_row(checked, labels, labels, mapping=None, organism="human")
    assert genes == [("A", "B"), (), ("C", "D"), ("a",)]
    assert how == "gene column" and orth is None
    # ties on the key: the first row in input order; NaN keys are untested, left out
    rows, kept, dup = _best_row_per_gene(
        [("A",), ("A",), ("B",)], np.array([0.2, 0.2, np.nan]), np.array(["o1", "o2", "o3"])
    )
    assert rows.tolist() == [0] and kept.tolist() == ["A"]
    assert dup == {"A": {"used": "o1", "ignored": ["o2"]}}

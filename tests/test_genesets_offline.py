"""Offline collections: manifest and licences, the bundle build step (Reactome / MSigDB
Hallmark), mouse -> human orthologs, and ora/gsea by name and with organism="mouse"."""

from __future__ import annotations

import gzip
import hashlib
import json
import zipfile
from importlib import resources

import numpy as np
import pandas as pd
import pytest

import olinkpipe as op
from olinkpipe.errors import DesignError, MissingColumnError, OlinkpipeWarning, ValidationError
from olinkpipe.genesets import _manifest, bundle, collections, orthologs

# A Hallmark-format file made here (MSigDB's layout: name, URL, genes); sizes chosen so the
# checks below can fail. The real file is bundled by the build step, not shipped in git.
_IFNG = ["STAT1", "IRF1", "CXCL10", "CXCL9", "IDO1", "GBP1", "SOCS1", "JAK2", "IL6", "TNF"]
_INFL = ["IL6", "TNF", "IL1B", "CXCL1", "CCL3", "CCL2", "NFKB1", "PTGS2"]
_HALLMARK = (
    "HALLMARK_INTERFERON_GAMMA_RESPONSE\thttps://www.gsea-msigdb.org/x\t"
    + "\t".join(_IFNG)
    + "\nHALLMARK_INFLAMMATORY_RESPONSE\thttps://www.gsea-msigdb.org/y\t"
    + "\t".join(_INFL)
    + "\n"
)
_REACTOME = (
    "Interleukin-6 signaling\tR-HSA-1059683\tIL6\tIL6R\tIL6ST\tJAK1\tSTAT3\tSTAT1\n"
    "Chemokine receptors bind chemokines\tR-HSA-380108\tCXCL1\tCCL3\tCCL2\tCXCL10\tCXCL9\n"
)


@pytest.fixture
def bundle_dir(tmp_path, monkeypatch):
    """A private folder on $OLINKPIPE_GENESETS_PATH; the registry is restored after."""
    folder = tmp_path / "bundled"
    monkeypatch.setenv(_manifest.ENV_PATH, str(folder))
    yield folder
    monkeypatch.delenv(_manifest.ENV_PATH)
    collections.refresh()


def _hallmark(tmp_path, folder):
    src = tmp_path / "h.all.v2099.1.Hs.symbols.gmt"
    src.write_text(_HALLMARK)
    return op.genesets.bundle_collection("hallmark", src, version="2099.1.Hs", dest=folder)


# --------------------------------------------------------------------------------------
# manifest and licences
# --------------------------------------------------------------------------------------


def test_manifest_checksums_match_the_shipped_files():
    man = _manifest.static_manifest()
    for name, entry in man["collections"].items():
        data = resources.files(entry["package"]).joinpath(entry["resource"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], name
        assert len(op.genesets.load(name)) == entry["n_sets"]
        for key in ("source_url", "version", "licence", "licence_url", "attribution"):
            assert entry[key], (name, key)
    orth = man["orthologs"]["mouse"]
    data = resources.files("olinkpipe.genesets").joinpath("data", orth["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == orth["sha256"]
    assert len(data) < 1_000_000  # compact: gzip, well under a few MB
    table = op.genesets.ortholog_table()
    assert len(table) == orth["n_pairs"]
    assert table["mouse"].nunique() == orth["n_mouse_genes"]


def test_available_details_lists_licences():
    t = op.genesets.available(details=True).set_index("name")
    assert list(t.index[:2]) == ["KEGG_2021_Human", "GO_Biological_Process_2023"]
    assert not t.loc["KEGG_2021_Human", "commercial_use"]
    assert t.loc["GO_Biological_Process_2023", "licence"] == "CC-BY-4.0"
    assert t.loc["GO_Biological_Process_2023", "commercial_use"]
    assert t.loc["KEGG_2021_Human", "sha256"].startswith("328cd8c1")
    # the names-only form is unchanged
    assert op.genesets.available()[:2] == ["KEGG_2021_Human", "GO_Biological_Process_2023"]


def test_licence_notice_in_docs():
    from pathlib import Path

    root = Path(op.__file__).resolve().parents[1]
    notice = (root / "LICENSES" / "DATA_NOTICE.md").read_text()
    for needle in ("HCOP", "CC0", "Reactome", "MSigDB", "CC BY 4.0", "KEGG", "blitzgsea"):
        assert needle in notice, needle
    man = (root / "docs" / "genesets.md").read_text()
    assert _manifest.static_manifest()["orthologs"]["mouse"]["sha256"] in man


def test_collection_attrs_carry_licence():
    kegg = op.genesets.load("KEGG_2021_Human")
    assert kegg.licence.startswith("KEGG terms")
    assert kegg.describe()["collection_licence"] == kegg.licence


# --------------------------------------------------------------------------------------
# names: typos, not-bundled sources
# --------------------------------------------------------------------------------------


def test_typo_gets_close_match_hint():
    with pytest.raises(ValidationError, match=r"Did you mean \['KEGG_2021_Human'\]"):
        op.genesets.load("KEGG_2012_Human")


@pytest.mark.parametrize(
    ("name", "source"), [("Reactome_2022", "reactome"), ("MSigDB_Hallmark_2023", "hallmark")]
)
def test_unbundled_source_says_how_to_bundle(name, source):
    with pytest.raises(ValidationError) as exc:
        op.tl.ora(
            pd.DataFrame({"gene": ["IL6"], "estimate": [1.0], "p_value": [0.01], "p_adj": [0.01]}),
            name,
        )
    text = str(exc.value)
    assert f"python -m olinkpipe.genesets.bundle {source} FILE --version V" in text
    assert bundle.SOURCES[source]["licence"] in text


# --------------------------------------------------------------------------------------
# the bundle build step
# --------------------------------------------------------------------------------------


def test_bundle_hallmark_then_load_by_name(tmp_path, bundle_dir):
    entry = _hallmark(tmp_path, bundle_dir)
    name = "MSigDB_Hallmark_2099.1.Hs"
    assert entry["name"] == name
    assert name in op.genesets.available()
    hm = op.genesets.load(name)
    assert len(hm) == 2
    ifng = hm["HALLMARK_INTERFERON_GAMMA_RESPONSE"]
    assert ifng == _IFNG and "STAT1" in ifng
    assert hm.version == "2099.1.Hs" and hm.licence == "CC-BY-4.0"
    # sidecar: provenance and checksums of the input and of the shipped file
    side = json.loads((bundle_dir / f"{name}.json").read_text())
    src = tmp_path / "h.all.v2099.1.Hs.symbols.gmt"
    assert side["source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    shipped = (bundle_dir / f"{name}.gmt.gz").read_bytes()
    assert side["sha256"] == hashlib.sha256(shipped).hexdigest()
    assert side["n_sets"] == 2 and side["n_genes"] == len(set(_IFNG) | set(_INFL))
    assert side["commercial_use"] is True
    assert "Liberzon" in side["attribution"]
    assert side["source_url"].endswith("/2099.1.Hs/h.all.v2099.1.Hs.symbols.gmt")
    details = op.genesets.available(details=True).set_index("name")
    assert details.loc[name, "licence"] == "CC-BY-4.0"


def test_bundle_is_reproducible(tmp_path, bundle_dir):
    first = _hallmark(tmp_path, bundle_dir)["sha256"]
    again = _hallmark(tmp_path, tmp_path / "other")["sha256"]
    assert first == again


def test_bundle_reactome_zip(tmp_path, bundle_dir):
    src = tmp_path / "ReactomePathways.gmt.zip"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("ReactomePathways.gmt", _REACTOME)
    entry = op.genesets.bundle_collection("reactome", src, version="94", dest=bundle_dir)
    assert entry["name"] == "Reactome_94" and entry["licence"] == "CC0-1.0"
    r = op.genesets.load("Reactome_94")
    assert r["Interleukin-6 signaling"][:3] == ["IL6", "IL6R", "IL6ST"]
    # the shipped file is gzip GMT keeping Reactome's identifier as description
    text = gzip.decompress((bundle_dir / "Reactome_94.gmt.gz").read_bytes()).decode()
    assert text.splitlines()[0].split("\t")[:3] == [
        "Interleukin-6 signaling",
        "R-HSA-1059683",
        "IL6",
    ]


def test_bundle_rejects_the_wrong_file(tmp_path, bundle_dir):
    src = tmp_path / "x.gmt"
    src.write_text(_REACTOME)
    with pytest.raises(ValidationError, match="does not look like an MSigDB Hallmark"):
        op.genesets.bundle_collection("hallmark", src, version="1", dest=bundle_dir)
    src.write_text(_HALLMARK)
    with pytest.raises(ValidationError, match="does not look like a human Reactome"):
        op.genesets.bundle_collection("reactome", src, version="1", dest=bundle_dir)
    with pytest.raises(ValidationError, match="unknown source"):
        op.genesets.bundle_collection("kegg", src, version="1", dest=bundle_dir)
    with pytest.raises(ValidationError, match="version"):
        op.genesets.bundle_collection("hallmark", src, version="1/../x", dest=bundle_dir)
    assert not list(bundle_dir.glob("*.json")) if bundle_dir.exists() else True


def test_bundle_cli(tmp_path, bundle_dir, capsys):
    src = tmp_path / "h.gmt"
    src.write_text(_HALLMARK)
    rc = bundle.main(["hallmark", str(src), "--version", "7", "--dest", str(bundle_dir)])
    assert rc == 0 and "MSigDB_Hallmark_7: 2 sets" in capsys.readouterr().out
    assert bundle.main(["hallmark", str(tmp_path / "missing.gmt"), "--version", "7"]) == 1


def test_ora_and_gsea_by_bundled_name(tmp_path, bundle_dir):
    _hallmark(tmp_path, bundle_dir)
    genes = list(dict.fromkeys(_IFNG + _INFL + ["ACTB", "GAPDH", "ALB", "MYC"]))
    n = len(genes)
    stat = np.linspace(4, -4, n)
    res = pd.DataFrame(
        {
            "gene": genes,
            "estimate": stat / 2,
            "statistic": stat,
            "p_value": np.r_[np.full(len(_IFNG), 1e-4), np.full(n - len(_IFNG), 0.5)],
        }
    )
    res["p_adj"] = np.minimum(res["p_value"] * 10, 1)
    name = "MSigDB_Hallmark_2099.1.Hs"
    out = op.tl.ora(res, name, min_size=2).set_index("term")
    ifng = out.loc["HALLMARK_INTERFERON_GAMMA_RESPONSE"]
    # universe = tested genes in the collection: 16 (ACTB... are in no set); 10 selected,
    # all in the set of 10 -> P = 1 / C(16, 10) = 1 / 8008 (R: phyper(9, 10, 6, 10, FALSE))
    assert out.attrs["universe_size"] == 16
    assert ifng["overlap"] == 10
    assert ifng["p_value"] == pytest.approx(1 / 8008, rel=1e-12)
    assert out.attrs["collection"] == name and out.attrs["collection_licence"] == "CC-BY-4.0"
    g = op.tl.gsea(res, name, min_size=2, permutations=50)
    assert g.set_index("term").loc["HALLMARK_INTERFERON_GAMMA_RESPONSE", "es"] > 0
    assert g.attrs["collection_version"] == "2099.1.Hs"


# --------------------------------------------------------------------------------------
# mouse -> human orthologs
# --------------------------------------------------------------------------------------


def test_known_mouse_pairs():
    m = op.genesets.to_human(["Il6", "Cxcl1", "Ccl3", "Tnf", "Ifng", "Il1b", "Ccl2"])
    assert m.mapping == {
        "Il6": "IL6",
        "Cxcl1": "CXCL1",
        "Ccl3": "CCL3",
        "Tnf": "TNF",
        "Ifng": "IFNG",
        "Il1b": "IL1B",
        "Ccl2": "CCL2",
    }
    assert m.unmapped == []
    # Cxcl1: CXCL2 has more supporting resources (7 vs 5) but the same-name rule wins
    assert m.alternatives["Cxcl1"] == {"used": "CXCL1", "others": ["CXCL2", "CXCL3"]}


def test_one_to_many_rule_against_an_independent_computation():
    t = op.genesets.ortholog_table()
    # rule 2 (most sources) and 3 (alphabetical) where no human symbol equals the mouse's
    mouse = t.groupby("mouse")["human"].agg(list)
    no_same = [m for m, hs in mouse.items() if m.upper() not in hs and len(hs) > 1][:200]
    got = op.genesets.to_human(no_same).mapping
    sub = t[t["mouse"].isin(no_same)]
    top = sub[sub["n_sources"] == sub.groupby("mouse")["n_sources"].transform("max")]
    expected = top.groupby("mouse")["human"].min().to_dict()
    assert got == expected
    # Ccl12 has no CCL12 in human: CCL2 (4 sources) wins over CCL7/CCL8 (3, 4 -> alphabetical)
    assert op.genesets.to_human(["Ccl12"]).mapping == {"Ccl12": "CCL2"}


def test_case_insensitive_and_unmapped_and_min_sources():
    m = op.genesets.to_human(["IL6", "il6", "NotAGene1"])
    assert m.mapping == {"IL6": "IL6", "il6": "IL6"} and m.unmapped == ["NotAGene1"]
    # Ly6a: only weakly supported human pairs (LY6H by 2 resources, LY6S by 1)
    assert op.genesets.to_human(["Ly6a"]).mapping == {"Ly6a": "LY6H"}
    assert op.genesets.to_human(["Ly6a"], min_sources=3).unmapped == ["Ly6a"]
    with pytest.raises(ValidationError, match="organism"):
        op.genesets.to_human(["Il6"], organism="rat")


def test_map_assays_mouse_with_combined_assay():
    var = pd.DataFrame(
        {"Assay": ["Il6", "Il12a_Il12b", "Cxcl15x"], "UniProt": ["P08505", "x", "y"]},
        index=["OID1", "OID2", "OID3"],
    )
    with pytest.warns(OlinkpipeWarning, match="no human ortholog"):
        out = op.genesets.map_assays(var, organism="mouse")
    assert out["gene"].tolist()[:3] == ["IL6", "IL12A", "IL12B"]
    assert set(out["method"].dropna()) == {"ortholog", "unmapped"}
    assert out.attrs["unmapped"] == ["OID3"] and out.attrs["organism"] == "mouse"
    assert out.attrs["orthologs_unmapped"] == ["Cxcl15x"]


def _mouse_result():
    assays = ["Il6", "Cxcl1", "Ccl3", "Tnf", "Il1b", "Ifng", "Csf2", "Notagene", "Il10", "Ccl2"]
    res = pd.DataFrame(
        {
            "OlinkID": [f"OID{i}" for i in range(10)],
            "Assay": assays,
            "Panel": "Target 96 Mouse Exploratory",
            "estimate": [2, 1.5, 1.2, 1.1, 1, 0.9, 0.5, 0.2, 0.1, -0.2],
            "statistic": np.linspace(5, -1, 10),
            "p_value": [1e-6, 1e-5, 1e-4, 1e-3, 1e-3, 1e-2, 0.2, 0.5, 0.6, 0.7],
        }
    )
    res["p_adj"] = np.minimum(res["p_value"] * 10, 1)
    return res


_SETS = {"cyt": ["IL6", "CXCL1", "CCL3", "TNF", "IL1B"], "other": ["IFNG", "CSF2", "IL10", "CCL2"]}


def test_ora_mouse_auto_detected_from_panel():
    with pytest.warns(OlinkpipeWarning, match="no human ortholog.*Notagene"):
        out = op.tl.ora(_mouse_result(), _SETS, min_size=2)
    row = out.set_index("term").loc["cyt"]
    assert row["overlap"] == 5 and row["genes"] == "IL6;CXCL1;CCL3;TNF;IL1B"
    assert row["assays"] == "Il6;Cxcl1;Ccl3;Tnf;Il1b"
    assert out.attrs["organism"] == "mouse"
    assert out.attrs["unmapped"] == ["Notagene"]
    assert out.attrs["orthologs_unmapped"] == ["Notagene"]
    assert out.attrs["orthologs_one_to_many"]["Ccl3"]["used"] == "CCL3"
    assert "HCOP" in out.attrs["ortholog_source"]


def test_ora_explicit_organism_overrides_panel():
    res = _mouse_result()
    with pytest.warns(OlinkpipeWarning):
        human = op.tl.ora(res, _SETS, min_size=2, organism="human")
    assert human.attrs["organism"] == "human"
    with pytest.raises(DesignError, match="organism"):
        op.tl.ora(res, _SETS, organism="rat")


def test_gsea_mouse_gene_column_and_kegg_by_name():
    res = _mouse_result().drop(columns=["Panel", "OlinkID"]).rename(columns={"Assay": "gene"})
    with pytest.warns(OlinkpipeWarning, match="Notagene"):
        g = op.tl.gsea(res, _SETS, organism="mouse", min_size=2, permutations=50)
    assert g.set_index("term").loc["cyt", "es"] > 0
    assert g.attrs["organism"] == "mouse"
    assert set(g.attrs["ranking"]["gene"]) >= {"IL6", "CXCL1", "CCL3"}
    with pytest.warns(OlinkpipeWarning):
        k = op.tl.ora(_mouse_result(), "KEGG_2021_Human", min_size=2)
    assert k.attrs["collection"] == "KEGG_2021_Human" and len(k) > 0


def test_build_orthologs_from_hgnc_columns(tmp_path):
    src = tmp_path / "human_mouse_hcop_fifteen_column.txt"
    pd.DataFrame(
        {
            "human_symbol": ["CXCL1", "CXCL2", "IL6", "-"],
            "mouse_symbol": ["Cxcl1", "Cxcl1", "Il6", "Gm1"],
            "support": ["A,B", "A,B,C", "A,B,C,D", "A"],
        }
    ).to_csv(src, sep="\t", index=False)
    info = op.genesets.build_orthologs(src, tmp_path / "o.tsv.gz")
    assert info["n_pairs"] == 3 and info["n_mouse_genes"] == 2
    t = pd.read_csv(tmp_path / "o.tsv.gz", sep="\t")
    # preference order: same name first although CXCL2 has more sources
    assert t.values.tolist() == [["Cxcl1", "CXCL1", 2], ["Cxcl1", "CXCL2", 3], ["Il6", "IL6", 4]]
    bad = tmp_path / "bad.txt"
    bad.write_text("a\tb\n1\t2\n")
    with pytest.raises(MissingColumnError, match="HCOP"):
        op.genesets.build_orthologs(bad, tmp_path / "x.gz")


def test_shipped_table_is_in_preference_order():
    t = op.genesets.ortholog_table()
    again = bundle.sort_by_preference(t.sample(frac=1.0, random_state=0))
    pd.testing.assert_frame_equal(again, t)
    assert orthologs.CHOICE_RULE


# --------------------------------------------------------------------------------------
# workflow config
# --------------------------------------------------------------------------------------


def test_workflow_config_checks_collection_names(tmp_path, bundle_dir):
    from olinkpipe.errors import ConfigError
    from olinkpipe.workflow import load_config

    base = {"inputs": {"npx": "run.csv"}}
    cfg, _ = load_config({**base, "enrichment": {"gene_sets": "GO_Biological_Process_2023"}})
    assert cfg.enrichment.organism is None
    with pytest.raises(ConfigError, match=r"enrichment\.gene_sets.*Did you mean.*KEGG_2021_Human"):
        load_config({**base, "enrichment": {"gene_sets": "KEGG_2012_Human"}})
    with pytest.raises(ConfigError, match=r"bundle hallmark FILE"):
        load_config({**base, "enrichment": {"gene_sets": "MSigDB_Hallmark_2099.1.Hs"}})
    _hallmark(tmp_path, bundle_dir)  # once bundled, the name validates
    cfg, _ = load_config(
        {**base, "enrichment": {"gene_sets": "MSigDB_Hallmark_2099.1.Hs", "organism": "mouse"}}
    )
    assert cfg.enrichment.organism == "mouse"
    # a file path is checked when the step runs, not here
    cfg, _ = load_config({**base, "enrichment": {"gene_sets": "sets/mine.gmt"}})
    with pytest.raises(ConfigError, match=r"organism"):
        load_config({**base, "enrichment": {"organism": "rat"}})


# --------------------------------------------------------------------------------------
# packaging and release checks
# --------------------------------------------------------------------------------------


def test_package_data_patterns_cover_the_gene_set_files():
    # `pip install .` ships package data by the patterns in pyproject.toml; every data
    # file of olinkpipe.genesets (and a bundled *.gmt.gz / *.json) must match one
    # (checked once by hand: a fresh venv's `pip install .` carries them all).
    import fnmatch
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    root = Path(op.__file__).resolve().parents[1]
    conf = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = conf["tool"]["setuptools"]["package-data"]["*"]
    data = root / "olinkpipe" / "genesets" / "data"
    files = [p.name for p in data.rglob("*") if p.is_file()]
    files += ["Reactome_94.gmt.gz", "Reactome_94.json"]
    for name in files:
        assert any(fnmatch.fnmatch(name, pat) for pat in patterns), name


def _bundled(prefix):
    return [n for n in op.genesets.available() if n.startswith(prefix)]


@pytest.mark.skipif(not _bundled("MSigDB_Hallmark_"), reason="no MSigDB Hallmark bundled here")
def test_bundled_hallmark_matches_msigdb():
    # release check, run where the real file was bundled (docs/genesets.md)
    for name in _bundled("MSigDB_Hallmark_"):
        hm = op.genesets.load(name)
        assert len(hm) == 50
        ifng = hm["HALLMARK_INTERFERON_GAMMA_RESPONSE"]
        assert len(ifng) == 200 and "STAT1" in ifng
        assert len(hm["HALLMARK_INFLAMMATORY_RESPONSE"]) == 200


@pytest.mark.skipif(not _bundled("Reactome_"), reason="no Reactome bundled here")
def test_bundled_reactome_looks_like_reactome():
    for name in _bundled("Reactome_"):
        r = op.genesets.load(name)
        assert len(r) > 2000
        assert "IL6" in r["Interleukin-6 signaling"]

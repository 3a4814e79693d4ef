"""Olink assay -> gene symbol mapping against a hand-written Target 96 table."""

from __future__ import annotations

import re
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import olinkpipe as op
from olinkpipe.errors import MissingColumnError, OlinkpipeWarning

# Hand-written from the Olink Target 96 panel content lists and UniProt/HGNC
# (name as Olink writes it, UniProt accession, current HGNC symbol).
T96 = [
    ("IL-2RB", "P14784", "IL2RB"),  # Inflammation
    ("MCP-1", "P13500", "CCL2"),
    ("MCP-2", "P80075", "CCL8"),
    ("MCP-3", "P80098", "CCL7"),
    ("MCP-4", "Q99616", "CCL13"),
    ("PD-L1", "Q9NZQ7", "CD274"),
    ("IFN-gamma", "P01579", "IFNG"),
    ("LAP TGF-beta-1", "P01137", "TGFB1"),
    ("IL8", "P10145", "CXCL8"),
    ("IL-1 alpha", "P01583", "IL1A"),
    ("IL-12B", "P29460", "IL12B"),
    ("IL-22 RA1", "Q8N6P7", "IL22RA1"),
    ("OPG", "O00300", "TNFRSF11B"),
    ("uPA", "P00749", "PLAU"),
    ("SCF", "P21583", "KITLG"),
    ("TRAIL", "P50591", "TNFSF10"),
    ("TRANCE", "O14788", "TNFSF11"),
    ("TWEAK", "O43508", "TNFSF12"),
    ("TNFB", "P01374", "LTA"),
    ("EN-RAGE", "P80511", "S100A12"),
    ("4E-BP1", "Q13541", "EIF4EBP1"),
    ("ST1A1", "P50225", "SULT1A1"),
    ("Flt3L", "P49771", "FLT3LG"),
    ("Beta-NGF", "P01138", "NGF"),
    ("CSF-1", "P09603", "CSF1"),
    ("NT-3", "P20783", "NTF3"),
    ("STAMPB", "O95630", "STAMBP"),
    ("TGF-alpha", "P01135", "TGFA"),
    ("LIF-R", "P42702", "LIFR"),
    ("BNP", "P16860", "NPPB"),  # Cardiovascular II
    ("PSGL-1", "Q14242", "SELPLG"),
    ("HO-1", "P09601", "HMOX1"),
    ("PAR-1", "P25116", "F2R"),
    ("TM", "P07204", "THBD"),
    ("IL-1ra", "P18510", "IL1RN"),
    ("CD40-L", "P29965", "CD40LG"),
    ("TIE2", "Q02763", "TEK"),
    ("GDF-15", "Q99988", "GDF15"),  # Cardiovascular III
    ("ST2", "Q01638", "IL1RL1"),
    ("PAI", "P05121", "SERPINE1"),
    ("t-PA", "P00750", "PLAT"),
    ("U-PAR", "Q03405", "PLAUR"),
    ("TNF-R1", "P19438", "TNFRSF1A"),
    ("OPN", "P10451", "SPP1"),
    ("TR", "P02786", "TFRC"),
    ("PLC", "P98160", "HSPG2"),
    ("Gal-3", "P17931", "LGALS3"),
    ("CAIX", "Q16790", "CA9"),  # Oncology II / Immuno-oncology
    ("VEGFR-2", "P35968", "KDR"),
    ("MUC-16", "Q8WXI7", "MUC16"),
    ("WISP-1", "O95388", "CCN4"),
    ("hK11", "Q9UBX7", "KLK11"),
    ("5'-NT", "P21589", "NT5E"),
    ("GDF-8", "O14793", "MSTN"),  # Neurology
    ("NEP", "P08473", "MME"),
    ("sFRP-3", "Q92765", "FRZB"),
    ("CLM-1", "Q8TDQ1", "CD300LF"),
    ("KIM1", "Q96D42", "HAVCR1"),  # Organ damage
    ("CD97", "P48960", "ADGRE5"),  # Development
    ("FATC1", "O95644", "NFATC1"),  # Cell regulation
]

COMBINED = [
    # (Assay, UniProt, genes)
    ("IL12", "P29460,P29459", ["IL12B", "IL12A"]),
    ("IL12A_IL12B", "P29459_P29460", ["IL12A", "IL12B"]),
    ("MIC-A/B", "Q29983,Q29980", ["MICA", "MICB"]),
    ("FUT3/FUT5", "Q11128,P21217", ["FUT5", "FUT3"]),
    ("IL-27", "Q8NEV9,Q14213", ["IL27", "EBI3"]),
    ("CGA_LHB", "P01215_P01229", ["CGA", "LHB"]),
    ("LGALS7_LGALS7B", "P47929", ["LGALS7", "LGALS7B"]),
]


def _var(rows):
    return pd.DataFrame(
        {"Assay": [r[0] for r in rows], "UniProt": [r[1] for r in rows]},
        index=[f"OID{i:05d}" for i in range(len(rows))],
    )


def test_target96_names_map_to_hgnc_by_uniprot():
    out = op.genesets.map_assays(_var(T96))
    assert len(out) == len(T96)
    assert out["gene"].tolist() == [r[2] for r in T96]
    assert set(out["method"]) == {"uniprot"}
    assert list(out.columns[:4]) == ["OlinkID", "Assay", "UniProt", "gene"]


def test_target96_names_map_by_alias_without_uniprot():
    var = _var(T96).drop(columns="UniProt")
    out = op.genesets.map_assays(var)
    assert out["gene"].tolist() == [r[2] for r in T96]
    assert set(out["method"]) == {"alias"}


def test_name_without_uniprot_uses_alias_table():
    # Cardiovascular II/III exports leave UniProt empty for NT-proBNP
    var = pd.DataFrame({"Assay": ["NT-proBNP", "BNP"], "UniProt": [np.nan, "P16860"]})
    out = op.genesets.map_assays(var)
    assert out["gene"].tolist() == ["NPPB", "NPPB"]
    assert out["method"].tolist() == ["alias", "uniprot"]


def test_combined_assays_one_row_per_gene():
    out = op.genesets.map_assays(_var(COMBINED))
    expected = [(f"OID{i:05d}", g) for i, r in enumerate(COMBINED) for g in r[2]]
    assert list(zip(out["OlinkID"], out["gene"], strict=True)) == expected


def test_safe_normalisation_and_symbols():
    var = pd.DataFrame(
        {"Assay": ["IL-6", "il6", "IL-17 A", "CXCL8", "HLA-DRA", "C19orf12", "NOTAGENE9"]},
        index=list("abcdefg"),
    )
    out = op.genesets.map_assays(var).set_index("OlinkID")
    assert out.loc["a", "gene"] == "IL6" and out.loc["a", "method"] == "normalised"
    assert out.loc["b", "gene"] == "IL6"
    assert out.loc["c", "gene"] == "IL17A"
    assert out.loc["d", "gene"] == "CXCL8" and out.loc["d", "method"] == "symbol"
    assert out.loc["e", "gene"] == "HLA-DRA"
    # Enrichr libraries write C19ORF12: the normalised form matches them
    assert out.loc["f", "gene"] == "C19ORF12" and out.loc["f", "method"] == "normalised"
    assert out.loc["g", "gene"] == "NOTAGENE9" and out.loc["g", "method"] == "assumed_symbol"


def test_unmapped_are_warned_listed_and_kept():
    var = pd.DataFrame(
        {"Assay": ["IL6", "my weird assay", "Foo-bar 2"], "UniProt": ["P05231", "", np.nan]},
        index=["OID1", "OID2", "OID3"],
    )
    with pytest.warns(OlinkpipeWarning, match=r"2 assay\(s\) could not be mapped.*my weird"):
        out = op.genesets.map_assays(var)
    assert out["OlinkID"].tolist() == ["OID1", "OID2", "OID3"]
    assert out["gene"].isna().tolist() == [False, True, True]
    assert out.attrs["unmapped"] == ["OID2", "OID3"]
    assert out.attrs["n_mapped"] == 1


def test_user_mapping_overrides():
    var = _var([("MCP-1", "P13500"), ("odd name", ""), ("IL6", "P05231")])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = op.genesets.map_assays(
            var, mapping={"MCP-1": "CCL2_USER", "OID00001": "GENE_X;GENE_Y"}
        )
    assert out["gene"].tolist() == ["CCL2_USER", "GENE_X", "GENE_Y", "IL6"]
    assert out["method"].tolist()[:3] == ["user"] * 3
    frame = pd.DataFrame({"Assay": ["IL6"], "gene": ["IL6_OVERRIDE"]})
    with pytest.warns(OlinkpipeWarning, match="odd name"):
        assert op.genesets.map_assays(var, mapping=frame)["gene"].iloc[-1] == "IL6_OVERRIDE"
    with pytest.raises(MissingColumnError, match="mapping table"):
        op.genesets.map_assays(var, mapping=pd.DataFrame({"a": [1], "b": [1], "c": [1]}))


def test_anndata_input_and_controls():
    var = pd.DataFrame(
        {
            "Assay": ["IL-2RB", "Ext Ctrl", "PD-L1"],
            "UniProt": ["P14784", "", "Q9NZQ7"],
            "AssayType": ["assay", "ext_ctrl", "assay"],
        },
        index=["OID00492", "OID99999", "OID00518"],
    )
    adata = ad.AnnData(np.zeros((2, 3)), var=var)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = op.genesets.map_assays(adata)
    assert out["gene"].tolist()[0] == "IL2RB" and out["gene"].tolist()[2] == "CD274"
    assert out["method"].iloc[1] == "control" and pd.isna(out["gene"].iloc[1])
    assert out.attrs["controls"] == ["OID99999"]


def test_missing_assay_column_errors():
    with pytest.raises(MissingColumnError, match="'Assay'"):
        op.genesets.map_assays(pd.DataFrame({"Name": ["IL6"]}))


def test_builtin_table_is_well_formed():
    t = op.genesets.alias_table()
    assert list(t.columns) == ["UniProt", "gene", "olink_names", "panels"]
    assert t["UniProt"].is_unique
    uniprot = re.compile(
        r"^([OPQ][0-9][A-Z0-9]{3}[0-9]|[A-NR-Z][0-9]([A-Z][A-Z0-9]{2}[0-9]){1,2})$"
    )
    assert t["UniProt"].map(lambda u: bool(uniprot.match(u))).all()
    assert t["gene"].map(lambda g: bool(re.match(r"^[A-Z][A-Z0-9]+$", g))).all()
    # every Olink name in the table is not already its symbol (that is the table's purpose)
    for names, gene in zip(t["olink_names"], t["gene"], strict=True):
        assert names and all(n for n in names.split("|")), gene
    panels = {p for ps in t["panels"] for p in ps.split(";")}
    assert {"INF", "IO", "CVD2", "CVD3", "ONC2", "NEU", "ODA", "DEV", "CRE", "CYT48"} <= panels


def test_uniprot_wins_over_name_and_partial_uniprot_falls_back_to_name():
    var = pd.DataFrame(
        {
            # a name that the alias table maps to CCL2, with IL2RB's accession: UniProt wins
            "Assay": ["MCP-1", "IL12A_IL12B", "CGA_LHB", "IL-6"],
            "UniProt": ["P14784", "P29459_Q99999", "P01215_P01229", "P05231"],
        },
        index=["a", "b", "c", "d"],
    )
    out = op.genesets.map_assays(var)
    assert out.loc[out["OlinkID"] == "a", ["gene", "method"]].values.tolist() == [
        ["IL2RB", "uniprot"]
    ]
    # one accession unknown to the table -> the name decides (split into both genes)
    assert out.loc[out["OlinkID"] == "b", "gene"].tolist() == ["IL12A", "IL12B"]
    assert out.loc[out["OlinkID"] == "c", "gene"].tolist() == ["CGA", "LHB"]
    assert out.loc[out["OlinkID"] == "d", ["gene", "method"]].values.tolist() == [
        ["IL6", "normalised"]
    ]

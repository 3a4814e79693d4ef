"""A small synthetic Explore HT / Explore 3072 pair for the cross-product bridging tests.

Real OlinkID pairs (public Olink identifiers) so that OlinkAnalyze's own mapping pairs them
exactly as olinkpipe's UniProt+Assay rule does; values are made up (seeded, rounded to 4
decimals so that the CSV given to R holds exactly the same numbers).
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

# (Assay, UniProt, HT OlinkID, Explore 3072 OlinkID, 3072 panel, kind)
ASSAYS = [
    ("ADH4", "P08319", "OID40770", "OID20117", "Cardiometabolic", "same"),
    ("ATF4", "P18848", "OID40835", "OID31162", "Oncology_II", "curved"),
    ("CDKL5", "O76039", "OID40981", "OID30796", "Neurology_II", "unrelated"),
    ("TNF", "P01375", "OID43204", "OID20074", "Cardiometabolic", "same"),
    ("TNF", "P01375", "OID43204", "OID20473", "Inflammation", "scaled"),
    ("CEBPB", "P17676", "OID40986", "OID20052", "Cardiometabolic", "lowcount"),
    ("CHEK2", "O96017", "OID41012", None, "Cardiometabolic", "ref_only"),
    ("CLTA", "P09496", None, "OID20118", "Cardiometabolic", "other_only"),
]
BRIDGE = [f"S{i:02d}" for i in range(1, 46)]
REF_ONLY = [f"R{i:02d}" for i in range(1, 11)]
OTHER_ONLY = [f"O{i:02d}" for i in range(1, 11)]
CONTROL = "SC_1"


def _values(rng, kind: str, t: np.ndarray):
    """Reference and other-product NPX and counts for one assay kind (true levels ``t``)."""
    n = len(t)
    e1, e2 = rng.normal(scale=0.1, size=n), rng.normal(scale=0.1, size=n)
    c1, c2 = rng.integers(300, 2000, size=n), rng.integers(300, 2000, size=n)
    if kind in ("same", "ref_only", "other_only"):
        return 3 + t + e1, 3.05 + t + e2, c1, c2
    if kind == "curved":
        return 2 + 1.5 * t + e1, 1 + 0.6 * np.exp(0.8 * t) + e2, c1, c2
    if kind == "scaled":
        return 3 + t + e1, 1.3 * (3 + t) + 0.5 + e2, c1, c2
    if kind == "unrelated":
        lo1, lo2 = rng.integers(40, 140, size=n), rng.integers(40, 140, size=n)
        return 1 + 2 * t + e1, 0.5 * rng.normal(size=n), lo1, lo2
    if kind == "lowcount":
        c1 = c1.copy()
        c1[:8] = rng.integers(2, 10, size=8)  # 8 bridge pairs with a reference count <= 10
        return 3 + t + e1, 5 + t + e2, c1, c2
    raise ValueError(kind)


def _decimal4(v: np.ndarray) -> np.ndarray:
    """Rounded to 4 decimals as the CSV text R reads (the correctly rounded double)."""
    return np.asarray(np.char.mod("%.4f", v), dtype=float)


def long_tables(seed: int = 2026) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The two products as long tables (OlinkAnalyze's columns)."""
    rng = np.random.default_rng(seed)
    ref_ids = BRIDGE + REF_ONLY + [CONTROL]
    oth_ids = BRIDGE + OTHER_ONLY + [CONTROL]
    n = len(BRIDGE) + 10 + 1
    rows_r, rows_o = [], []
    levels: dict = {}
    for assay, uni, oid_r, oid_o, panel, kind in ASSAYS:
        t = levels.setdefault(oid_r or oid_o, rng.normal(size=n))  # TNF: one HT assay, two 3072
        v_r, v_o, c_r, c_o = _values(rng, kind, t)
        v_r, v_o = _decimal4(v_r), _decimal4(v_o)
        if kind == "same" and oid_o == "OID20117":
            v_r[6] = _decimal4(v_r[6:7] + 8.0)[0]  # S07: an outlier in the reference
        if kind == "curved":
            v_o[2] = np.nan  # S03: missing in Explore 3072
        for k in range(n):
            common = {"UniProt": uni, "Assay": assay, "AssayType": "assay", "PlateID": "Plate1"}
            if oid_r is not None:
                rows_r.append(
                    {"SampleID": ref_ids[k], "OlinkID": oid_r, "Panel": "Explore_HT",
                     "NPX": v_r[k], "Count": int(c_r[k]), **common}
                )  # fmt: skip
            if oid_o is not None:
                rows_o.append(
                    {"SampleID": oth_ids[k], "OlinkID": oid_o, "Panel": panel,
                     "NPX": v_o[k], "Count": int(c_o[k]), **common}
                )  # fmt: skip
    out = []
    for rows, block in ((rows_r, "2"), (rows_o, "A")):
        df = pd.DataFrame(rows)
        df = df.drop_duplicates(["SampleID", "OlinkID"])  # TNF: one HT assay for two 3072 ones
        df.insert(1, "SampleType", np.where(df["SampleID"] == CONTROL, "SAMPLE_CONTROL", "SAMPLE"))
        df["Normalization"] = "Plate control"
        df["AssayQC"] = "PASS"
        df["SampleQC"] = "PASS"
        df["DataAnalysisRefID"] = "DAR001"
        df["WellID"] = "A1"
        df["Block"] = block
        out.append(df.reset_index(drop=True))
    return out[0], out[1]


def to_anndata(long: pd.DataFrame, product: str) -> ad.AnnData:
    """A long table as the data model's AnnData (X = NPX, layers["Count"])."""
    samples = pd.unique(long["SampleID"])
    assays = pd.unique(long["OlinkID"])
    X = long.pivot(index="SampleID", columns="OlinkID", values="NPX").loc[samples, assays]
    cnt = long.pivot(index="SampleID", columns="OlinkID", values="Count").loc[samples, assays]
    var = long.drop_duplicates("OlinkID").set_index("OlinkID").loc[assays]
    var = var[["Assay", "UniProt", "Panel", "AssayType", "Normalization"]].copy()
    var["is_control"] = False
    obs = pd.DataFrame({"SampleID": samples}, index=pd.Index(samples, name=None))
    obs["SampleType"] = np.where(obs["SampleID"] == CONTROL, "SAMPLE_CONTROL", "SAMPLE")
    obs["is_control"] = obs["SampleType"] != "SAMPLE"
    var.index.name = None
    a = ad.AnnData(
        X=X.to_numpy(dtype=float),
        obs=obs,
        var=var,
        layers={"Count": cnt.to_numpy(dtype=float)},
    )
    a.uns["olinkpipe"] = {"product": product}
    return a


def products(seed: int = 2026) -> tuple[ad.AnnData, ad.AnnData]:
    """(Explore HT AnnData, Explore 3072 AnnData)."""
    ht, e3k = long_tables(seed)
    return to_anndata(ht, "Explore HT"), to_anndata(e3k, "Explore 3072")

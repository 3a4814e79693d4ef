"""The study simulator and the bundled example data."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import olinkpipe as op
from olinkpipe.datasets import assay_table, load_example, simulate_cart_study
from olinkpipe.datasets.example import EXAMPLE_SEED, build_example, example_dir
from olinkpipe.datasets.simulate import SIGNAL_ASSAYS
from olinkpipe.errors import DesignError, OlinkpipeWarning, ValidationError


@pytest.fixture(scope="module")
def study():
    return simulate_cart_study(seed=0)


def _kegg(term: str) -> set[str]:
    # read the blitzgsea package data directly (independent of olinkpipe.genesets)
    import blitzgsea

    path = Path(blitzgsea.__file__).parent / "data" / "KEGG_2021_Human"
    for line in path.read_text().splitlines():
        parts = line.split("\t")
        if parts[0] == term:
            return {g for g in parts[2:] if g}
    raise AssertionError(term)


def test_assay_table_is_real_olink_style():
    table = assay_table()
    assert len(table) >= 300
    assert table["OlinkID"].is_unique and table["Assay"].is_unique
    assert table["OlinkID"].str.fullmatch(r"OID\d{5}").all()
    # UniProt accession format (https://www.uniprot.org/help/accession_numbers)
    acc = re.compile(r"[OPQ][0-9][A-Z0-9]{3}[0-9]|[A-NR-Z][0-9]([A-Z][A-Z0-9]{2}[0-9]){1,2}")
    assert table["UniProt"].map(lambda u: bool(acc.fullmatch(u))).all()
    assert table["Panel"].nunique() >= 2
    known = dict(zip(table["Assay"], table["UniProt"], strict=True))
    # a handful checked by hand against UniProt
    assert known["SIT1"] == "Q9Y3P8"
    assert known["CD28"] == "P10747"
    assert known["IL2RB"] == "P14784"
    assert known["IL6"] == "P05231"


def test_default_study_sizes_and_export_columns(study):
    npx = study.npx
    n_assays = len(assay_table())
    n_samples = 2 * 23 + 2 * npx["PlateID"].nunique()
    assert len(npx) == n_samples * n_assays
    assert npx["SampleID"].nunique() == n_samples
    assert npx["PlateID"].nunique() >= 2
    assert npx["Panel"].nunique() >= 2
    for col in [
        "SampleID",
        "OlinkID",
        "UniProt",
        "Assay",
        "MissingFreq",
        "Panel",
        "PlateID",
        "QC_Warning",
        "LOD",
        "NPX",
        "Normalization",
        "Assay_Warning",
        "Sample_Type",
    ]:
        assert col in npx.columns
    assert (npx["QC_Warning"] == "WARN").any() and (npx["QC_Warning"] == "PASS").mean() > 0.9
    below = (npx["NPX"] < npx["LOD"]).mean()
    assert 0.005 < below < 0.3
    # LOD is per assay and plate: one value per (assay, plate)
    assert npx.groupby(["OlinkID", "PlateID"], observed=True)["LOD"].nunique().max() == 1
    assert study.samples["patient"].nunique() == 23
    assert set(study.samples["timepoint"]) == {"pre", "post"}
    assert (study.samples.groupby("patient")["timepoint"].nunique() == 2).all()


def test_baseline_counts_match_published(study):
    p = study.patients
    assert (p["group"] == "CAR-T").sum() == 23 and (p["group"] == "Control").sum() == 44
    t, c = p[p["group"] == "CAR-T"], p[p["group"] == "Control"]
    assert (t["sex"] == "M").sum() == 14 and (c["sex"] == "M").sum() == 18
    assert t["disease_status"].value_counts().to_dict() == {
        "CR1": 12,
        "CR2": 8,
        "CR3": 2,
        "relapse": 1,
    }
    assert (c["donor_type"] == "haploidentical").sum() == 35
    assert t["age"].median() == 32 and (t["age"].min(), t["age"].max()) == (9, 63)


def test_doses_and_crs(study):
    t = study.patients[study.patients["group"] == "CAR-T"]
    dose = t["dose"]
    assert (dose > 2e6).sum() == 10 and (dose <= 2e6).sum() == 13
    assert dose.min() == pytest.approx(1.0e6) and dose.max() == pytest.approx(4.9e6)
    assert dose.median() == pytest.approx(2.0e6)
    assert study.patients.loc[study.patients["group"] == "Control", "dose"].isna().all()
    assert (t["crs_grade"] > 0).sum() == 11 and t["crs_grade"].max() <= 2


def test_expansion_peaks_around_day_7_and_fades(study):
    m = study.measurements
    e = m[m["analyte"] == "CAR-T copies/ug DNA"]
    peak_day = e.loc[e.groupby("patient")["value"].idxmax(), "day"]
    assert 5 <= peak_day.median() <= 10
    assert peak_day.between(3, 14).all()
    d28 = e[e["day"] == 28]
    assert d28["below_detection"].mean() > 0.5
    # no dose effect on the peak: Spearman rho of dose vs peak is small
    peaks = e.groupby("patient")["value"].max()
    dose = study.patients.set_index("patient").loc[peaks.index, "dose"]
    assert abs(stats.spearmanr(dose, peaks).statistic) < 0.5
    assert set(m["analyte"]) == {"CAR-T copies/ug DNA", "IL-6", "CRP"}


def test_signal_assays_rise_after_infusion(study):
    adata = study.to_anndata()
    keep = ~adata.obs["is_control"].to_numpy() & adata.obs["qc_pass"].to_numpy()
    obs = adata.obs[keep]
    x = pd.DataFrame(adata.X[keep], columns=adata.var["Assay"])
    x["patient"] = obs["patient"].to_numpy()
    x["timepoint"] = obs["timepoint"].to_numpy()
    pre = x[x["timepoint"] == "pre"].set_index("patient").drop(columns="timepoint")
    post = x[x["timepoint"] == "post"].set_index("patient").drop(columns="timepoint")
    both = pre.index.intersection(post.index)
    diff = post.loc[both] - pre.loc[both]
    res = stats.ttest_1samp(diff, 0.0)
    p = pd.Series(res.pvalue, index=diff.columns)
    for assay in ["SIT1", "CD28", "IL2RB"]:
        assert diff[assay].mean() > 0.5 and p[assay] < 1e-3, assay
    null = [a for a in diff.columns if a not in SIGNAL_ASSAYS]
    assert abs(diff[null].mean().mean()) < 0.05
    assert (p[null] < 0.01).mean() < 0.05
    # the rising assays include many JAK-STAT and PI3K-Akt members (KEGG_2021_Human)
    up = {a for a, v in SIGNAL_ASSAYS.items() if v > 0}
    assert len(up & _kegg("JAK-STAT signaling pathway")) >= 10
    assert len(up & _kegg("PI3K-Akt signaling pathway")) >= 10


def test_proteomic_response_follows_peak_expansion(study):
    """The simulated post − pre rise scales with each patient's peak CAR-T expansion: the
    mean change over the rising signal assays correlates with log10 peak copies (Spearman,
    scipy). With the response assigned to the wrong patients this is ~0."""
    adata = study.to_anndata()
    keep = ~adata.obs["is_control"].to_numpy()
    x = pd.DataFrame(adata.X[keep], columns=adata.var["Assay"])
    x["patient"] = adata.obs["patient"].to_numpy()[keep]
    x["timepoint"] = adata.obs["timepoint"].to_numpy()[keep]
    wide = x.groupby(["patient", "timepoint"]).mean()
    change = wide.xs("post", level="timepoint") - wide.xs("pre", level="timepoint")
    up = [a for a, v in SIGNAL_ASSAYS.items() if v > 0 and a in change]
    m = study.measurements
    car_t = m[m["analyte"].str.startswith("CAR-T")]
    log_peak = np.log10(car_t.groupby("patient")["value"].max()).reindex(change.index)
    rho, p = stats.spearmanr(change[up].mean(axis=1), log_peak)
    assert rho > 0.5 and p < 0.01


def test_assays_are_correlated(study):
    adata = study.to_anndata()
    x = adata.X[~adata.obs["is_control"].to_numpy()]
    c = np.corrcoef(x, rowvar=False)
    off = np.abs(c[np.triu_indices_from(c, 1)])
    assert 0.05 < off.mean() < 0.6


def test_outcomes_near_published(study):
    from lifelines import AalenJohansenFitter, KaplanMeierFitter

    p = study.patients
    est = {}
    for g, d in p.groupby("group"):
        aj = AalenJohansenFitter(calculate_variance=False)
        aj.fit(d["cir_months"], d["cir_status"], event_of_interest=1)
        est[g, "cir"] = float(aj.predict(24))
        km = KaplanMeierFitter().fit(d["os_months"], d["os_event"])
        est[g, "os"] = float(km.predict(24))
    assert est["CAR-T", "cir"] < 0.15 and 0.15 < est["Control", "cir"] < 0.45
    assert est["CAR-T", "os"] > est["Control", "os"] > 0.6
    assert (
        p.loc[p["relapse"] == 1, "relapse_months"] <= p.loc[p["relapse"] == 1, "os_months"]
    ).all()
    assert set(p["cir_status"]) <= {0, 1, 2}


def test_same_seed_same_study_other_seed_differs():
    a = simulate_cart_study(seed=3, n_treated=5, n_control=6, n_assays=30)
    b = simulate_cart_study(seed=3, n_treated=5, n_control=6, n_assays=30)
    c = simulate_cart_study(seed=4, n_treated=5, n_control=6, n_assays=30)
    pd.testing.assert_frame_equal(a.npx, b.npx)
    pd.testing.assert_frame_equal(a.patients, b.patients)
    pd.testing.assert_frame_equal(a.measurements, b.measurements)
    assert not np.allclose(a.npx["NPX"], c.npx["NPX"])


def test_sizes_scale_and_keep_signal_assays():
    small = simulate_cart_study(seed=1, n_treated=4, n_control=2, n_assays=40)
    assert small.npx["OlinkID"].nunique() == 40
    assert {"SIT1", "CD28", "IL2RB"} <= set(small.npx["Assay"])
    big = simulate_cart_study(seed=1, n_treated=60, n_control=0, n_assays=600)
    assert big.npx["OlinkID"].nunique() == 600
    assert big.samples["SampleID"].nunique() == 120
    assert big.npx["PlateID"].nunique() >= 2
    adata = big.to_anndata()
    assert adata.shape == (120 + 2 * big.npx["PlateID"].nunique(), 600)
    # the compact layout (tests/test_datasets_layout.py): LOD as an assays × plates table
    assert adata.varm["lod"].shape == (600, big.npx["PlateID"].nunique())
    assert not {"lod", "below_lod", "qc_warning"} & set(adata.layers)


def test_bad_arguments():
    with pytest.raises(ValidationError, match="n_treated"):
        simulate_cart_study(n_treated=-1)
    with pytest.raises(ValidationError, match="n_assays"):
        simulate_cart_study(n_assays=0)
    with pytest.raises(DesignError, match="npx_format"):
        simulate_cart_study(n_treated=2, n_control=0, n_assays=5, npx_format="xlsx")


def test_write_study_files(tmp_path):
    s = simulate_cart_study(
        seed=2, n_treated=3, n_control=2, n_assays=12, out=tmp_path, npx_format="both"
    )
    assert {"npx", "npx_parquet", "samples", "patients", "measurements"} <= set(s.files)
    first = (tmp_path / "npx_data.csv").read_text().splitlines()[0]
    assert first.startswith("SampleID;Index;OlinkID;UniProt;Assay;MissingFreq;Panel")
    back = pd.read_parquet(tmp_path / "npx_data.parquet")
    np.testing.assert_allclose(back["NPX"].to_numpy(), s.npx["NPX"].to_numpy())


def test_bundled_example_is_the_seeded_simulation():
    folder = example_dir()
    for name in [
        "npx_data.csv",
        "npx_data.parquet",
        "samples.csv",
        "patients.csv",
        "measurements.csv",
        "README.md",
    ]:
        assert (folder / name).is_file(), name
    assert sum(f.stat().st_size for f in folder.iterdir()) < 5_000_000
    assert "simulated" in (folder / "README.md").read_text().lower()
    fresh = simulate_cart_study(EXAMPLE_SEED)
    for name in ["samples", "patients", "measurements"]:
        assert (folder / f"{name}.csv").read_text() == getattr(fresh, name).to_csv(
            index=False, lineterminator="\n"
        ), name
    assert (folder / "npx_data.csv").read_text() == fresh.npx.to_csv(
        sep=";", index=False, na_rep="NA", lineterminator="\n"
    )


def test_build_example_into_folder(tmp_path):
    files = build_example(tmp_path)
    assert (tmp_path / "npx_data.csv").read_bytes() == (
        example_dir() / "npx_data.csv"
    ).read_bytes()
    assert set(files) >= {"npx", "npx_parquet"}


def test_load_example_tables():
    ex = load_example()
    assert ex.samples["patient"].nunique() == 23
    assert len(ex.patients) == 67
    assert set(ex.measurements["analyte"]) == {"CAR-T copies/ug DNA", "IL-6", "CRP"}
    assert ex.npx["OlinkID"].nunique() == len(assay_table())
    assert ex.files["npx"].name == "npx_data.csv"


def test_load_example_adata_reads_the_export():
    ex = load_example()
    with warnings.catch_warnings():
        # the Olink control samples have no sample-sheet row (annotate may say so)
        warnings.simplefilter("ignore", OlinkpipeWarning)
        adata = ex.adata
    assert adata.shape == (ex.npx["SampleID"].nunique(), ex.npx["OlinkID"].nunique())
    study = adata.obs[~adata.obs["is_control"].astype(bool)]
    assert set(study["timepoint"].dropna()) == {"pre", "post"}
    assert study["patient"].notna().all()
    # the parquet copy reads to the same matrix
    other = op.read_npx(ex.files["npx_parquet"])
    np.testing.assert_allclose(
        other[adata.obs_names, adata.var_names].X, adata.X, rtol=0, atol=1e-12
    )

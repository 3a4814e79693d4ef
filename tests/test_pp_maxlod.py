"""LOD columns after normalization, as OlinkAnalyze 5.0.2: every LOD column of the
normalized project is shifted with NPX, and MaxLOD becomes the assay's maximum over the
normalized data (``norm_internal_update_maxlod``).

Three small Target-96-like projects (:func:`project`) with ``LOD`` and ``MaxLOD`` columns,
written as CSV and normalized in R 4.2.2 with OlinkAnalyze 5.0.2::

    b <- c("B0", "B1", "B2", "B3")
    olink_normalization(df1 = p1, df2 = p2, overlapping_samples_df1 = b,
                        df1_project_nr = "P1", df2_project_nr = "P2",
                        reference_project = "P1")                      # BRIDGE
    olink_normalization_n(norm_schema = tibble(order = 1:3, name = c("P1", "P2", "P3"),
        data = list(P1 = p1, P2 = p2, P3 = p3),
        samples = list(P1 = NA_character_, P2 = list(DF1 = b, DF2 = b),
                       P3 = list(DF1 = <P2's B_S* samples>, DF2 = <all of P3>)),
        normalization_type = c(NA, "Bridge", "Subset"),
        normalize_to = c(NA, "1", "2")))                                # CHAIN

Tolerance 1e-12.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import olinkpipe as op
from olinkpipe._layout import lod_matrix
from olinkpipe.errors import OlinkpipeWarning
from olinkpipe.pp import _lazy

TOL = 1e-12
BRIDGE = ["B0", "B1", "B2", "B3"]
# olink_normalization(...) |> distinct(OlinkID, MaxLOD, Adj_factor), Project P2
BRIDGE_ADJ = [-0.097500000000000142, -1.143999999999999684, -0.186500000000000110]
BRIDGE_MAXLOD = [1.8024999999999998, 1.5, 2.5135000000000001]
BRIDGE_B_S1_LOD = [1.7024999999999999, 0.95600000000000041, 2.2134999999999998]  # SampleID B_S1
# olink_normalization_n(...): MaxLOD (every project), Adj_factor of P3, LOD of C_S2
CHAIN_MAXLOD = [1.8024999999999998, 2.3799999999999994, 2.5135000000000001]
CHAIN_P3_ADJ = [0.915000000000000036, -0.720000000000000639, 1.473999999999998423]
CHAIN_C_S2_LOD = [1.51500000000000012, 0.17999999999999938, 2.67399999999999860]


def project(name: str, shift: float, maxlod: list[float], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for s in [f"B{k}" for k in range(4)] + [f"{name}_S{k}" for k in range(6)]:
        for j, oid in enumerate(["OID20001", "OID20002", "OID20003"]):
            plate = f"{name}_P{1 + int(s[-1]) % 2}"
            lod = round(1.0 + 0.3 * j + (0.2 if plate.endswith("2") else 0.0) + shift, 3)
            rows.append(
                {
                    "SampleID": s,
                    "Index": 0,
                    "OlinkID": oid,
                    "UniProt": f"P0000{j}",
                    "Assay": f"A{j}",
                    "MissingFreq": 0.0,
                    "Panel": "Olink Inflammation",
                    "Panel_Version": "v.3021",
                    "PlateID": plate,
                    "QC_Warning": "Pass",
                    "LOD": lod,
                    "MaxLOD": maxlod[j],
                    "NPX": round(5 + j + shift + rng.normal(0, 1), 3),
                }
            )
    return pd.DataFrame(rows)


def frames() -> dict[str, pd.DataFrame]:
    p1 = project("A", 0.0, [1.2, 1.5, 1.8], 1)
    p2 = project("B", 0.6, [1.9, 2.0, 2.7], 2)
    p2.loc[(p2["SampleID"] == "B_S1") & (p2["OlinkID"] == "OID20002"), "NPX"] = np.nan
    p3 = project("C", -0.4, [0.5, 3.1, 1.0], 3)
    p3["SampleID"] = p3["SampleID"].str.replace("^B", "C", regex=True)
    return {"P1": p1, "P2": p2, "P3": p3}


@pytest.fixture(scope="module")
def projects(tmp_path_factory):
    root = tmp_path_factory.mktemp("maxlod")
    out = {}
    for name, df in frames().items():
        df.to_csv(root / f"{name}.csv", index=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OlinkpipeWarning)
            out[name] = op.read_npx(root / f"{name}.csv")
    return out


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)
        return fn(*args, **kwargs)


def row(adata, name):
    return int(np.flatnonzero(adata.obs_names == name)[0])


@pytest.mark.parametrize("lazy", [False, True])
def test_bridge_shifts_lod_and_updates_maxlod(projects, lazy):
    p1, p2 = projects["P1"], projects["P2"]
    if lazy:
        pytest.importorskip("dask.array")
        p1, p2 = _lazy.to_dask(p1), _lazy.to_dask(p2)
    out = quiet(op.pp.bridge_normalize, p1, p2, BRIDGE)
    layers = {k: np.asarray(v.compute() if lazy else v) for k, v in out.layers.items()}
    np.testing.assert_allclose(out.var["Adj_factor"], BRIDGE_ADJ, atol=TOL)
    np.testing.assert_allclose(layers["MaxLOD"], np.tile(BRIDGE_MAXLOD, (out.n_obs, 1)), atol=TOL)
    lod = np.asarray(lod_matrix(out).compute() if lazy else lod_matrix(out))
    np.testing.assert_allclose(lod[row(out, "B_S1")], BRIDGE_B_S1_LOD, atol=TOL)


def test_chain_updates_maxlod_over_all_projects(projects):
    plan = pd.DataFrame(
        {
            "project": ["P1", "P2", "P3"],
            "normalize_to": [None, "P1", "P2"],
            "method": [None, "bridge", "subset"],
            "samples": [
                None,
                BRIDGE,
                {"DF1": [f"B_S{k}" for k in range(6)], "DF2": list(projects["P3"].obs_names)},
            ],
        }
    )
    out = quiet(op.pp.normalize_projects, projects, plan)
    np.testing.assert_allclose(
        out.layers["MaxLOD"], np.tile(CHAIN_MAXLOD, (out.n_obs, 1)), atol=TOL
    )
    np.testing.assert_allclose(out.varm["Adj_factor"]["P3"], CHAIN_P3_ADJ, atol=TOL)
    np.testing.assert_allclose(lod_matrix(out)[row(out, "C_S2")], CHAIN_C_S2_LOD, atol=TOL)


def test_reference_median_normalize_shifts_every_lod_layer(projects):
    p2 = projects["P2"]
    ref = pd.DataFrame({"OlinkID": p2.var_names, "Reference_NPX": [5.0, 6.0, 7.0]})
    out = op.pp.reference_median_normalize(p2, ref)
    adj = out.var["Adj_factor"].to_numpy()
    np.testing.assert_allclose(lod_matrix(out), lod_matrix(p2) + adj, atol=TOL)
    np.testing.assert_allclose(out.layers["MaxLOD"], p2.layers["MaxLOD"] + adj, atol=TOL)


def test_maxlod_as_the_compact_lod_table(tmp_path):
    """A file whose only LOD column is MaxLOD: the reader keeps it as the assays × plates
    table (varm), and the bridge update gives OA's MaxLOD there too (same R call, BRIDGE)."""
    got = {}
    for name, df in list(frames().items())[:2]:
        df.drop(columns="LOD").to_csv(tmp_path / f"{name}.csv", index=False)
        got[name] = quiet(op.read_npx, tmp_path / f"{name}.csv")
        assert "lod" in got[name].varm and "lod" not in got[name].layers
        assert got[name].uns["olinkpipe"]["columns"]["lod"] == "MaxLOD"
    out = quiet(op.pp.bridge_normalize, got["P1"], got["P2"], BRIDGE)
    np.testing.assert_allclose(out.var["Adj_factor"], BRIDGE_ADJ, atol=TOL)
    lod = np.asarray(lod_matrix(out))
    np.testing.assert_allclose(lod, np.tile(BRIDGE_MAXLOD, (out.n_obs, 1)), atol=TOL)

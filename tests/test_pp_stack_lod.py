"""Two-project normalizations stack the LOD plate tables directly (``_layout.stack_lod``):
exactly what expanding both tables to full layers, stacking them and re-compacting
(``_layout.compact_lod``, the path taken before) gives, in memory and on dask."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from builders import assert_same_anndata

import olinkpipe as op
from olinkpipe import _layout
from olinkpipe.pp import _lazy

PANELS = (("Oncology", [1, 2, 3, 4]), ("Inflammation", [5, 6, 7]))


def make_long(seed: int, prefix: str, plate: str, n_samples: int = 14, shift: float = 0.0):
    """Long Explore-like table: two panels, three plates named ``plate``/0..2, LOD
    constant per assay and plate, NPX with a few NaN; bridge samples ``B0``..``B3``."""
    rng = np.random.default_rng(seed)
    rows, lod = [], {}
    for panel, oids in PANELS:
        for o in oids:
            for i in range(n_samples):
                sid = f"B{i}" if i < 4 else f"{prefix}{i}"
                key = (o, i % 3)
                lod.setdefault(key, round(rng.normal(-1, 0.5) + shift, 4))
                npx = round(rng.normal(shift, 1.5), 4) if rng.random() > 0.08 else np.nan
                rows.append(
                    {
                        "SampleID": sid,
                        "OlinkID": f"OID0000{o}",
                        "Assay": f"G{o}",
                        "Panel": panel,
                        "PlateID": f"{plate}/{i % 3}",
                        "QC_Warning": "WARN" if rng.random() < 0.1 else "PASS",
                        "LOD": lod[key],
                        "NPX": npx,
                    }
                )
    return pd.DataFrame(rows)


def read(df: pd.DataFrame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", op.errors.OlinkpipeWarning)
        out = op.io.from_long(df)
    assert "lod" in out.varm and "lod" not in out.layers  # the reader's plate table
    return out


def run(which: str, ref, other):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", op.errors.OlinkpipeWarning)
        if which == "bridge":
            return op.pp.bridge_normalize(ref, other, ["B0", "B1", "B2", "B3"])
        if which == "subset":
            return op.pp.subset_normalize(ref, other, ["B0", "B1", "R5", "R6"], ["B2", "B3"])
        return op.pp.intensity_normalize(ref, other)


def expand_then_compact(monkeypatch, which, ref, other):
    """The result of the path before: tables expanded to layers, stacked, re-compacted."""
    with monkeypatch.context() as m:
        m.setattr(_layout, "tables_stack", lambda *a: False)
        return run(which, ref, other)


def same_lod(got, exp) -> None:
    """X, the LOD (matrix, table, plates) and below-LOD of ``got`` (maybe dask) as ``exp``."""

    def value(a):
        return a.compute() if _lazy.is_dask(a) else np.asarray(a)

    np.testing.assert_array_equal(value(got.X), value(exp.X))
    np.testing.assert_array_equal(value(_layout.lod_matrix(got)), value(_layout.lod_matrix(exp)))
    np.testing.assert_array_equal(
        value(_layout.below_lod_matrix(got)), value(_layout.below_lod_matrix(exp))
    )
    assert ("lod" in got.varm) == ("lod" in exp.varm)
    if "lod" in exp.varm:
        a, b = np.asarray(got.varm["lod"]), np.asarray(exp.varm["lod"])
        assert a.dtype == b.dtype and a.flags["C_CONTIGUOUS"]
        np.testing.assert_array_equal(a, b)
        assert got.uns["olinkpipe"]["lod_plates"] == exp.uns["olinkpipe"]["lod_plates"]
    else:
        assert "lod_plates" not in got.uns["olinkpipe"]


def variants():
    ref = read(make_long(1, "R", "Run"))
    other = read(make_long(2, "O", "Other", shift=0.6))
    shared = read(make_long(2, "O", "Run", shift=0.6))  # plate labels used by both projects
    # the same LODs on plates of the same names and the same NPX: factor 0, one table
    twin = ref.copy()
    twin.obs_names = [n if n.startswith("B") else f"T{n}" for n in twin.obs_names]
    twin.obs["SampleID"] = list(twin.obs_names)
    for key in twin.obsm:
        twin.obsm[key].index = twin.obs_names
    gather = other[:, [6, 2, 0, 5, 1]].copy()  # fewer assays, panels interleaved
    return {"own plates": other, "shared labels": shared, "twin": twin, "gather": gather}


@pytest.mark.parametrize("which", ["bridge", "subset", "intensity"])
@pytest.mark.parametrize("case", ["own plates", "shared labels", "twin", "gather"])
def test_direct_stack_equals_expand_then_compact(monkeypatch, which, case):
    ref = read(make_long(1, "R", "Run"))
    other = variants()[case]
    got = run(which, ref, other)
    exp = expand_then_compact(monkeypatch, which, ref, other)
    assert_same_anndata(got, exp)  # every slot, uns key order included
    same_lod(got, exp)
    if case in ("own plates", "gather"):
        assert "lod" in got.varm and "lod" not in got.layers
    if case == "twin":  # shared labels: one table only while the factor leaves them equal
        assert ("lod" in got.varm) == bool((got.var["Adj_factor"] == 0).all())
    if case == "shared labels":  # the same label, different LODs: not a plate table
        assert "lod" in got.layers and "lod" not in got.varm
    if case == "twin" and which == "bridge":
        assert got.uns["olinkpipe"]["lod_plates"] == ["Run/0", "Run/1", "Run/2"]


def test_one_full_layer_one_table_is_unchanged(monkeypatch):
    ref = read(make_long(1, "R", "Run"))
    other = read(make_long(2, "O", "Other", shift=0.6))
    full = other.copy()
    full.layers["lod"] = _layout.lod_matrix(other)
    del full.varm["lod"]
    del full.uns["olinkpipe"]["lod_plates"]
    assert not _layout.tables_stack(ref, full) and not _layout.tables_stack(full, ref)
    for a, b in ((ref, full), (full, ref)):
        got = run("bridge", a, b)
        assert_same_anndata(got, expand_then_compact(monkeypatch, "bridge", a, b))
        assert "lod" in got.varm  # the stacked LOD is still constant per plate
    # and the same as two tables
    same_lod(run("bridge", ref, full), run("bridge", ref, other))


def test_stacked_table_is_the_shifted_tables():
    ref = read(make_long(1, "R", "Run"))
    other = read(make_long(2, "O", "Other", shift=0.6))
    out = run("bridge", ref, other)
    factor = out.var["Adj_factor"].to_numpy()
    tab = _layout.lod_table(out)
    pd.testing.assert_frame_equal(
        tab[list(_layout.lod_table(ref).columns)], _layout.lod_table(ref)
    )
    pd.testing.assert_frame_equal(
        tab[list(_layout.lod_table(other).columns)],
        _layout.lod_table(other).add(factor, axis=0),
        check_exact=True,
    )


@pytest.mark.parametrize("which", ["bridge", "subset", "intensity"])
@pytest.mark.parametrize("case", ["own plates", "shared labels"])
def test_dask_direct_stack(monkeypatch, which, case):
    pytest.importorskip("dask.array")
    ref = read(make_long(1, "R", "Run"))
    other = variants()[case]
    lr, lo = _lazy.to_dask(ref, max_assays=2), _lazy.to_dask(other, max_assays=2)
    got = run(which, lr, lo)
    assert _lazy.is_dask(got.X)
    exp = expand_then_compact(monkeypatch, which, ref, other)  # in memory, the old path
    same_lod(got, exp)
    old = expand_then_compact(monkeypatch, which, lr, lo)  # on dask, the old path: a layer
    np.testing.assert_array_equal(
        _layout.lod_matrix(got).compute(), _layout.lod_matrix(old).compute()
    )
    if case == "shared labels":
        assert _lazy.is_dask(got.layers["lod"])
    else:  # the tables are stacked on dask too: no lazy full LOD layer
        assert "lod" not in got.layers


def _string_codes(adata, labels):
    """The plate codes as computed before (a samples × panels table of str)."""
    pans = _layout.panels(adata)
    uniq = list(pd.unique(pans))
    tab = np.full((adata.n_obs, len(uniq)), "", dtype=object)
    src = adata.obsm.get("PlateID") if "PlateID" in adata.obsm else None
    for k, p in enumerate(uniq):
        if isinstance(src, pd.DataFrame) and p in src.columns:
            col = src[p]
        elif not isinstance(src, pd.DataFrame) and "PlateID" in adata.obs:
            col = adata.obs["PlateID"]
        else:
            continue
        with warnings.catch_warnings():  # pandas' downcasting notice on int columns
            warnings.simplefilter("ignore", FutureWarning)
            tab[:, k] = col.astype(object).fillna("").astype(str).to_numpy()
    found = [str(p) for p in pd.unique(tab.ravel()) if p != ""] if (tab != "").any() else [""]
    index = pd.Index(labels if labels is not None else found)
    codes = np.column_stack([index.get_indexer(tab[:, k]) for k in range(tab.shape[1])])
    if (tab != "").any():
        codes[tab == ""] = -1
    return found, codes


@pytest.mark.parametrize(
    "plates",
    [
        "obsm",
        "obsm with gaps",
        "obs only",
        "numbers",
        "categorical",
        "none",
        "one panel missing",
    ],
)
def test_plate_codes_equal_the_string_table(plates):
    a = read(make_long(1, "R", "Run"))
    tab = a.obsm["PlateID"].copy()
    if plates == "obsm with gaps":
        tab.iloc[[0, 3], 0] = np.nan
        tab.iloc[5, 1] = ""
        tab.iloc[6, 1] = None
    elif plates == "numbers":
        tab = tab.apply(lambda c: c.str.slice(-1).astype(int))
    elif plates == "categorical":
        tab = tab.astype("category")
    elif plates == "one panel missing":
        tab = tab.iloc[:, :1]
    a.obsm["PlateID"] = tab
    if plates in ("obs only", "none"):
        del a.obsm["PlateID"]
        if plates == "none":
            a.obs = a.obs.drop(columns="PlateID")
    labels = _layout._stacked_labels(a)
    found, codes = _string_codes(a, None)
    assert labels == found
    for lab in (labels, labels[::-1], ["zzz", *labels[1:]], [""]):
        got, _ = _layout._plate_codes(a, lab)
        np.testing.assert_array_equal(got, _string_codes(a, lab)[1])


@pytest.mark.parametrize("drop", [[5, 17], [0], [39], list(range(10, 30))])
def test_assays_missing_are_copied_by_runs(drop):
    """A few assays missing in one project: the shared columns are copied run by run
    (slices), with the same values as a gather, on every layer, codes re-coded."""
    from builders import make_adata

    ref = make_adata(30, 40, seed=3, n_controls=0)
    other = make_adata(30, 40, seed=4, n_controls=0, shift=0.5, prefix="T")
    rng = np.random.default_rng(5)
    for a, cats in ((ref, ["PASS", "WARN"]), (other, ["WARN", "FAIL", "PASS"])):
        a.layers["Flag"] = rng.integers(-1, len(cats), a.shape).astype(np.int8)
        a.uns["olinkpipe"]["coded_layers"] = {"Flag": cats}
    keep = np.setdiff1d(np.arange(40), drop)
    for r, o in ((ref, other[:, keep].copy()), (ref[:, keep].copy(), other)):
        out = _bridge_all(r, o)
        cols_r = r.var_names.get_indexer(out.var_names)
        cols_o = o.var_names.get_indexer(out.var_names)
        f = out.var["Adj_factor"].to_numpy()
        n = r.n_obs
        np.testing.assert_array_equal(out.X[:n], r.X[:, cols_r])
        np.testing.assert_array_equal(out.X[n:], o.X[:, cols_o] + f)
        np.testing.assert_array_equal(out.layers["lod"][n:], o.layers["lod"][:, cols_o] + f)
        np.testing.assert_array_equal(
            out.layers["below_lod"][n:], o.layers["below_lod"][:, cols_o]
        )
        cats = np.asarray(out.uns["olinkpipe"]["coded_layers"]["Flag"] + [""], dtype=object)
        cats_o = np.asarray(o.uns["olinkpipe"]["coded_layers"]["Flag"] + [""], dtype=object)
        np.testing.assert_array_equal(
            cats[out.layers["Flag"][n:]], cats_o[o.layers["Flag"][:, cols_o]]
        )
        assert out.layers["Flag"].dtype == np.int8  # the smallest code dtype


def _bridge_all(r, o):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", op.errors.OlinkpipeWarning)
        return op.pp.bridge_normalize(r, o, {"S1": "T1", "S2": "T2", "S3": "T3"})

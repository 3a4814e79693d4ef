"""The pivot and annotate steps of :func:`~olinkpipe.io.convert.from_long`: rows to the
obs × assays matrix (:class:`Pivot`), the per-(obs, panel) PlateID and QC grids, and every
other column placed in ``obs``, ``var`` or a layer."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from .._layout import code_dtype
from .._qc import is_pass
from ._longtable import _Column, _combine, _Groups
from ._roles import ASSAY_LEVEL, MEASUREMENT_LEVEL


class Ids(NamedTuple):
    """Codes and unique values of the key columns, one code per row (``convert._identifiers``)."""

    s_codes: np.ndarray
    s_uni: np.ndarray
    a_codes: np.ndarray
    a_uni: np.ndarray
    p_codes: np.ndarray
    p_uni: np.ndarray
    q_codes: np.ndarray
    q_uni: np.ndarray
    assay_panel: np.ndarray
    a_groups: _Groups


class Pivot:
    """Rows → the obs × assays matrix: each kept row's flat cell (exact duplicates dropped).

    Examples
    --------
    >>> import numpy as np
    >>> p = Pivot(2, 2, cell=np.array([0, 3, 3]), keep_rows=np.array([0, 1]))
    >>> p.scatter(np.array([1.0, 2.0, 2.0]), np.nan, float).tolist()
    [[1.0, nan], [nan, 2.0]]
    """

    def __init__(
        self, n_obs: int, n_assay: int, cell: np.ndarray, keep_rows: np.ndarray | None
    ) -> None:
        self.n_obs, self.n_assay, self.keep_rows = n_obs, n_assay, keep_rows
        self.flat = cell if keep_rows is None else cell[keep_rows]

    def kept(self, values: np.ndarray) -> np.ndarray:
        """``values`` (one per row) of the kept rows: all rows when none was dropped."""
        return values if self.keep_rows is None else values[self.keep_rows]

    def scatter(self, values: np.ndarray, fill: Any, dtype: Any, *, kept: bool = False):
        """Rows to the matrix; ``kept``: ``values`` already hold only the kept rows."""
        out = np.full(self.n_obs * self.n_assay, fill, dtype=dtype)
        out[self.flat] = values if kept else self.kept(values)
        return out.reshape(self.n_obs, self.n_assay)


def row_order(rows_o: np.ndarray, rows_a: np.ndarray) -> str:
    """``"sample"`` when the rows run sample by sample (Explore), else ``"assay"`` (Target 96).

    ``to_long`` writes the rows back in this order.

    Examples
    --------
    >>> import numpy as np
    >>> row_order(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]))
    'sample'
    """
    if len(rows_o) <= 1:
        return "assay"
    sample_changes = int(np.count_nonzero(rows_o[1:] != rows_o[:-1]))
    assay_changes = int(np.count_nonzero(rows_a[1:] != rows_a[:-1]))
    return "sample" if sample_changes < assay_changes else "assay"


class PanelGrids(NamedTuple):
    """Per (obs, panel): measured at all, PlateID, QC_Warning; the QC column if it varies."""

    on_panel: np.ndarray
    plate: np.ndarray
    qc: np.ndarray
    qc_layer_col: str | None


def panel_grids(pivot: Pivot, o_codes: np.ndarray, ids: Ids, qc: _Column | None) -> PanelGrids:
    """The PlateID of each (obs, panel) and its QC_Warning when constant there.

    ``o_codes`` are every row's obs codes. A QC column that varies within an (obs, panel)
    is named in ``qc_layer_col`` (it becomes a layer, see :func:`qc_from_cells`).
    """
    n_obs, n_panel, q_uni = pivot.n_obs, len(ids.p_uni), ids.q_uni
    op_idx = _combine(pivot.kept(o_codes), n_panel, pivot.kept(ids.p_codes))
    on_panel = np.zeros(n_obs * n_panel, dtype=bool)
    on_panel[op_idx] = True
    plate_code = np.full(n_obs * n_panel, len(q_uni), dtype=np.int64)
    plate_code[op_idx] = pivot.kept(ids.q_codes)
    plate_mat = np.append(q_uni, "").astype(object)[plate_code].reshape(n_obs, n_panel)
    del plate_code
    qc_mat = np.full(n_obs * n_panel, "", dtype=object)
    qc_layer_col: str | None = None
    if qc is not None:
        qcodes, quni = qc.codes()
        quni_ext = np.append(quni, None).astype(object)
        ok, per_op = _Groups(op_idx, n_obs * n_panel).constant(pivot.kept(qcodes))
        if ok:
            vals = quni_ext[per_op]
            vals = np.where(pd.isna(vals), "", vals)
            qc_mat = np.where(on_panel, vals, "").astype(object)
        else:
            qc_layer_col = qc.name
    shape = (n_obs, n_panel)
    return PanelGrids(on_panel.reshape(shape), plate_mat, qc_mat.reshape(shape), qc_layer_col)


def place_columns(
    columns: list[str],
    cols: dict[str, _Column],
    roles: dict[str, str | None],
    pivot: Pivot,
    o_codes: np.ndarray,
    ids: Ids,
    layers: dict[str, np.ndarray],
    qc_layer_col: str | None,
    keep: tuple[str, ...] | None = None,
    left_out: list[str] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every column without a role to ``obs`` (constant per sample), ``var`` (constant per
    assay) or a layer (added to ``layers``: floats, or integer codes whose categories are
    returned). Assay-level names try ``var`` first, measurement-level names are always
    layers. A per-cell column not in ``keep`` (None: keep all; the QC column is always
    kept) is not scattered but appended to ``left_out``. Returns
    ``(obs_cols, var_cols, coded)``."""
    special = {roles[k] for k in ("sample", "olinkid", "value", "lod", "plate", "qc")} - {None}
    assay_level = ASSAY_LEVEL | {roles[k] for k in ("assay", "uniprot", "panel") if roles[k]}
    obs_cols: dict[str, np.ndarray] = {}
    var_cols: dict[str, np.ndarray] = {}
    coded: dict[str, np.ndarray] = {}
    groups = {
        "obs": (pivot.kept(o_codes), pivot.n_obs),
        "var": (pivot.kept(ids.a_codes), pivot.n_assay),
    }
    group_cache: dict[str, _Groups] = {}
    if pivot.keep_rows is None:
        group_cache["var"] = ids.a_groups
    for c in columns:
        if c in special and c != qc_layer_col:
            continue
        col = cols[c]
        if keep is not None and c in MEASUREMENT_LEVEL and c not in keep:  # always a layer
            if left_out is not None:
                left_out.append(c)
            col.release()
            continue
        if col.is_numeric:
            key, uniques = pivot.kept(col.values()), None
        else:
            key, uniques = col.codes()
            key = pivot.kept(key)
        placed = False
        if c not in MEASUREMENT_LEVEL and c != qc_layer_col:
            for slot in ("var", "obs") if c in assay_level else ("obs", "var"):
                if slot not in group_cache:
                    group_cache[slot] = _Groups(*groups[slot])
                ok, per = group_cache[slot].constant(key)
                if ok:
                    if uniques is not None:
                        per = np.append(uniques, None).astype(object)[per]
                    (obs_cols if slot == "obs" else var_cols)[c] = per
                    placed = True
                    break
        if placed:
            continue
        if keep is not None and c not in keep and c != qc_layer_col:
            if left_out is not None:
                left_out.append(c)
            col.release()
            continue
        if uniques is None:
            layers[c] = pivot.scatter(key, np.nan, np.float64, kept=True)
        else:
            dt = code_dtype(len(uniques))  # int8 when the categories fit
            layers[c] = pivot.scatter(key.astype(dt), -1, dt, kept=True)
            coded[c] = np.asarray([str(u) for u in uniques], dtype=object)
        col.release()
    return obs_cols, var_cols, coded


def qc_from_cells(
    codes_mat: np.ndarray, cats: np.ndarray, assay_panel: np.ndarray, on_panel: np.ndarray
) -> np.ndarray:
    """QC_Warning per (obs, panel) from a per-cell QC layer: the first failing label where
    any cell of the panel fails, else the first passing one ("WARN" / "PASS" if none).

    Examples
    --------
    >>> import numpy as np
    >>> codes = np.array([[0, 1], [0, 0]], dtype=np.int8)  # 2 obs × 2 assays, one panel
    >>> qc_from_cells(codes, np.array(["PASS", "WARN"], dtype=object), np.array([0, 0]),
    ...               np.ones((2, 1), dtype=bool)).tolist()
    [['WARN'], ['PASS']]
    """
    n_obs, n_panel = on_panel.shape
    cat_pass = is_pass(cats)
    qc_cell_flag = np.zeros(codes_mat.shape, dtype=bool)
    valid = codes_mat >= 0
    qc_cell_flag[valid] = ~cat_pass[codes_mat[valid]]
    any_flag = np.zeros((n_obs, n_panel), dtype=bool)
    for k in range(n_panel):
        any_flag[:, k] = qc_cell_flag[:, assay_panel == k].any(axis=1)
    bad_labels = [str(c) for c, ok in zip(cats, cat_pass, strict=True) if not ok]
    good_labels = [str(c) for c, ok in zip(cats, cat_pass, strict=True) if ok and str(c)]
    qc_mat = np.where(
        any_flag,
        bad_labels[0] if bad_labels else "WARN",
        good_labels[0] if good_labels else "PASS",
    )
    return np.where(on_panel, qc_mat, "").astype(object)

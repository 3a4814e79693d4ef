"""The simulator's assays: real Olink assays (package data) and the ones that respond to
CAR-T infusion in the simulated study (:data:`SIGNAL_ASSAYS`)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ValidationError

__all__ = ["SIGNAL_ASSAYS", "assay_table", "choose_assays"]

#: Assays that rise after infusion in the simulated study, with their mean post − pre
#: change in NPX (log2) at an average response. SIT1, CD28 and IL2RB are the published
#: findings; the rest are members of the KEGG "JAK-STAT signaling pathway" and/or
#: "PI3K-Akt signaling pathway" (KEGG_2021_Human) and T-cell activation markers.
SIGNAL_ASSAYS: dict[str, float] = {
    "SIT1": 1.2,
    "CD28": 1.0,
    "IL2RB": 1.1,
    "IL2RA": 1.0,
    "IL6": 1.4,
    "IL10": 0.8,
    "IFNG": 1.0,
    "IL15": 0.8,
    "IL7": 0.8,
    "IL2": 0.6,
    "CSF2": 0.8,
    "OSM": 0.8,
    "LIF": 0.8,
    "CSF3": 0.7,
    "IL15RA": 0.6,
    "IL4R": 0.6,
    "FLT3LG": 0.8,
    "KITLG": 0.7,
    "CSF1": 0.7,
    "HGF": 0.6,
    "SPP1": 0.7,
    "VEGFA": 0.7,
    "ANGPT2": 0.6,
    "PGF": 0.6,
    "TNC": 0.6,
    "THBS2": 0.5,
    "FASLG": 0.6,
    "GZMB": 0.8,
    "CXCL10": 0.9,
    "CXCL9": 0.7,
    "TNFRSF9": 0.7,
    "LAG3": 0.6,
    "CD19": -0.8,
}

_EXTRA_PANELS = [
    "Cardiometabolic_II",
    "Inflammation_II",
    "Neurology_II",
    "Oncology_II",
    "Cardiometabolic",
    "Inflammation",
    "Neurology",
    "Oncology",
]


def assay_table() -> pd.DataFrame:
    """The real Olink assays the simulator draws from (package data).

    Returns
    -------
    DataFrame
        ``OlinkID, Assay, UniProt, Panel, Panel_Lot_Nr``: gene symbols as Olink Explore
        names its assays and their UniProt accessions, on four Explore 384 panels. The
        ``OID9xxxx`` identifiers are placeholders in Olink's format, not Olink's own IDs.

    Examples
    --------
    >>> from olinkpipe.datasets import assay_table
    >>> table = assay_table()
    >>> table.loc[table["Assay"] == "IL2RB", "UniProt"].item()
    'P14784'
    """
    path = resources.files("olinkpipe.datasets") / "data" / "olink_assays.csv"
    with resources.as_file(path) as p:
        return pd.read_csv(p, dtype=str, keep_default_na=False)


def choose_assays(n_assays: int | None, rng) -> pd.DataFrame:
    table = assay_table()
    if n_assays is None or n_assays == len(table):
        return table
    if n_assays < 1:
        msg = f"n_assays={n_assays} must be at least 1."
        raise ValidationError(msg)
    if n_assays < len(table):
        signal = table["Assay"].isin(SIGNAL_ASSAYS).to_numpy()
        order = np.concatenate([np.flatnonzero(signal), rng.permutation(np.flatnonzero(~signal))])
        keep = np.sort(order[:n_assays])
        return table.iloc[keep].reset_index(drop=True)
    # More than the real table: add assays named by real gene symbols (from the offline
    # GO collection) on further panels, with placeholder IDs and no UniProt accession.
    extra = n_assays - len(table)
    symbols = _extra_symbols(set(table["Assay"]), extra)
    panels = np.resize(np.array(_EXTRA_PANELS, dtype=object), extra)
    more = pd.DataFrame(
        {
            "OlinkID": [f"OID{92001 + i}" for i in range(extra)],
            "Assay": symbols,
            "UniProt": "",
            "Panel": panels,
            "Panel_Lot_Nr": "B99999",
        }
    )
    return pd.concat([table, more], ignore_index=True)


def _extra_symbols(used: set[str], n: int) -> list[str]:
    from importlib.util import find_spec

    names: list[str] = []
    spec = find_spec("blitzgsea")
    if spec is not None and spec.origin is not None:
        path = Path(spec.origin).parent / "data" / "GO_Biological_Process_2023"
        if path.exists():
            seen = set(used)
            for line in path.read_text().splitlines():
                for g in line.split("\t")[2:]:
                    if g and g not in seen and g.isascii():
                        seen.add(g)
                        names.append(g)
                if len(names) >= n:
                    break
    names = names[:n]
    names += [f"PROT{i + 1}" for i in range(n - len(names))]
    return names

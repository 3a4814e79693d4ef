"""A simulator of a prophylactic CAR-T study with paired Olink proteomics.

The study has the shape of a published single-centre study of prophylactic donor-derived
CD19 CAR-T cells after allogeneic stem-cell transplantation (23 treated patients, 44
controls): baseline characteristics close to the published counts, doses, CAR-T expansion,
IL-6 and CRP courses, CRS, relapse / non-relapse mortality / survival, and Olink NPX before
and after infusion on a few hundred real Olink assays in which SIT1, CD28, IL2RB and members
of the KEGG JAK-STAT and PI3K-Akt pathways rise after infusion.

Everything is generated with numpy over whole arrays, so the same function makes the
bundled example and benchmark-sized data (5,400 assays × thousands of samples).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from .._validate import check_literal
from ..errors import ValidationError
from . import _clinical_sim
from ._assays import SIGNAL_ASSAYS, assay_table, choose_assays
from ._npx_sim import npx_values, sample_table
from ._pivot import long_to_anndata

__all__ = ["simulate_cart_study", "CartStudy", "assay_table", "SIGNAL_ASSAYS"]
# SIGNAL_ASSAYS and assay_table live in ._assays; importable from here as before


@dataclass(frozen=True)
class CartStudy:
    """A simulated study: the Olink export and the clinical tables.

    Attributes
    ----------
    npx
        Long Olink NPX export (Olink's column names, one row per sample × assay).
    samples
        Sample sheet: ``SampleID, patient, timepoint, day`` for the study samples.
    patients
        One row per patient (treated and controls): baseline, dose, CRS, outcomes.
    measurements
        Long clinical measurements: ``patient, day, analyte, value, unit,
        below_detection`` (CAR-T expansion, IL-6, CRP).
    truth
        Per assay: ``OlinkID, Assay, effect`` — the simulated mean post − pre change.
    seed
        The seed that made it.
    """

    npx: pd.DataFrame
    samples: pd.DataFrame
    patients: pd.DataFrame
    measurements: pd.DataFrame
    truth: pd.DataFrame
    seed: int
    files: dict = field(default_factory=dict)

    def to_anndata(self) -> ad.AnnData:
        """Build the samples × assays AnnData (docs/data_model.md) directly, without a reader.

        The layout is the one :func:`olinkpipe.read_npx` gives for the written export
        (the compact one: LOD as the assays × plates table ``varm["lod"]``, below LOD and
        QC per cell computed on demand by :mod:`olinkpipe._layout`). Meant for
        benchmarks and tests that need the matrix quickly; users read the written export
        with :func:`olinkpipe.read_npx` instead.

        Examples
        --------
        >>> from olinkpipe.datasets import simulate_cart_study
        >>> adata = simulate_cart_study(seed=1, n_treated=4, n_control=4, n_assays=20).to_anndata()
        >>> adata.shape[1], "lod" in adata.varm, "below_lod" in adata.layers
        (20, True, False)
        """
        return long_to_anndata(self.npx, self.samples)


def simulate_cart_study(
    seed: int = 0,
    *,
    n_treated: int = 23,
    n_control: int = 44,
    n_assays: int | None = None,
    n_factors: int = 5,
    effect_scale: float = 1.0,
    post_day: int = 7,
    n_qc_warnings: int = 2,
    n_controls_per_plate: int = 2,
    out: str | PathLike[str] | None = None,
    npx_format: str = "csv",
) -> CartStudy:
    """Simulate a prophylactic CAR-T study with paired Olink proteomics.

    Parameters
    ----------
    seed
        Seed of ``numpy.random.default_rng``; the same seed gives identical output.
    n_treated, n_control
        Numbers of CAR-T treated patients (each with a pre and a post Olink sample) and of
        control patients (clinical data only). Defaults as in the published study.
    n_assays
        Number of Olink assays. ``None`` uses every real assay of the bundled table
        (:func:`assay_table`, 359 assays on 4 panels); fewer keeps the signal assays and
        a random subset; more (up to Explore HT size, 5,400 and beyond) adds assays named
        by real gene symbols with placeholder IDs, for benchmarks.
    n_factors
        Rank of the latent factor model giving assay-to-assay correlation.
    effect_scale
        Multiplies every simulated post − pre effect (0 gives a null study).
    post_day
        Day after infusion of the post sample.
    n_qc_warnings
        Number of (sample, panel) pairs flagged ``WARN``.
    n_controls_per_plate
        Olink sample controls per plate (``Sample_Type`` ``CONTROL``).
    out
        Directory to write the files to (created): ``npx_data.csv`` (long export,
        ``;``-separated), ``npx_data.parquet`` (when ``npx_format="both"``),
        ``samples.csv``, ``patients.csv``, ``measurements.csv``.
    npx_format
        ``"csv"``, ``"parquet"`` or ``"both"``: which NPX files ``out`` receives.

    Returns
    -------
    CartStudy
        ``npx`` (long export), ``samples``, ``patients``, ``measurements``, ``truth``
        (per-assay simulated effect), ``seed`` and ``files`` (paths written).

    Notes
    -----
    NPX of assay *a* in sample *s* of patient *i* is
    ``mu_a + b_ia + z_s · w_a + plate + e_sa (+ r_i · delta_a after infusion)``: a subject
    effect ``b`` (what pairing removes), ``k`` latent factors shared by assays (realistic
    correlation), a small plate effect, technical noise, and for the signal assays
    (:data:`SIGNAL_ASSAYS`) a rise ``delta_a`` scaled by the patient's response ``r_i``,
    which follows the patient's peak CAR-T expansion. LOD is per assay and plate; values
    below LOD are kept, as Explore exports keep them. Baseline categories follow the
    published counts (scaled by largest remainder when sizes differ); outcomes are drawn so
    that 2-year relapse, non-relapse mortality and survival are near the published ones.
    OlinkIDs ``OID9xxxx`` are placeholders in Olink's format, not Olink's own IDs.

    Examples
    --------
    >>> from olinkpipe.datasets import simulate_cart_study
    >>> study = simulate_cart_study(seed=0)
    >>> study.samples["patient"].nunique(), int((study.patients["dose"] > 2e6).sum())
    (23, 10)
    """
    check_literal("npx_format", npx_format, ["csv", "parquet", "both"])
    for name, value in (("n_treated", n_treated), ("n_control", n_control)):
        if int(value) != value or value < 0:
            msg = f"{name}={value!r} must be a non-negative integer."
            raise ValidationError(msg)
    rng = np.random.default_rng(seed)
    patients = _clinical_sim.outcomes(_clinical_sim.patients(n_treated, n_control, rng), rng)
    measurements, log_peak = _clinical_sim.measurements(patients, rng)
    samples = sample_table(patients, n_controls_per_plate, post_day, rng)
    assays = choose_assays(n_assays, rng)
    # response multiplier follows the patient's peak expansion (mean 1), by patient ID
    lp = log_peak.to_numpy()
    z = (lp - lp.mean()) / (lp.std() or 1.0) if lp.size else lp
    noise = rng.normal(0, 0.2, lp.size)
    response = pd.Series(np.clip(1.0 + 0.35 * z + noise, 0.2, None), index=log_peak.index)
    npx, truth = npx_values(
        assays,
        samples,
        response,
        rng,
        n_factors=n_factors,
        n_qc_warnings=n_qc_warnings,
        effect_scale=effect_scale,
    )
    sample_sheet = samples.loc[
        samples["patient"].notna(), ["SampleID", "patient", "timepoint", "day"]
    ]
    sample_sheet = sample_sheet.sort_values(["patient", "day"]).reset_index(drop=True)
    sample_sheet["day"] = sample_sheet["day"].astype(int)
    study = CartStudy(
        npx=npx,
        samples=sample_sheet,
        patients=patients,
        measurements=measurements,
        truth=truth,
        seed=seed,
    )
    if out is not None:
        files = write_study(study, out, npx_format=npx_format)
        study.files.update(files)
    return study


def write_study(
    study: CartStudy, out: str | PathLike[str], *, npx_format: str = "both"
) -> dict[str, Path]:
    """Write a :class:`CartStudy` as the files a user gets (see :func:`simulate_cart_study`).

    Returns
    -------
    dict
        Name → path of every file written.

    Examples
    --------
    >>> import tempfile
    >>> from olinkpipe.datasets import simulate_cart_study
    >>> from olinkpipe.datasets.simulate import write_study
    >>> study = simulate_cart_study(seed=1, n_treated=3, n_control=3, n_assays=10)
    >>> sorted(write_study(study, tempfile.mkdtemp(), npx_format="csv"))
    ['measurements', 'npx', 'patients', 'samples']
    """
    check_literal("npx_format", npx_format, ["csv", "parquet", "both"])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    if npx_format in ("csv", "both"):
        files["npx"] = out / "npx_data.csv"
        study.npx.to_csv(files["npx"], sep=";", index=False, na_rep="NA", lineterminator="\n")
    if npx_format in ("parquet", "both"):
        files["npx_parquet"] = out / "npx_data.parquet"
        _write_parquet(study.npx, files["npx_parquet"])
    for name in ("samples", "patients", "measurements"):
        files[name] = out / f"{name}.csv"
        getattr(study, name).to_csv(files[name], index=False, lineterminator="\n")
    return files


def _write_parquet(npx: pd.DataFrame, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(
        npx.astype({c: str for c in npx.select_dtypes("category")}), preserve_index=False
    )
    meta = dict(table.schema.metadata or {})
    meta.update(
        {
            b"Product": b"Explore 3072",
            b"DataFileType": b"NPX File",
            b"Simulated": b"olinkpipe.datasets.simulate_cart_study",
        }
    )
    pq.write_table(table.replace_schema_metadata(meta), path, compression="zstd")

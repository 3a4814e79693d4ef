"""The bundled example study: simulated files as a user would receive them."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from os import PathLike
from pathlib import Path

import anndata as ad
import pandas as pd

__all__ = ["load_example", "ExampleStudy", "example_dir", "build_example", "EXAMPLE_SEED"]

#: The seed :func:`build_example` passes to :func:`simulate_cart_study`.
EXAMPLE_SEED = 0

_FILES = {
    "npx": "npx_data.csv",
    "npx_parquet": "npx_data.parquet",
    "samples": "samples.csv",
    "patients": "patients.csv",
    "measurements": "measurements.csv",
}


def example_dir() -> Path:
    """The installed folder holding the example files (``olinkpipe/datasets/example``).

    Examples
    --------
    >>> from olinkpipe.datasets.example import example_dir
    >>> (example_dir() / "npx_data.csv").exists()
    True
    """
    return Path(str(resources.files("olinkpipe.datasets") / "example"))


@dataclass
class ExampleStudy:
    """The example study loaded: the long NPX export and the clinical tables.

    Attributes
    ----------
    npx
        The long Olink export as written (``;``-separated, Olink's column names).
    samples
        ``SampleID, patient, timepoint, day``.
    patients
        One row per patient (23 CAR-T, 44 controls).
    measurements
        ``patient, day, analyte, value, unit, below_detection``.
    files
        Name → path of each file (``npx``, ``npx_parquet``, ``samples``, ``patients``,
        ``measurements``, ``readme``).
    """

    npx: pd.DataFrame
    samples: pd.DataFrame
    patients: pd.DataFrame
    measurements: pd.DataFrame
    files: dict[str, Path] = field(default_factory=dict)

    @cached_property
    def adata(self) -> ad.AnnData:
        """The export read with :func:`olinkpipe.read_npx`, sample sheet joined to ``obs``."""
        from ..io import annotate, read_npx

        adata = read_npx(self.files["npx"])
        return annotate(adata, self.samples, on="SampleID", id_column="SampleID")


def load_example(path: str | PathLike[str] | None = None) -> ExampleStudy:
    """Load the bundled simulated CAR-T study.

    Parameters
    ----------
    path
        Folder holding the example files; the installed copy when ``None``.

    Returns
    -------
    ExampleStudy
        ``npx``, ``samples``, ``patients``, ``measurements`` as DataFrames, ``files`` (the
        paths) and ``adata`` (read on first access with :func:`olinkpipe.read_npx`, the
        sample sheet joined on ``SampleID``).

    Notes
    -----
    The files are made by :func:`build_example`, i.e. ``simulate_cart_study(seed=0)``;
    see ``README.md`` in the folder. They are simulated, not patient data.

    Examples
    --------
    >>> import olinkpipe as op
    >>> ex = op.datasets.load_example()
    >>> ex.samples["patient"].nunique(), len(ex.patients)
    (23, 67)
    """
    folder = Path(path) if path is not None else example_dir()
    files = {k: folder / v for k, v in _FILES.items()}
    files["readme"] = folder / "README.md"
    npx = pd.read_csv(files["npx"], sep=";")
    samples = pd.read_csv(files["samples"])
    patients = pd.read_csv(files["patients"])
    measurements = pd.read_csv(files["measurements"])
    return ExampleStudy(
        npx=npx, samples=samples, patients=patients, measurements=measurements, files=files
    )


def build_example(out: str | PathLike[str] | None = None) -> dict[str, Path]:
    """(Re)write the example files with ``simulate_cart_study(seed=EXAMPLE_SEED)``.

    Parameters
    ----------
    out
        Target folder; the package's own example folder when ``None`` (for maintainers).

    Returns
    -------
    dict
        Name → path of each file written.

    Examples
    --------
    >>> import tempfile
    >>> from olinkpipe.datasets.example import build_example
    >>> sorted(build_example(tempfile.mkdtemp()))[:2]
    ['measurements', 'npx']
    """
    from .simulate import simulate_cart_study

    folder = Path(out) if out is not None else example_dir()
    study = simulate_cart_study(EXAMPLE_SEED, out=folder, npx_format="both")
    return dict(study.files)

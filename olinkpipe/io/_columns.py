"""Column names shared by the io readers (below :mod:`~olinkpipe.io.npx`,
:mod:`~olinkpipe.io.wide` and the streaming reader, so none imports another for them)."""

from __future__ import annotations

# Columns read as dictionary-encoded text: IDs stay text (numeric SampleIDs, leading zeros)
# and the integer codes feed the long -> matrix pivot directly.
STRING_COLUMNS = {
    "SampleID",
    "Sample_ID",
    "OlinkID",
    "UniProt",
    "Assay",
    "Panel",
    "Panel_Version",
    "Panel_Lot_Nr",
    "PlateID",
    "QC_Warning",
    "SampleQC",
    "Normalization",
    "Assay_Warning",
    "AssayQC",
    "SampleType",
    "Sample_Type",
    "AssayType",
    "WellID",
    "Block",
    "Subject",
    "Treatment",
    "Site",
    "Time",
    "Project",
    "ExploreVersion",
    "DataAnalysisRefID",
    "Unit",
}

"""The patient side: kinetics, dose and outcome associations, survival and the baseline table."""

from .associate import associate_outcome, compare_groups, correlate, dose_groups
from .kinetics import kinetics
from .proteomics import protein_changes
from .survival import cumulative_incidence, fine_gray, gray_test, kaplan_meier, logrank
from .table_one import export_table_one, table_one
from .validate import read_measurements, read_patients

__all__ = [
    "read_measurements",
    "read_patients",
    "kinetics",
    "dose_groups",
    "compare_groups",
    "correlate",
    "associate_outcome",
    "protein_changes",
    "kaplan_meier",
    "logrank",
    "cumulative_incidence",
    "gray_test",
    "fine_gray",
    "table_one",
    "export_table_one",
]

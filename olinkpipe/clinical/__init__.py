"""The patient side: kinetics, dose and outcome associations, survival and the baseline table."""

from .validate import read_measurements, read_patients
from .kinetics import kinetics
from .associate import dose_groups, compare_groups, correlate, associate_outcome
from .survival import kaplan_meier, logrank, cumulative_incidence, gray_test
from .table_one import table_one, export_table_one

__all__ = [
    "read_measurements",
    "read_patients",
    "kinetics",
    "dose_groups",
    "compare_groups",
    "correlate",
    "associate_outcome",
    "kaplan_meier",
    "logrank",
    "cumulative_incidence",
    "gray_test",
    "table_one",
    "export_table_one",
]

"""The bundled example study, the CAR-T study simulator and the biobank-size writer."""

from .example import load_example
from .large import write_large_explore
from .simulate import CartStudy, assay_table, simulate_cart_study

__all__ = [
    "simulate_cart_study",
    "load_example",
    "assay_table",
    "CartStudy",
    "write_large_explore",
]

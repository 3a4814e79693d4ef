"""The bundled example study and the CAR-T study simulator."""

from .example import load_example
from .simulate import CartStudy, assay_table, simulate_cart_study

__all__ = ["simulate_cart_study", "load_example", "assay_table", "CartStudy"]

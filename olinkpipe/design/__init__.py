"""Study design before the run: assigning samples to plates and wells."""

from .plates import PRODUCT_PLATE_SIZE, balance_chisq, randomize_plates

__all__ = ["randomize_plates", "balance_chisq", "PRODUCT_PLATE_SIZE"]

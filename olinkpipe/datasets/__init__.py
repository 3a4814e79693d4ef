"""The bundled example study and the CAR-T study simulator."""

from .simulate import simulate_cart_study
from .example import load_example

__all__ = ['simulate_cart_study', 'load_example']

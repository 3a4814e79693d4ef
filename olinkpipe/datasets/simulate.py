"""PLACEHOLDER: to be implemented (see the issue). Replace this whole file."""

__all__ = ['simulate_cart_study']


def simulate_cart_study(*args, **kwargs):
    raise NotImplementedError('simulate_cart_study')


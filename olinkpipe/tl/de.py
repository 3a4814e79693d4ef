"""PLACEHOLDER: to be implemented (see the issue). Replace this whole file."""

__all__ = ['differential']


def differential(*args, **kwargs):
    raise NotImplementedError('differential')


"""PLACEHOLDER: to be implemented (see the issue). Replace this whole file."""

__all__ = ['kinetics']


def kinetics(*args, **kwargs):
    raise NotImplementedError('kinetics')


"""PLACEHOLDER: to be implemented (see the issue). Replace this whole file."""

__all__ = ['to_long', 'from_long']


def to_long(*args, **kwargs):
    raise NotImplementedError('to_long')


def from_long(*args, **kwargs):
    raise NotImplementedError('from_long')


"""PLACEHOLDER: to be implemented (see the issue). Replace this whole file."""

__all__ = ['read_npx']


def read_npx(*args, **kwargs):
    raise NotImplementedError('read_npx')


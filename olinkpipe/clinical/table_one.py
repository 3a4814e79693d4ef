"""PLACEHOLDER: to be implemented (see the issue). Replace this whole file."""

__all__ = ['table_one']


def table_one(*args, **kwargs):
    raise NotImplementedError('table_one')


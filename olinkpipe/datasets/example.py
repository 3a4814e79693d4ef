"""PLACEHOLDER: to be implemented (see the issue). Replace this whole file."""

__all__ = ['load_example']


def load_example(*args, **kwargs):
    raise NotImplementedError('load_example')


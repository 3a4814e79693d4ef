"""PLACEHOLDER: to be implemented (see the issue). Replace this whole file."""

__all__ = ['run']


def run(*args, **kwargs):
    raise NotImplementedError('run')


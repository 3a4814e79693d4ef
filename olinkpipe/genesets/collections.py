"""PLACEHOLDER: to be implemented (see the issue). Replace this whole file."""

__all__ = ['load', 'available', 'read_gmt']


def load(*args, **kwargs):
    raise NotImplementedError('load')


def available(*args, **kwargs):
    raise NotImplementedError('available')


def read_gmt(*args, **kwargs):
    raise NotImplementedError('read_gmt')


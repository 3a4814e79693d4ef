"""PLACEHOLDER: to be implemented (see the issue). Replace this whole file."""

__all__ = ['bridge_normalize', 'select_bridge_samples']


def bridge_normalize(*args, **kwargs):
    raise NotImplementedError('bridge_normalize')


def select_bridge_samples(*args, **kwargs):
    raise NotImplementedError('select_bridge_samples')


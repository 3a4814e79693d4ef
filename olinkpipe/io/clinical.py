"""PLACEHOLDER: to be implemented (see the issue). Replace this whole file."""

__all__ = ['read_clinical', 'annotate']


def read_clinical(*args, **kwargs):
    raise NotImplementedError('read_clinical')


def annotate(*args, **kwargs):
    raise NotImplementedError('annotate')


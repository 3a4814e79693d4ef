"""PLACEHOLDER: to be implemented (see the issue). Replace this whole file."""

__all__ = ['ora', 'gsea']


def ora(*args, **kwargs):
    raise NotImplementedError('ora')


def gsea(*args, **kwargs):
    raise NotImplementedError('gsea')


"""PLACEHOLDER: to be implemented (see the issue). Replace this whole file."""

__all__ = ['enrichment', 'gsea', 'pathway', 'leading_edge']


def enrichment(*args, **kwargs):
    raise NotImplementedError('enrichment')


def gsea(*args, **kwargs):
    raise NotImplementedError('gsea')


def pathway(*args, **kwargs):
    raise NotImplementedError('pathway')


def leading_edge(*args, **kwargs):
    raise NotImplementedError('leading_edge')


"""PLACEHOLDER: to be implemented (see the issue). Replace this whole file."""

__all__ = ['volcano', 'paired', 'heatmap']


def volcano(*args, **kwargs):
    raise NotImplementedError('volcano')


def paired(*args, **kwargs):
    raise NotImplementedError('paired')


def heatmap(*args, **kwargs):
    raise NotImplementedError('heatmap')


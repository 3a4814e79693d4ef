"""Workflow configs, the step runner and the HTML report."""

from .runner import run

__all__ = ['run']

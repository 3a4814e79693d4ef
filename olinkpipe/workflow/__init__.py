"""Workflow configs, the step runner and the HTML report (``olinkpipe run``)."""

from .config import WorkflowConfig, available_configs, bundled_config, load_config
from .runner import STEPS, WorkflowError, WorkflowResult, run

__all__ = [
    "run",
    "load_config",
    "bundled_config",
    "available_configs",
    "WorkflowConfig",
    "WorkflowResult",
    "WorkflowError",
    "STEPS",
]

"""``Registry``, ``Model`` and ``ModelVersion`` (snowflake-ml-python's names)."""

from .registry import Model, ModelVersion, Registry

__all__ = ["Registry", "Model", "ModelVersion"]

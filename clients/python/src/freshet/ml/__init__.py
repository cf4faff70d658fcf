"""Model registry for Freshet (``from freshet.ml.registry import Registry``)."""

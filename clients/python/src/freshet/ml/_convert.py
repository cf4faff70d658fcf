"""Turning a model object into ONNX bytes for ``CREATE MODEL … FROM $1``."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Tuple

from ..exceptions import FreshetClientError

_WHAT = ("a scikit-learn estimator or pipeline, an XGBoost or LightGBM model, an onnx.ModelProto, "
         "ONNX bytes, or a path to an .onnx file")


def _module(obj: Any) -> str:
    return type(obj).__module__ or ""


def _is_sklearn(model: Any) -> bool:
    try:
        from sklearn.base import BaseEstimator
    except ImportError:
        return _module(model).startswith("sklearn")
    return isinstance(model, BaseEstimator) and not _is_xgb(model) and not _is_lgbm(model)


def _is_xgb(model: Any) -> bool:
    return _module(model).startswith("xgboost")


def _is_lgbm(model: Any) -> bool:
    return _module(model).startswith("lightgbm")


def to_onnx_bytes(model: Any, *, sample_input_data: Any = None, target_opset: Optional[int] = None,
                  options: Optional[Dict[Any, Any]] = None, initial_types: Optional[List[Tuple[str, Any]]] = None) -> bytes:
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.isfile(path):
            raise FreshetClientError(f"log_model(): no such file {path!r}")
        with open(path, "rb") as f:
            return f.read()
    if _module(model).startswith("onnx") and hasattr(model, "SerializeToString"):
        return model.SerializeToString()
    if _is_sklearn(model):
        return _from_sklearn(model, sample_input_data, target_opset, options, initial_types)
    if _is_xgb(model) or _is_lgbm(model):
        return _from_boosting(model, sample_input_data, target_opset, initial_types)
    raise FreshetClientError(f"log_model(): cannot convert a {type(model).__module__}.{type(model).__name__}; pass {_WHAT}")


def _uses_columns(model: Any) -> bool:
    """Whether the model selects input columns by name (a ColumnTransformer,
    first or alone), so each column is an ONNX input of its own."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if isinstance(model, ColumnTransformer):
        return True
    if isinstance(model, Pipeline) and model.steps:
        return _uses_columns(model.steps[0][1])
    return False


def _column_type(series: Any) -> Any:
    from pandas.api import types as t
    from skl2onnx.common.data_types import (BooleanTensorType, FloatTensorType,
                                            Int64TensorType, StringTensorType)

    dt = series.dtype
    if t.is_bool_dtype(dt):
        return BooleanTensorType([None, 1])
    if t.is_integer_dtype(dt):
        return Int64TensorType([None, 1])
    if t.is_float_dtype(dt):
        return FloatTensorType([None, 1])
    if t.is_string_dtype(dt) or t.is_object_dtype(dt):
        return StringTensorType([None, 1])
    raise FreshetClientError(f"log_model(): column {series.name!r} has dtype {dt}, which has no ONNX input type")


def _feature_count(model: Any, sample: Any) -> Optional[int]:
    if sample is not None:
        shape = getattr(sample, "shape", None)
        if shape is not None and len(shape) == 2:
            return int(shape[1])
    n = getattr(model, "n_features_in_", None)
    if n is None and hasattr(model, "steps"):
        n = getattr(model.steps[0][1], "n_features_in_", None)
    return int(n) if n is not None else None


def _from_sklearn(model: Any, sample: Any, target_opset: Optional[int], options: Optional[Dict[Any, Any]],
                  initial_types: Optional[List[Tuple[str, Any]]]) -> bytes:
    try:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType
    except ImportError:
        raise FreshetClientError(
            "log_model(): converting scikit-learn models needs skl2onnx (pip install 'freshet[ml]')") from None
    from sklearn.base import is_classifier

    if initial_types is None:
        if _uses_columns(model):
            try:
                import pandas as pd
            except ImportError:  # pragma: no cover
                pd = None
            if pd is None or not isinstance(sample, pd.DataFrame):
                raise FreshetClientError(
                    "log_model(): this model selects input columns by name, so it needs their types: pass "
                    "sample_input_data=<a pandas DataFrame with a few training rows> (or initial_types=)")
            initial_types = [(str(c), _column_type(sample[c])) for c in sample.columns]
        else:
            n = _feature_count(model, sample)
            if n is None:
                raise FreshetClientError(
                    "log_model(): cannot tell how many features this model takes: pass "
                    "sample_input_data=<a few training rows> (or initial_types=)")
            initial_types = [("X", FloatTensorType([None, n]))]
    if options is None:
        options = {}
        if is_classifier(model) and hasattr(model, "predict_proba"):
            options = {id(model): {"zipmap": False}}
    elif options and all(isinstance(k, str) for k in options) and is_classifier(model):
        options = {id(model): dict(options)}
    try:
        onx = convert_sklearn(model, initial_types=initial_types, options=options, target_opset=target_opset)
    except Exception as e:  # skl2onnx raises many kinds
        raise FreshetClientError(f"log_model(): skl2onnx could not convert {type(model).__name__}: {e}") from e
    return onx.SerializeToString()


def _from_boosting(model: Any, sample: Any, target_opset: Optional[int],
                   initial_types: Optional[List[Tuple[str, Any]]]) -> bytes:
    try:
        import onnxmltools
        from onnxmltools.convert.common.data_types import FloatTensorType
    except ImportError:
        raise FreshetClientError(
            "log_model(): converting XGBoost or LightGBM models needs onnxmltools (pip install onnxmltools)") from None
    if initial_types is None:
        n = _feature_count(model, sample)
        if n is None:
            raise FreshetClientError(
                "log_model(): cannot tell how many features this model takes: pass sample_input_data=")
        initial_types = [("X", FloatTensorType([None, n]))]
    if _is_xgb(model):
        onx = onnxmltools.convert_xgboost(model, initial_types=initial_types, target_opset=target_opset)
    else:
        onx = onnxmltools.convert_lightgbm(model, initial_types=initial_types, target_opset=target_opset,
                                           zipmap=False)
    return onx.SerializeToString()

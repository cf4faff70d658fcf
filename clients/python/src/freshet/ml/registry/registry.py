"""The model registry (snowflake-ml-python's ``Registry``), kept by the
server: models are uploaded as ONNX bytes with ``CREATE MODEL … FROM $1`` and
scored with ``MODEL(name, version)!predict(…)``."""

from __future__ import annotations

import json
import re
import uuid
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Union

from ..._kwargs import suggest_keywords, take_kwargs
from ..._sql import literal, normalize_ident, quote_ident
from ...exceptions import FreshetClientError, FreshetSQLException
from ...snowpark.column import Column
from ...snowpark.dataframe import DataFrame, _q
from .. import _convert

if TYPE_CHECKING:  # pragma: no cover
    import pandas

    from ...snowpark.session import Session

_METRICS_TABLE = "freshet_model_metrics"


class Registry:
    """Models in one schema (``database_name.schema_name``; the session's
    current ones by default). The schema (and database) are created if they
    are missing."""

    @suggest_keywords
    def __init__(self, session: "Session", *, database_name: Optional[str] = None,
                 schema_name: Optional[str] = None, options: Optional[Dict[str, Any]] = None) -> None:
        self._session = session
        db = normalize_ident(database_name) if database_name else session.get_current_database()
        # snowflake-ml-python's rule: a database without a schema means its
        # PUBLIC schema; neither means the session's current ones.
        if schema_name:
            schema = normalize_ident(schema_name)
        elif database_name:
            schema = "public"
        else:
            schema = session.get_current_schema() or "public"
        if not db:
            raise FreshetClientError("Registry: the session has no current database; pass database_name=")
        self._db = db
        self._schema = schema
        if database_name and not session._fetch(
                "SELECT 1 FROM information_schema.schemata WHERE catalog_name = %s LIMIT 1", [db]):
            session._execute(f"CREATE DATABASE IF NOT EXISTS {quote_ident(_q(db))}")
        session._execute(f"CREATE SCHEMA IF NOT EXISTS {self._prefix()}")

    def _prefix(self) -> str:
        return f"{quote_ident(_q(self._db))}.{quote_ident(_q(self._schema))}"

    def _fq(self, model_name: str) -> str:
        return f"{self._prefix()}.{quote_ident(model_name)}"

    @property
    def location(self) -> str:
        return f"{self._db}.{self._schema}"

    # -- models ------------------------------------------------------------------

    def _show_models(self, like: Optional[str] = None) -> List[Dict[str, Any]]:
        sql = "SHOW MODELS"
        if like is not None:
            sql += f" LIKE {literal(like)}"
        sql += f" IN SCHEMA {self._prefix()}"
        cur = self._session._execute(sql)
        names = [d.name for d in cur.description or []]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def _find(self, model_name: str) -> Optional[Dict[str, Any]]:
        stored = normalize_ident(model_name)
        # the server narrows the list (LIKE; _ and % match more, so compare after)
        for m in self._show_models(like=stored):
            if m["name"] == stored:
                return m
        return None

    def get_model(self, model_name: str) -> "Model":
        """The model named ``model_name``; ``ValueError`` if there is none."""
        if self._find(model_name) is None:
            known = [m["name"] for m in self._show_models()]
            raise ValueError(
                f"Unable to find model {model_name!r} in {self.location} (models there: "
                f"{', '.join(known) if known else 'none'}); register it with "
                f"log_model(model, model_name={model_name!r}) or SQL's CREATE MODEL")
        return Model(self, normalize_ident(model_name))

    def models(self) -> List["Model"]:
        return [Model(self, m["name"]) for m in self._show_models()]

    def show_models(self) -> "pandas.DataFrame":
        import pandas as pd

        return pd.DataFrame(self._show_models(),
                            columns=["created_on", "name", "database_name", "schema_name", "comment", "owner",
                                     "default_version_name", "versions", "aliases"])

    def delete_model(self, model_name: str) -> None:
        self._session._execute(f"DROP MODEL {self._fq(model_name)}")
        self._drop_metrics(normalize_ident(model_name))

    def log_model(self, model: Any, **kwargs: Any) -> "ModelVersion":
        """Registers ``model`` (scikit-learn, XGBoost, LightGBM, an
        ``onnx.ModelProto``, ONNX bytes or a path to an .onnx file) as a new
        version of ``model_name``, uploading its ONNX bytes over the wire.

        Keywords: ``model_name`` (required), ``version_name`` (default: v1, v2,
        …), ``comment``, ``metrics`` (a dict), ``sample_input_data`` (a few
        rows of the training frame: types the model's inputs), and conversion
        options ``target_opset``, ``options`` (skl2onnx options; classifiers
        default to ``{"zipmap": False}``) and ``initial_types``.
        """
        opts = take_kwargs("log_model", kwargs, [
            "model_name", "version_name", "comment", "metrics", "sample_input_data",
            "target_opset", "options", "initial_types", "conda_dependencies",
            "pip_requirements", "python_version", "task", "signatures", "code_paths",
            "ext_modules", "user_files", "target_platforms",
        ])
        name = opts.get("model_name")
        if not name or not isinstance(name, str):
            raise TypeError("log_model() missing required keyword argument: 'model_name'")
        sample = opts.get("sample_input_data")
        if isinstance(sample, DataFrame):
            # a Freshet DataFrame: a few of its rows type the model's inputs
            sample = sample.limit(100).to_pandas()
        onnx_bytes = _convert.to_onnx_bytes(
            model,
            sample_input_data=sample,
            target_opset=opts.get("target_opset"),
            options=_converter_options(opts.get("options")),
            initial_types=opts.get("initial_types"),
        )
        stored = normalize_ident(name)
        existing = self._find(name)
        version = opts.get("version_name")
        if version is None:
            taken = set(json.loads(existing["versions"]) if isinstance(existing["versions"], str)
                        else existing["versions"]) if existing else set()
            n = 1
            while f"v{n}" in taken:
                n += 1
            version = f"v{n}"
        comment = opts.get("comment")
        if existing is None:
            sql = f"CREATE MODEL {self._fq(name)} WITH VERSION {quote_ident(version)} FROM %s"
            if comment is not None:
                sql += f" COMMENT = {literal(str(comment))}"
            self._session._execute(sql, [onnx_bytes])
        else:
            self._session._execute(
                f"ALTER MODEL {self._fq(name)} ADD VERSION {quote_ident(version)} FROM %s", [onnx_bytes])
            if comment is not None:
                self._session._execute(f"ALTER MODEL {self._fq(name)} SET COMMENT = {literal(str(comment))}")
        mv = ModelVersion(Model(self, stored), normalize_ident(version))
        for k, v in (opts.get("metrics") or {}).items():
            mv.set_metric(k, v)
        return mv

    # -- metrics (a table in the registry's schema) ----------------------------------

    def _metrics_table(self, create: bool) -> Optional[str]:
        fq = f"{self._prefix()}.{_METRICS_TABLE}"
        if create:
            self._session._execute(
                f"CREATE TABLE IF NOT EXISTS {fq} (model_name text, version_name text, "
                "metric_name text, value text)")
            return fq
        try:
            self._session._execute(f"SELECT 1 FROM {fq} LIMIT 0")
        except FreshetSQLException as e:
            if e.sqlstate == "42P01":
                return None
            raise
        return fq

    def _drop_metrics(self, model: str, version: Optional[str] = None) -> None:
        fq = self._metrics_table(create=False)
        if fq is None:
            return
        sql = f"DELETE FROM {fq} WHERE model_name = %s"
        params: List[Any] = [model]
        if version is not None:
            sql += " AND version_name = %s"
            params.append(version)
        self._session._execute(sql, params)


#: snowflake-ml-python's log_model(options=…) keys: they describe how
#: Snowflake packages a Python model and mean nothing for an ONNX graph.
_SNOWFLAKE_OPTIONS = {
    "embed_local_ml_library", "relax_version", "target_methods", "method_options", "enable_explainability",
    "save_location", "cuda_version", "_legacy_save", "function_type", "multiple_inputs",
}


def _converter_options(options: Optional[Dict[Any, Any]]) -> Optional[Dict[Any, Any]]:
    """``options`` without snowflake-ml-python's own keys (what is left goes
    to the converter: skl2onnx options such as ``{"zipmap": False}``)."""
    if not options:
        return options
    rest = {k: v for k, v in options.items() if not (isinstance(k, str) and k in _SNOWFLAKE_OPTIONS)}
    return rest or None


class Model:
    """A registered model and its versions."""

    def __init__(self, registry: Registry, name: str) -> None:
        self._registry = registry
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @property
    def fully_qualified_name(self) -> str:
        return f"{self._registry.location}.{self._name}"

    def _fq(self) -> str:
        return self._registry._fq(_q(self._name))

    def _info(self) -> Dict[str, Any]:
        m = self._registry._find(_q(self._name))
        if m is None:
            raise ValueError(f"model {self.fully_qualified_name} no longer exists")
        return m

    @property
    def comment(self) -> Optional[str]:
        return self._info().get("comment")

    @comment.setter
    def comment(self, value: str) -> None:
        self._registry._session._execute(f"ALTER MODEL {self._fq()} SET COMMENT = {literal(str(value))}")

    description = comment

    @property
    def default(self) -> "ModelVersion":
        """The default version (settable with a version name or a ModelVersion)."""
        return ModelVersion(self, self._info()["default_version_name"])

    @default.setter
    def default(self, version: Union[str, "ModelVersion"]) -> None:
        v = version.version_name if isinstance(version, ModelVersion) else normalize_ident(version)
        self._registry._session._execute(f"ALTER MODEL {self._fq()} SET DEFAULT_VERSION = {literal(v)}")

    def _show_versions(self) -> List[Dict[str, Any]]:
        cur = self._registry._session._execute(f"SHOW VERSIONS IN MODEL {self._fq()}")
        names = [d.name for d in cur.description or []]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def versions(self) -> List["ModelVersion"]:
        return [ModelVersion(self, v["name"]) for v in self._show_versions()]

    def show_versions(self) -> "pandas.DataFrame":
        import pandas as pd

        return pd.DataFrame(self._show_versions(),
                            columns=["created_on", "name", "aliases", "is_default_version",
                                     "functions", "metadata", "size"])

    def version(self, version_or_alias: str) -> "ModelVersion":
        stored = normalize_ident(version_or_alias)
        for v in self._show_versions():
            aliases = v.get("aliases") or []
            if isinstance(aliases, str):
                aliases = json.loads(aliases)
            if v["name"] == stored or stored in aliases:
                return ModelVersion(self, v["name"])
        raise ValueError(f"model {self.fully_qualified_name} has no version or alias {version_or_alias!r}")

    def delete_version(self, version_name: str) -> None:
        self._registry._session._execute(
            f"ALTER MODEL {self._fq()} DROP VERSION {quote_ident(version_name)}")
        self._registry._drop_metrics(self._name, normalize_ident(version_name))

    @suggest_keywords
    def run(self, X: Any, *, function_name: str = "predict", partition_column: Optional[str] = None,
            strict_input_validation: bool = False) -> Any:
        """Runs the default version (see :meth:`ModelVersion.run`)."""
        return self.default.run(X, function_name=function_name, partition_column=partition_column,
                                strict_input_validation=strict_input_validation)

    def __repr__(self) -> str:
        return f"Model({self.fully_qualified_name})"


class ModelVersion:
    """One version of a model."""

    def __init__(self, model: Model, version_name: str) -> None:
        self._model = model
        self._version = version_name

    @property
    def model_name(self) -> str:
        return self._model.name

    @property
    def version_name(self) -> str:
        return self._version

    @property
    def fully_qualified_model_name(self) -> str:
        return self._model.fully_qualified_name

    def _describe(self) -> Dict[str, Any]:
        cur = self._model._registry._session._execute(
            f"DESCRIBE MODEL {self._model._fq()} VERSION {quote_ident(_q(self._version))}")
        names = [d.name for d in cur.description or []]
        rows = cur.fetchall()
        if not rows:
            raise ValueError(f"{self!r} no longer exists")
        return dict(zip(names, rows[0]))

    def _metadata(self) -> Dict[str, Any]:
        meta = self._describe()["metadata"]
        return json.loads(meta) if isinstance(meta, str) else meta

    def show_functions(self) -> List[Dict[str, Any]]:
        fns = self._describe()["functions"]
        fns = json.loads(fns) if isinstance(fns, str) else fns
        return [{"name": f, "target_method": f} for f in fns]

    @property
    def inputs(self) -> List[Dict[str, Any]]:
        return list(self._metadata()["inputs"])

    @property
    def outputs(self) -> List[Dict[str, Any]]:
        return list(self._metadata()["outputs"])

    # -- metrics -------------------------------------------------------------------

    def set_metric(self, metric_name: str, value: Any) -> None:
        """Stores a JSON-serializable metric with this version in the registry."""
        reg = self._model._registry
        fq = reg._metrics_table(create=True)
        try:
            text = json.dumps(value)
        except TypeError as e:
            raise FreshetClientError(f"set_metric(): {metric_name!r} is not JSON-serializable: {e}") from None
        conn = reg._session.connection
        with conn.transaction():
            reg._session._execute(
                f"DELETE FROM {fq} WHERE model_name = %s AND version_name = %s AND metric_name = %s",
                [self._model.name, self._version, metric_name])
            reg._session._execute(
                f"INSERT INTO {fq} VALUES (%s, %s, %s, %s)",
                [self._model.name, self._version, metric_name, text])

    def show_metrics(self) -> Dict[str, Any]:
        reg = self._model._registry
        fq = reg._metrics_table(create=False)
        if fq is None:
            return {}
        rows = reg._session._fetch(
            f"SELECT metric_name, value FROM {fq} WHERE model_name = %s AND version_name = %s "
            "ORDER BY metric_name", [self._model.name, self._version])
        return {k: json.loads(v) for k, v in rows}

    def get_metric(self, metric_name: str) -> Any:
        metrics = self.show_metrics()
        if metric_name not in metrics:
            raise KeyError(f"{self!r} has no metric {metric_name!r}")
        return metrics[metric_name]

    def delete_metric(self, metric_name: str) -> None:
        reg = self._model._registry
        fq = reg._metrics_table(create=False)
        if fq is not None:
            reg._session._execute(
                f"DELETE FROM {fq} WHERE model_name = %s AND version_name = %s AND metric_name = %s",
                [self._model.name, self._version, metric_name])

    # -- inference -------------------------------------------------------------------

    def _call_sql(self, function_name: str, args: List[str]) -> str:
        return (f"MODEL({self._model._fq()}, {quote_ident(_q(self._version))})"
                f"!{function_name}({', '.join(args)})")

    @suggest_keywords
    def run(self, X: Any, *, function_name: str = "predict", partition_column: Optional[str] = None,
            strict_input_validation: bool = False) -> Any:
        """Scores ``X`` on the server.

        On a Freshet DataFrame: a lazy DataFrame of X's columns plus one
        column per model output (named after the ONNX outputs), built on
        ``MODEL(name, version)!predict(…)`` so a dynamic table made from it
        scores only new rows. On a pandas DataFrame: the same, as pandas.
        ``strict_input_validation`` is accepted for snowflake-ml-python's
        sake; the server always checks the input types.
        """
        if partition_column is not None:
            raise NotImplementedError("run(partition_column=…): not supported by Freshet")
        if function_name not in ("predict", "predict_proba"):
            raise FreshetClientError(
                f"run(function_name={function_name!r}): Freshet models have 'predict' and 'predict_proba'")
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover
            pd = None
        if pd is not None and isinstance(X, pd.DataFrame):
            return self._run_pandas(X, function_name)
        if not isinstance(X, DataFrame):
            raise TypeError(f"run() takes a Freshet DataFrame or a pandas DataFrame, not {type(X).__name__}")
        return self._run_df(X, function_name)

    def _arguments(self, X: DataFrame) -> List[str]:
        meta = self._metadata()
        inputs = meta["inputs"]
        cols = X.columns
        if len(inputs) == 1:
            shape = inputs[0].get("shape") or []
            width = shape[1] if len(shape) == 2 else "1"
            if str(width).isdigit() and int(width) == len(cols):
                return [quote_ident(_q(c)) for c in cols]
            if str(width).isdigit() and int(width) > 1:
                if len(cols) != int(width):
                    raise FreshetClientError(
                        f"{self!r} takes one input {inputs[0]['name']!r} of {width} features; the DataFrame "
                        f"has {len(cols)} columns ({', '.join(cols)}): select exactly its {width} feature "
                        "columns, in training order")
                return [quote_ident(_q(c)) for c in cols]
        args = []
        for inp in inputs:
            name = inp["name"]
            stored = normalize_ident(name) if re.match(r"^[A-Za-z_][A-Za-z0-9_$]*$", name) else name
            match = [c for c in cols if c == name or c == stored or c.lower() == name.lower()]
            if not match:
                raise FreshetClientError(
                    f"{self!r} needs an input column {name!r}; the DataFrame has {', '.join(cols)}")
            args.append(quote_ident(_q(match[0])))
        return args

    def _run_df(self, X: DataFrame, function_name: str) -> DataFrame:
        args = self._arguments(X)
        cols = X.columns
        keep = ", ".join(quote_ident(_q(c)) for c in cols)
        pred = "__freshet_prediction"
        call = self._call_sql(function_name, args)
        scored = X._wrapped(select=f"{keep}, {call} AS {quote_ident(_q(pred))}", columns=cols + [pred])
        outputs = [o["name"] for o in self._metadata()["outputs"]]
        if function_name == "predict":
            out_names = [o for o in outputs]
            fields = [f"{quote_ident(_q(pred))}[{literal(o)}] AS {quote_ident(_q(o))}" for o in outputs]
        else:
            prob = [o for o in outputs if "prob" in o.lower()]
            out_names = [prob[0] if prob else "predict_proba"]
            fields = [f"{quote_ident(_q(pred))} AS {quote_ident(_q(out_names[0]))}"]
        clash = set(out_names) & set(cols)
        if clash:
            raise FreshetClientError(
                f"run(): the input already has column(s) named like the model's outputs "
                f"({', '.join(sorted(clash))}); rename them first")
        return scored._wrapped(select=", ".join([keep] + fields), columns=cols + out_names)

    def _run_pandas(self, X: "pandas.DataFrame", function_name: str) -> "pandas.DataFrame":
        session = self._model._registry._session
        scratch = f"__freshet_score_{uuid.uuid4().hex[:16]}"
        order = "__freshet_row"
        frame = X.reset_index(drop=True)
        frame = frame.assign(**{order: range(len(frame))})
        session.write_pandas(frame, scratch, auto_create_table=True)
        try:
            df = session.table(scratch)
            inputs = df.drop(order)
            args = self._arguments(inputs)
            cols = inputs.columns
            keep = ", ".join(quote_ident(_q(c)) for c in cols)
            pred = "__freshet_prediction"
            call = self._call_sql(function_name, args)
            outputs = [o["name"] for o in self._metadata()["outputs"]]
            if function_name == "predict":
                fields = [f"{call}[{literal(o)}] AS {quote_ident(_q(o))}" for o in outputs]
                sql = (f"SELECT {keep}, "
                       + ", ".join(f"{quote_ident(_q(pred))}[{literal(o)}] AS {quote_ident(_q(o))}"
                                   for o in outputs)
                       + f" FROM (SELECT {keep}, {call} AS {quote_ident(_q(pred))}, {quote_ident(_q(order))}"
                       f" FROM {quote_ident(_q(scratch))}) AS s ORDER BY {quote_ident(_q(order))}")
                del fields
            else:
                prob = [o for o in outputs if "prob" in o.lower()]
                name = prob[0] if prob else "predict_proba"
                sql = (f"SELECT {keep}, {call} AS {quote_ident(_q(name))} FROM {quote_ident(_q(scratch))}"
                       f" ORDER BY {quote_ident(_q(order))}")
            out = session.sql(sql).to_pandas()
        finally:
            session._execute(f"DROP TABLE IF EXISTS {quote_ident(_q(scratch))}")
        out.index = X.index
        return out

    def __repr__(self) -> str:
        return f"ModelVersion({self._model.fully_qualified_name}, {self._version})"


_ = Column

"""Result rows."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Tuple


class Row(tuple):
    """One result row: a tuple whose fields can also be read by name
    (``row.user_id``, ``row["USER_ID"]``: unquoted names are case-insensitive)."""

    _fields: Tuple[str, ...]

    def __new__(cls, values: Iterable[Any] = (), fields: Iterable[str] = ()) -> "Row":
        row = super().__new__(cls, tuple(values))
        row._fields = tuple(fields)
        return row

    def _index(self, name: str) -> int:
        if name in self._fields:
            return self._fields.index(name)
        lowered = [f.lower() for f in self._fields]
        if name.lower() in lowered:
            return lowered.index(name.lower())
        raise KeyError(f"{name!r} is not a field of this row; fields: {', '.join(self._fields)}")

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index(key))
        return tuple.__getitem__(self, key)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return tuple.__getitem__(self, self._index(name))
        except KeyError as e:
            raise AttributeError(str(e)) from None

    def as_dict(self) -> Dict[str, Any]:
        return dict(zip(self._fields, self))

    asDict = as_dict  # noqa: N815

    def __repr__(self) -> str:
        if not self._fields:
            return "Row(" + ", ".join(repr(v) for v in self) + ")"
        return "Row(" + ", ".join(f"{k}={v!r}" for k, v in zip(self._fields, self)) + ")"

    def __reduce__(self) -> Any:
        return (Row, (tuple(self), self._fields))


def rows(values: List[tuple], fields: List[str]) -> List[Row]:
    return [Row(v, fields) for v in values]

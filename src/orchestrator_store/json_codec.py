"""JSON as the store keeps it: compact UTF-8 text that both backends read back
as the same values. One encoder for every writer of JSON (the facade, the copy
to PostgreSQL), one decoder for pages of rows."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

__all__ = ["decode_json_columns", "encode_json"]

# Built once: json.dumps with options would build an encoder per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def encode_json(value: Any) -> str | None:
    """``value`` as compact JSON text (``None`` stays ``None``, SQL NULL)."""
    if value is None:
        return None
    text = _ENCODER.encode(value)
    if "e+" in text:  # maybe a float of 1e16 or more (or just text holding "e+")
        return _encode_with_whole_floats(value)
    return text


def _encode_with_whole_floats(value: Any) -> str:
    """JSON with floats of magnitude 1e16 and above written out in full with a
    ".0" (``1e+16`` -> ``10000000000000000.0``, the float's exact value).
    PostgreSQL's JSONB prints numbers without an exponent, so ``1e+16`` came
    back as the int 10**16; the decimal point keeps it a float on both
    backends. Values are validated first, so nesting is at most MAX_JSON_DEPTH."""
    if isinstance(value, float) and abs(value) >= 1e16:
        return f"{value:.1f}"
    if isinstance(value, list):
        return "[" + ",".join(_encode_with_whole_floats(item) for item in value) + "]"
    if isinstance(value, dict):
        items = (
            f"{_ENCODER.encode(key)}:{_encode_with_whole_floats(item)}"
            for key, item in value.items()
        )
        return "{" + ",".join(items) + "}"
    return _ENCODER.encode(value)


def decode_json_columns(rows: list[dict[str, Any]], columns: Iterable[str]) -> list[dict[str, Any]]:
    """Turn the JSON text of ``columns`` into values, in place. A column's
    texts are decoded with one call: each is a whole JSON value (the schema
    checks it), so joined by commas in brackets they are an array of exactly
    those values. Decoding row by row costs several times more for a page of
    small log details. Anything unexpected falls back to one text at a time."""
    for column in columns:
        texts = [row[column] for row in rows if row[column] is not None]
        if not texts:
            continue
        values: list[Any] | None = None
        if len(texts) > 1:
            try:
                values = json.loads(f"[{','.join(texts)}]")
            except ValueError:
                values = None
        if values is None or len(values) != len(texts):
            values = [json.loads(text) for text in texts]
        decoded = iter(values)
        for row in rows:
            if row[column] is not None:
                row[column] = next(decoded)
    return rows

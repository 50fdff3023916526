"""The rules a detections value must meet, shared by its CBOR and JSON forms (and the
twin of the checks in index.ts): every column has N rows, boxes are finite, ids are
integers, masks stay under the size caps. Each failure is a KindError naming the field."""

from __future__ import annotations

from typing import Any

import numpy as np
import supervision as sv

from ..kind import KindError

MAX_MASK_SIDE = 16384
MAX_MASK_PIXELS = 2**31


def shape_text(shape: Any) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def check_boxes(xyxy: Any, path: str) -> int:
    """The number of detections N, from a valid N×4 box array."""
    if not isinstance(xyxy, np.ndarray):
        raise KindError(path, f"expected an ndarray, got {type(xyxy).__name__}")
    if xyxy.ndim != 2 or xyxy.shape[1] != 4:
        raise KindError(path, f"expected shape [N, 4], got {shape_text(xyxy.shape)}")
    if xyxy.dtype.kind not in "iuf":
        raise KindError(path, f"expected a numeric dtype, got {dtype_text(xyxy.dtype)}")
    if xyxy.dtype.kind == "f" and not np.isfinite(xyxy).all():
        raise KindError(path, "coordinates must be finite (no NaN or infinity)")
    return int(xyxy.shape[0])


def dtype_text(dtype: np.dtype) -> str:
    return "str" if dtype.kind == "U" else dtype.name


def check_column(value: Any, n: int, path: str, *, integer: bool) -> None:
    if value is None:
        return
    if not isinstance(value, np.ndarray):
        raise KindError(path, f"expected an ndarray or null, got {type(value).__name__}")
    if value.ndim != 1:
        raise KindError(path, f"expected a 1-D array, got shape {shape_text(value.shape)}")
    if value.shape[0] != n:
        raise KindError(path, f"expected {n} values, got {value.shape[0]}")
    if integer and value.dtype.kind not in "iu":
        raise KindError(path, f"expected an integer dtype, got {dtype_text(value.dtype)}")
    if not integer and value.dtype.kind not in "iuf":
        raise KindError(path, f"expected a numeric dtype, got {dtype_text(value.dtype)}")


def check_mask_shape(shape: Any, n: int, path: str) -> tuple[int, int, int]:
    if not (
        isinstance(shape, (list, tuple))
        and len(shape) == 3
        and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise KindError(path, f"expected [N, H, W] (non-negative integers), got {shape!r}")
    count, height, width = shape
    if height > MAX_MASK_SIDE or width > MAX_MASK_SIDE:
        raise KindError(
            path, f"mask of {height}×{width} pixels is over the limit of {MAX_MASK_SIDE} a side"
        )
    if count * height * width > MAX_MASK_PIXELS:
        raise KindError(path, f"more than {MAX_MASK_PIXELS} mask pixels")
    if count != n:
        raise KindError(path, f"expected {n} masks, got {count}")
    return count, height, width


def check_data_column(value: Any, n: int, path: str) -> None:
    # supervision's own rule: a list of N items, or an array whose first dimension is N
    # (a 0-d array is left alone by its indexing).
    if isinstance(value, list):
        if len(value) != n:
            raise KindError(path, f"expected {n} rows, got {len(value)}")
    elif isinstance(value, np.ndarray):
        if value.ndim > 0 and value.shape[0] != n:
            raise KindError(path, f"expected {n} rows, got {value.shape[0]}")
    else:
        raise KindError(
            path, f"a data column must be a numpy array or a list, got {type(value).__name__}"
        )


def build(
    xyxy: np.ndarray,
    mask: np.ndarray | None,
    columns: dict[str, Any],
    data: dict[str, Any],
    metadata: dict[str, Any],
    path: str,
) -> sv.Detections:
    """An ``sv.Detections`` from checked parts; anything supervision still refuses is a KindError."""
    try:
        return sv.Detections(xyxy=xyxy, mask=mask, data=data, metadata=metadata, **columns)
    except (ValueError, TypeError) as exc:
        raise KindError(path, f"not valid supervision Detections: {exc}") from None

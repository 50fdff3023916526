"""detections, JSON form: Roboflow Inference's predictions format (Python half only; the
TS side carries detections as CBOR and passes JSON bodies through to the runtime).

    {"_type": "sv_detections",
     "image": {"width": W, "height": H},
     "predictions": [{"x", "y", "width", "height",          # box centre and size
                      "confidence", "class_id", "class",     # class = data["class_name"]
                      "detection_id", "tracker_id"?,
                      "points"?: [{"x", "y"}, ...],          # the mask's outline
                      "parent_origin"?, "root_parent_origin"?: {offset_x, offset_y, width, height},
                      "keypoints"?: [{"x", "y", "confidence", "class_id", "class"}, ...],
                      <any other data key>: <that detection's value>}],
     "metadata"?: {...}}                                      # only when not empty

What it keeps, both ways: boxes (as float64), confidence, class_id, tracker_id, class
names, detection ids, masks as polygons, ``image_dimensions`` (as ``image``), Inference's
parent coordinates/dimensions (as ``parent_origin``/``root_parent_origin``) and keypoint
columns (as ``keypoints``), every other data column one value per prediction under its
own key, and ``metadata`` (a key Inference ignores).

What it loses, which is why CBOR exists:
- dtypes: boxes and confidence come back float64, ids int64; other columns are rebuilt
  from JSON values (all strings -> str array, all numbers -> int64/float64, equal-shape
  number lists -> a 2-D array, anything else -> object array);
- masks: only the largest outer contour of each mask survives (holes, extra blobs and
  exact edges are lost), and rebuilding a mask needs ``image`` width and height;
- a data column named like a prediction field (``x``, ``width``, ``class``, ...) is not
  written, since it would overwrite that field;
- nested arrays inside data values come back as plain lists;
- ``image`` is read from the last detection's ``image_dimensions`` (or the mask size):
  empty detections carry no image size.

Reading is tolerant like Inference's own deserializer: a missing ``detection_id`` gets
a fresh uuid4, ``tracker_id`` is kept only when every prediction has one, keys it does
not know become data columns (missing in some predictions -> None there, object array).
Unlike Inference, a mask whose contour is empty keeps its detection (``points: []``)
instead of dropping it, so N never changes on the way out.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np
import supervision as sv

from ..kind import Codec, KindError
from .checks import (
    MAX_MASK_PIXELS,
    MAX_MASK_SIDE,
    build,
    check_boxes,
    check_column,
    check_data_column,
)

JSON_TYPE = "sv_detections"

# prediction field -> data columns it stands for (written by to_json, read by from_json)
_PARENT_ORIGINS = {
    "parent_origin": ("parent_coordinates", "parent_dimensions"),
    "root_parent_origin": ("root_parent_coordinates", "root_parent_dimensions"),
}
_KEYPOINT_COLUMNS = (
    "keypoints_xy",
    "keypoints_confidence",
    "keypoints_class_id",
    "keypoints_class_name",
)
_BOX_FIELDS = ("x", "y", "width", "height")
_CORE_FIELDS = (
    *_BOX_FIELDS,
    "confidence",
    "class_id",
    "class",
    "detection_id",
    "tracker_id",
    "points",
    "keypoints",
    *_PARENT_ORIGINS,
)
# data columns that to_json writes under a prediction field of their own
_MAPPED_COLUMNS = {
    "class_name",
    "detection_id",
    "image_dimensions",
    *_KEYPOINT_COLUMNS,
    *(c for pair in _PARENT_ORIGINS.values() for c in pair),
}


# --- sv.Detections -> JSON ------------------------------------------------------------


def to_json(detections: sv.Detections, path: str, codec: Codec) -> dict[str, Any]:
    xyxy = np.asarray(detections.xyxy)
    n = check_boxes(xyxy, f"{path}.xyxy")
    data = detections.data
    masks = None if detections.mask is None else np.asarray(detections.mask)
    width, height = _image_size(data, masks)
    keypoints = all(key in data for key in _KEYPOINT_COLUMNS)
    predictions = []
    for i in range(n):
        x1, y1, x2, y2 = (float(v) for v in xyxy[i])
        box_width, box_height = abs(x2 - x1), abs(y2 - y1)
        prediction: dict[str, Any] = {
            "x": x1 + box_width / 2,
            "y": y1 + box_height / 2,
            "width": box_width,
            "height": box_height,
        }
        prediction["confidence"] = (
            None if detections.confidence is None else float(detections.confidence[i])
        )
        prediction["class_id"] = (
            None if detections.class_id is None else int(detections.class_id[i])
        )
        if "class_name" in data:
            prediction["class"] = str(data["class_name"][i])
        if "detection_id" in data:
            prediction["detection_id"] = str(data["detection_id"][i])
        if detections.tracker_id is not None:
            prediction["tracker_id"] = int(detections.tracker_id[i])
        if masks is not None:
            prediction["points"] = [
                {"x": float(px), "y": float(py)} for px, py in mask_to_polygon(masks[i])
            ]
        for field, (coordinates, dimensions) in _PARENT_ORIGINS.items():
            if coordinates in data and dimensions in data:
                (offset_x, offset_y), (origin_height, origin_width) = (
                    _row(data[coordinates], i),
                    _row(data[dimensions], i),
                )
                prediction[field] = {
                    "offset_x": round(offset_x),
                    "offset_y": round(offset_y),
                    "width": round(origin_width),
                    "height": round(origin_height),
                }
        if keypoints:
            prediction["keypoints"] = _keypoints_of(data, i)
        for key, column in data.items():
            if key in _MAPPED_COLUMNS or key in _CORE_FIELDS:
                continue
            value = column if isinstance(column, np.ndarray) and column.ndim == 0 else column[i]
            prediction[key] = codec.encode_value(_plain(value), f"{path}.data.{key}[{i}]")
        predictions.append(prediction)
    out: dict[str, Any] = {
        "_type": JSON_TYPE,
        "image": {"width": width, "height": height},
        "predictions": predictions,
    }
    if detections.metadata:
        out["metadata"] = codec.encode_value(dict(detections.metadata), f"{path}.metadata")
    return out


def _image_size(data: Mapping[str, Any], masks: np.ndarray | None) -> tuple[int | None, int | None]:
    dimensions = data.get("image_dimensions")
    if dimensions is not None and len(dimensions):
        height, width = _row(dimensions, -1)
        return int(width), int(height)
    if masks is not None:
        return int(masks.shape[2]), int(masks.shape[1])
    return None, None


def _row(column: Any, i: int) -> list[Any]:
    row = column[i]
    return row.tolist() if isinstance(row, np.ndarray) else list(row)


def _plain(value: Any) -> Any:
    # One detection's value as Inference writes it: rows of arrays as plain lists.
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _keypoints_of(data: Mapping[str, Any], i: int) -> list[dict[str, Any]]:
    names = [str(name) for name in data["keypoints_class_name"][i]]
    # Inference pads ragged keypoints with empty class names: those slots are not real.
    count = sum(1 for name in names if name != "")
    return [
        {
            "x": float(x),
            "y": float(y),
            "confidence": float(confidence),
            "class_id": int(class_id),
            "class": name,
        }
        for (x, y), confidence, class_id, name in zip(
            data["keypoints_xy"][i][:count],
            data["keypoints_confidence"][i][:count],
            data["keypoints_class_id"][i][:count],
            names[:count],
        )
    ]


def mask_to_polygon(mask: np.ndarray) -> np.ndarray:
    """The outline of the mask's largest blob as (x, y) points; empty when nothing is set."""
    contours, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    if not contours:
        return np.zeros((0, 2), dtype=np.int32)
    contour = max(contours, key=cv2.contourArea).reshape(-1, 2)
    if len(contour) < 3:  # a dot or a line: repeat the last point so it is still a polygon
        contour = np.concatenate([contour, np.repeat(contour[-1:], 3 - len(contour), axis=0)])
    return contour


# --- JSON -> sv.Detections ------------------------------------------------------------


def from_json(obj: dict[str, Any], path: str, codec: Codec) -> sv.Detections:
    predictions = obj.get("predictions")
    if not isinstance(predictions, list):
        raise KindError(f"{path}.predictions", "expected a list of predictions")
    for i, prediction in enumerate(predictions):
        if not isinstance(prediction, Mapping):
            raise KindError(
                f"{path}.predictions[{i}]", f"expected a map, got {type(prediction).__name__}"
            )
    width, height = _read_image(obj.get("image"), f"{path}.image")
    n = len(predictions)
    at = [f"{path}.predictions[{i}]" for i in range(n)]

    boxes = np.zeros((n, 4), dtype=np.float64)
    for i, prediction in enumerate(predictions):
        x, y, box_width, box_height = (
            _number(prediction.get(key), f"{at[i]}.{key}") for key in _BOX_FIELDS
        )
        x_min, y_min = x - box_width / 2, y - box_height / 2
        boxes[i] = (x_min, y_min, x_min + box_width, y_min + box_height)
        if not np.isfinite(boxes[i]).all():
            raise KindError(at[i], "the box must be finite (no NaN or infinity)")

    columns = {
        "confidence": _optional_column(predictions, "confidence", at, float),
        "class_id": _optional_column(predictions, "class_id", at, int),
        "tracker_id": _optional_column(predictions, "tracker_id", at, int, all_or_none=True),
    }
    data: dict[str, Any] = {}
    if n == 0 or any("class" in p for p in predictions):
        data["class_name"] = np.array(
            [_text(p.get("class", ""), f"{at[i]}.class") for i, p in enumerate(predictions)],
            dtype=str,
        )
    data["detection_id"] = np.array(
        [
            _text(p.get("detection_id") or str(uuid.uuid4()), f"{at[i]}.detection_id")
            for i, p in enumerate(predictions)
        ],
        dtype=str,
    )
    if n and width is not None and height is not None:
        data["image_dimensions"] = np.array([[height, width]] * n, dtype=np.int64)
    for field, (coordinates, dimensions) in _PARENT_ORIGINS.items():
        if n and all(p.get(field) for p in predictions):
            origins = [
                _read_origin(p[field], f"{at[i]}.{field}") for i, p in enumerate(predictions)
            ]
            data[coordinates] = np.array(
                [[o["offset_x"], o["offset_y"]] for o in origins], dtype=np.int64
            )
            data[dimensions] = np.array(
                [[o["height"], o["width"]] for o in origins], dtype=np.int64
            )
    if n and any("keypoints" in p for p in predictions):
        data.update(_read_keypoints(predictions, at))
    extra_keys = dict.fromkeys(key for p in predictions for key in p if key not in _CORE_FIELDS)
    for key in extra_keys:
        if not isinstance(key, str):
            raise KindError(f"{path}.predictions", f"keys must be strings, got {key!r}")
        values = [
            codec.decode_value(p[key], f"{at[i]}.{key}") if key in p else None
            for i, p in enumerate(predictions)
        ]
        data[key] = _column_of(values)
        check_data_column(data[key], n, f"{path}.data.{key}")
    for field, column in columns.items():
        check_column(column, n, f"{path}.{field}", integer=field != "confidence")

    mask = None
    if n and any("points" in p for p in predictions):
        mask = _read_masks(predictions, at, width, height, path)

    metadata = codec.decode_value(obj.get("metadata") or {}, f"{path}.metadata")
    if not isinstance(metadata, dict):
        raise KindError(f"{path}.metadata", f"expected a map, got {type(metadata).__name__}")
    if n == 0:  # like supervision's own empty result: float32 boxes, int64 class ids
        empty = sv.Detections.empty()
        return build(
            empty.xyxy,
            None,
            {"confidence": empty.confidence, "class_id": empty.class_id, "tracker_id": None},
            data,
            metadata,
            path,
        )
    return build(boxes, mask, columns, data, metadata, path)


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise KindError(path, f"expected a number, got {_json_type(value)}")
    return float(value)


def _integer(value: Any, path: str) -> int:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise KindError(path, f"expected an integer, got {_json_type(value)}")
    if not -(2**63) <= value < 2**63:
        raise KindError(path, "integer outside the int64 range")
    return value


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise KindError(path, f"expected a string, got {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _read_image(image: Any, path: str) -> tuple[int | None, int | None]:
    if image is None:
        return None, None
    if not isinstance(image, Mapping):
        raise KindError(path, f"expected {{width, height}}, got {_json_type(image)}")
    size = []
    for key in ("width", "height"):
        value = image.get(key)
        if value is not None:
            value = _integer(value, f"{path}.{key}")
            if value <= 0:
                raise KindError(
                    f"{path}.{key}", f"must be a positive number of pixels, got {value}"
                )
        size.append(value)
    return size[0], size[1]


def _optional_column(
    predictions: list[Mapping[str, Any]],
    key: str,
    at: list[str],
    kind: type,
    all_or_none: bool = False,
) -> np.ndarray | None:
    present = [p.get(key) is not None for p in predictions]
    if not any(present) or (all_or_none and not all(present)):
        return None  # like supervision: tracker ids on only some predictions are dropped
    if kind is int:
        if not all(present):
            missing = present.index(False)
            raise KindError(
                f"{at[missing]}.{key}", f"missing, while other predictions have a {key}"
            )
        return np.array(
            [_integer(p[key], f"{at[i]}.{key}") for i, p in enumerate(predictions)], dtype=np.int64
        )
    # a missing confidence among others is NaN, as numpy reads None in a float array
    return np.array(
        [
            _number(p[key], f"{at[i]}.{key}") if present[i] else math.nan
            for i, p in enumerate(predictions)
        ],
        dtype=np.float64,
    )


def _read_origin(origin: Any, path: str) -> dict[str, int]:
    if not isinstance(origin, Mapping):
        raise KindError(
            path, f"expected {{offset_x, offset_y, width, height}}, got {_json_type(origin)}"
        )
    return {
        key: _integer(origin.get(key), f"{path}.{key}")
        for key in ("offset_x", "offset_y", "width", "height")
    }


def _read_keypoints(predictions: list[Mapping[str, Any]], at: list[str]) -> dict[str, np.ndarray]:
    # Ragged per detection: pad to the longest with empty class names, as Inference does.
    rows = []
    for i, p in enumerate(predictions):
        keypoints = p.get("keypoints") or []
        if not isinstance(keypoints, list):
            raise KindError(f"{at[i]}.keypoints", f"expected a list, got {_json_type(keypoints)}")
        row = []
        for j, keypoint in enumerate(keypoints):
            here = f"{at[i]}.keypoints[{j}]"
            if not isinstance(keypoint, Mapping):
                raise KindError(here, f"expected a map, got {_json_type(keypoint)}")
            row.append(
                (
                    _number(keypoint.get("x"), f"{here}.x"),
                    _number(keypoint.get("y"), f"{here}.y"),
                    _number(keypoint.get("confidence"), f"{here}.confidence"),
                    _integer(keypoint.get("class_id"), f"{here}.class_id"),
                    _text(keypoint.get("class"), f"{here}.class"),
                )
            )
        rows.append(row)
    n, most = len(rows), max(len(row) for row in rows)
    xy = np.zeros((n, most, 2), dtype=np.float32)
    confidence = np.zeros((n, most), dtype=np.float32)
    class_id = np.zeros((n, most), dtype=np.int64)
    class_name = np.full((n, most), "", dtype=object)
    for i, row in enumerate(rows):
        for j, (x, y, score, kid, name) in enumerate(row):
            xy[i, j], confidence[i, j], class_id[i, j], class_name[i, j] = (x, y), score, kid, name
    return {
        "keypoints_xy": xy,
        "keypoints_confidence": confidence,
        "keypoints_class_id": class_id,
        "keypoints_class_name": class_name,
    }


def _read_masks(
    predictions: list[Mapping[str, Any]],
    at: list[str],
    width: int | None,
    height: int | None,
    path: str,
) -> np.ndarray:
    if width is None or height is None:
        raise KindError(
            f"{path}.image", "width and height are needed to turn polygon points into masks"
        )
    if width > MAX_MASK_SIDE or height > MAX_MASK_SIDE:
        raise KindError(
            f"{path}.image",
            f"mask of {height}×{width} pixels is over the limit of {MAX_MASK_SIDE} a side",
        )
    if len(predictions) * width * height > MAX_MASK_PIXELS:
        raise KindError(f"{path}.image", f"more than {MAX_MASK_PIXELS} mask pixels")
    masks = np.zeros((len(predictions), height, width), dtype=bool)
    for i, p in enumerate(predictions):
        points = p.get("points") or []
        if not isinstance(points, list):
            raise KindError(
                f"{at[i]}.points", f"expected a list of {{x, y}}, got {_json_type(points)}"
            )
        polygon = np.zeros((len(points), 2), dtype=np.float64)
        for j, point in enumerate(points):
            if not isinstance(point, Mapping):
                raise KindError(
                    f"{at[i]}.points[{j}]", f"expected {{x, y}}, got {_json_type(point)}"
                )
            polygon[j] = (
                _number(point.get("x"), f"{at[i]}.points[{j}].x"),
                _number(point.get("y"), f"{at[i]}.points[{j}].y"),
            )
        if not np.isfinite(polygon).all():
            raise KindError(f"{at[i]}.points", "coordinates must be finite")
        # Rounded, not truncated, as supervision reads Inference polygons.
        masks[i] = sv.polygon_to_mask(
            np.round(polygon).astype(np.int32), resolution_wh=(width, height)
        ).astype(bool)
    return masks


def _column_of(values: list[Any]) -> np.ndarray:
    """A data column from one JSON value per prediction: typed when the values agree."""
    if values and all(isinstance(v, str) for v in values):
        return np.array(values, dtype=str)
    if values and all(isinstance(v, bool) for v in values):
        return np.array(values, dtype=bool)
    if values and all(
        isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63 for v in values
    ):
        return np.array(values, dtype=np.int64)
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=np.float64)
    if values and all(isinstance(v, list) and v for v in values):
        try:
            array = np.array(values)
        except (ValueError, OverflowError):  # ragged, or beyond int64
            array = None
        if array is not None and array.dtype.kind in "iuf" and array.shape[0] == len(values):
            return array
    column = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        column[i] = value
    return column

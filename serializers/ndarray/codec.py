"""ndarray, Python half (twin of index.ts): RFC 8746 typed arrays <-> numpy.

CBOR: tag 40 over [dims, typed array], row-major, little endian (tags 64-87); big-endian
tags, the classic-array form and column-major tag 1040 are read too. bool travels as
tag 68 (uint8 clamped) holding 0/1. Strings (numpy 'U' arrays) use the classic form
inside tag 41 (homogeneous array), which keeps an empty string array a string array.
JSON: Roboflow's ``{"_type": "ndarray", "value": nested lists, "dtype", "shape"}``, and a
compact ``{"_type": "ndarray", "dtype", "shape", "encoding": "base64", "value": b64}``
whose bytes are the little-endian row-major elements (read always; written in the
``json-compact`` output mode).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, ClassVar

import numpy as np
from cbor2 import CBORTag

from ..kind import Codec, KindError

MULTI_DIMENSIONAL_TAG = 40
HOMOGENEOUS_TAG = 41
COLUMN_MAJOR_TAG = 1040
MAX_DIMS = 32
MAX_ELEMENTS = 2**31

# dtype name -> (little-endian tag, big-endian tag or None)
_TAGS: dict[str, tuple[int, int | None]] = {
    "uint8": (64, None),
    "bool": (68, None),
    "uint16": (69, 65),
    "uint32": (70, 66),
    "uint64": (71, 67),
    "int8": (72, None),
    "int16": (77, 73),
    "int32": (78, 74),
    "int64": (79, 75),
    "float16": (84, 80),
    "float32": (85, 81),
    "float64": (86, 82),
}
_BY_TAG: dict[int, np.dtype] = {}
for _name, (_le, _be) in _TAGS.items():
    _BY_TAG[_le] = np.dtype(_name).newbyteorder("<")
    if _be is not None:
        _BY_TAG[_be] = np.dtype(_name).newbyteorder(">")
SUPPORTED_DTYPES = tuple(_TAGS)


def _check_shape(dims: Any, path: str) -> tuple[int, ...]:
    if not isinstance(dims, (list, tuple)):
        raise KindError(path, f"dimensions must be a list, got {type(dims).__name__}")
    if len(dims) > MAX_DIMS:
        raise KindError(path, f"{len(dims)} dimensions, over the limit of {MAX_DIMS}")
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims):
        raise KindError(path, f"dimensions must be non-negative integers, got {list(dims)!r}")
    count = 1
    for d in dims:
        count *= d
    if count > MAX_ELEMENTS:
        raise KindError(path, f"more than {MAX_ELEMENTS} elements")
    return tuple(dims)


def _element_count(shape: tuple[int, ...]) -> int:
    count = 1
    for d in shape:
        count *= d
    return count


def _writable(array: np.ndarray) -> np.ndarray:
    # Blocks draw on their inputs in place (cv2.rectangle): a read-only view would break
    # them. Views over the frame's sidecar buffers are writable already; the rest copy.
    return array if array.flags.writeable else array.copy()


def _from_buffer(
    buffer: bytes | memoryview, dtype: np.dtype, shape: tuple[int, ...] | None, path: str
) -> np.ndarray:
    if len(buffer) % dtype.itemsize:
        raise KindError(path, f"{len(buffer)} bytes is not a whole number of {dtype.name} elements")
    count = len(buffer) // dtype.itemsize
    if shape is None:
        shape = (count,)
    elif _element_count(shape) != count:
        raise KindError(
            path,
            f"shape {list(shape)} of {dtype.name} needs {_element_count(shape) * dtype.itemsize} bytes, got {len(buffer)}",
        )
    array = np.frombuffer(buffer, dtype=dtype, count=count)
    if array.ctypes.data % dtype.itemsize:
        array = array.copy()  # misaligned: numpy copes, but slowly; one copy fixes it
    if dtype.byteorder == ">":
        array = array.astype(dtype.newbyteorder("<"))
    if dtype == np.bool_ and count and array.view(np.uint8).max() > 1:
        raise KindError(path, "a bool array holds a byte other than 0 or 1")
    return array.reshape(shape)


def _from_classic(
    values: list[Any] | tuple[Any, ...], shape: tuple[int, ...], path: str
) -> np.ndarray:
    if len(values) != _element_count(shape):
        raise KindError(
            path, f"shape {list(shape)} needs {_element_count(shape)} values, got {len(values)}"
        )
    if not values:  # no element to tell the type by
        return np.zeros(shape, dtype=np.float64)
    if all(isinstance(v, str) for v in values):
        dtype: Any = str
    elif all(isinstance(v, bool) for v in values):
        dtype = np.bool_
    elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        if any(not -(2**63) <= v < 2**63 for v in values):
            raise KindError(path, "integer outside the int64 range")
        dtype = np.int64
    elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        dtype = np.float64
    else:
        raise KindError(
            path, "a classic array must hold only numbers, only booleans or only strings"
        )
    return np.array(values, dtype=dtype).reshape(shape)


def _dtype_from_name(name: Any, path: str) -> np.dtype:
    if (
        name not in _TAGS
        and name != "str"
        and not (isinstance(name, str) and name.startswith("<U"))
    ):
        raise KindError(
            path, f"dtype {name!r} is not supported (supported: {', '.join(SUPPORTED_DTYPES)}, str)"
        )
    return np.dtype(str) if name == "str" else np.dtype(name)


class NDArrayKind:
    name: ClassVar[str] = "ndarray"
    tags: ClassVar[tuple[int, ...]] = (MULTI_DIMENSIONAL_TAG, COLUMN_MAJOR_TAG, *_BY_TAG)
    json_type: ClassVar[str] = "ndarray"
    python_types: ClassVar[tuple[type, ...]] = (np.ndarray,)

    def from_cbor(self, tag: int, content: Any, path: str, codec: Codec) -> np.ndarray:
        if tag in _BY_TAG:  # a bare typed array is one-dimensional
            return _writable(
                _from_buffer(codec.resolve_bytes(content, path), _BY_TAG[tag], None, path)
            )
        if not isinstance(content, (list, tuple)) or len(content) != 2:
            raise KindError(path, f"tag {tag} must hold [dimensions, elements]")
        dims, elements = content
        shape = _check_shape(dims, f"{path}.shape")
        # Column-major [d0, d1, ...] is the row-major layout of the reversed shape, transposed.
        layout = shape[::-1] if tag == COLUMN_MAJOR_TAG else shape
        if (
            isinstance(elements, CBORTag)
            and elements.tag == HOMOGENEOUS_TAG
            and isinstance(elements.value, (list, tuple))
        ):
            if not all(isinstance(v, str) for v in elements.value):
                raise KindError(path, "a tag 41 array must hold strings")
            if len(elements.value) != _element_count(layout):
                raise KindError(
                    path,
                    f"shape {list(layout)} needs {_element_count(layout)} values, got {len(elements.value)}",
                )
            array = np.array(list(elements.value), dtype=str).reshape(layout)
        elif isinstance(elements, CBORTag):
            dtype = _BY_TAG.get(elements.tag)
            if dtype is None:
                raise KindError(
                    path,
                    f"typed-array tag {elements.tag} is not supported (float128 and reserved tags are not)",
                )
            array = _from_buffer(codec.resolve_bytes(elements.value, path), dtype, layout, path)
        elif isinstance(elements, (list, tuple)):
            array = _from_classic(elements, layout, path)
        else:
            raise KindError(path, "elements must be a typed array or an array")
        if tag == COLUMN_MAJOR_TAG:
            array = np.ascontiguousarray(array.transpose())
        return _writable(array)

    def to_cbor(self, value: np.ndarray, path: str, codec: Codec) -> Any:
        array = np.asarray(value)
        shape = list(array.shape)
        if array.dtype.kind == "U":
            return [shape, CBORTag(HOMOGENEOUS_TAG, [str(s) for s in array.reshape(-1).tolist()])]
        name = array.dtype.name
        if name not in _TAGS or array.dtype.kind not in "biuf":
            raise KindError(
                path,
                f"dtype {array.dtype} is not supported (supported: {', '.join(SUPPORTED_DTYPES)}, str)",
            )
        little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        data = memoryview(little.reshape(-1).view(np.uint8))
        return [shape, CBORTag(_TAGS[name][0], codec.wrap_bytes(data))]

    def from_json(self, obj: dict[str, Any], path: str, codec: Codec) -> np.ndarray:
        shape = _check_shape(obj.get("shape"), f"{path}.shape")
        dtype = _dtype_from_name(obj.get("dtype"), f"{path}.dtype")
        value = obj.get("value")
        if obj.get("encoding") == "base64":
            if dtype.kind == "U" or not isinstance(value, str):
                raise KindError(
                    f"{path}.value", "the base64 form needs a numeric dtype and a base64 string"
                )
            try:
                raw = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise KindError(f"{path}.value", "not valid base64") from None
            return _writable(_from_buffer(raw, dtype.newbyteorder("<"), shape, path))
        try:
            array = np.array(value, dtype=dtype)
        except (TypeError, ValueError, OverflowError) as exc:
            raise KindError(f"{path}.value", f"does not fit dtype {dtype.name}: {exc}") from None
        if array.size != _element_count(shape):
            raise KindError(
                f"{path}.value",
                f"holds {array.size} values, shape {list(shape)} needs {_element_count(shape)}",
            )
        return array.reshape(shape)

    def to_json(self, value: np.ndarray, path: str, codec: Codec) -> dict[str, Any]:
        array = np.asarray(value)
        if array.dtype.kind not in "biufU":
            raise KindError(path, f"dtype {array.dtype} is not supported")
        if codec.mode == "json-compact" and array.dtype.name in _TAGS:
            little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
            return {
                "_type": "ndarray",
                "dtype": array.dtype.name,
                "shape": list(array.shape),
                "encoding": "base64",
                "value": base64.b64encode(little.tobytes()).decode("ascii"),
            }
        return {
            "_type": "ndarray",
            "value": array.tolist(),
            "dtype": str(array.dtype),
            "shape": list(array.shape),
        }


KIND = NDArrayKind()

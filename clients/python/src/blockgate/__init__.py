"""blockgate's Python client: run untrusted Custom Python Blocks with numpy arrays, images,
supervision detections and video metadata in and out, losslessly (CBOR)."""

from .client import AsyncClient, Client, RunResult
from .errors import (
    AuthError,
    BadRequest,
    BlockCompileError,
    BlockError,
    BlockgateError,
    BlockRuntimeError,
    BlockTimeout,
    Forbidden,
    NotFound,
    OutputTooLarge,
    Overloaded,
    PayloadTooLarge,
    RemoteBackendFailed,
    ServerError,
    Unauthorized,
    UnsupportedMediaType,
    WorkerCrashed,
)
from .images import image
from .serializers.batch import Batch
from .serializers.image.entity import (
    ImageParentMetadata,
    OriginCoordinatesSystem,
    WorkflowImageData,
)
from .serializers.video_metadata.entity import VideoMetadata

__version__ = "0.2.0"

__all__ = [
    "AsyncClient",
    "AuthError",
    "BadRequest",
    "Batch",
    "BlockCompileError",
    "BlockError",
    "BlockRuntimeError",
    "BlockTimeout",
    "BlockgateError",
    "Client",
    "Forbidden",
    "ImageParentMetadata",
    "NotFound",
    "OriginCoordinatesSystem",
    "OutputTooLarge",
    "Overloaded",
    "PayloadTooLarge",
    "RemoteBackendFailed",
    "RunResult",
    "ServerError",
    "Unauthorized",
    "UnsupportedMediaType",
    "VideoMetadata",
    "WorkerCrashed",
    "WorkflowImageData",
    "image",
]

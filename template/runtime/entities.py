"""Names a block sees in scope beside the standard imports: Batch, WorkflowImageData, BlockResult, debug_traces.

Batch, WorkflowImageData and its metadata classes (ImageParentMetadata,
OriginCoordinatesSystem, VideoMetadata) live with the serializers that carry them
(serializers/batch.py, serializers/image, serializers/video_metadata); they are
re-exported here.
"""

from __future__ import annotations

from typing import Any, Dict

from serializers.batch import Batch
from serializers.image.entity import ImageParentMetadata, OriginCoordinatesSystem, WorkflowImageData
from serializers.video_metadata.entity import VideoMetadata

from .traces import debug_traces

__all__ = [
    "Batch",
    "BlockResult",
    "ImageParentMetadata",
    "OriginCoordinatesSystem",
    "VideoMetadata",
    "WorkflowImageData",
    "debug_traces",
]

BlockResult = Dict[str, Any]

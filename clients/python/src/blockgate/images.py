"""Images as blocks see them: ``WorkflowImageData`` (the runtime's own class) and a shortcut."""

from __future__ import annotations

import numpy as np

from .serializers.image.entity import ImageParentMetadata, WorkflowImageData


def image(
    source: np.ndarray | bytes, parent_id: str = "image", *, reference: str | None = None
) -> WorkflowImageData:
    """A ``WorkflowImageData`` from pixels (H×W gray, H×W×3 BGR, H×W×4 BGRA, as cv2 reads
    them) or from an encoded file's bytes (JPEG, PNG, …, sent as they are, never re-encoded)."""
    parent = ImageParentMetadata(parent_id=parent_id)
    if isinstance(source, np.ndarray):
        return WorkflowImageData(
            parent_metadata=parent, numpy_image=source, image_reference=reference
        )
    return WorkflowImageData(
        parent_metadata=parent, encoded_image=bytes(source), image_reference=reference
    )

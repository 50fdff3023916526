"""Writes the code interpreter's contract from E2B's own server source (see ../README.md).

E2B publishes no spec of the code interpreter's HTTP API (port 49999); its server, a FastAPI
app in e2b-dev/code-interpreter `template/server`, defines it. Run inside that directory, in a
venv holding its requirements.txt, this writes beside itself:
  - openapi.json: the document FastAPI generates from the app (routes, request bodies, 422s);
  - execute-stream.json: a JSON Schema of one line of POST /execute's answer, generated from
    the pydantic models the server streams and narrowed to what reaches the wire.

    cd <code-interpreter>/template/server && <venv>/bin/python <this file>
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))

from api.models.error import Error  # noqa: E402
from api.models.logs import Stderr, Stdout  # noqa: E402
from api.models.output import EndOfExecution, NumberOfExecutions  # noqa: E402
from api.models.result import Result  # noqa: E402
from main import app  # noqa: E402

HERE = Path(__file__).resolve().parent


def wire_schema(model) -> dict:
    """One streamed model as it reaches the wire.

    The server sends `model.model_dump(exclude_none=True)` through FastAPI's jsonable_encoder
    (messaging.py, stream.py): `type` is always there, as its own model's value; a field that
    is None is left out rather than sent as null; nothing beyond the model's fields is sent.
    """
    schema = model.model_json_schema(mode="serialization")
    properties = {}
    for name, field in schema["properties"].items():
        if name == "type":
            properties[name] = {"const": model.model_fields["type"].default.value}
            continue
        field = {key: value for key, value in field.items() if key != "default"}
        options = [option for option in field.pop("anyOf", []) if option != {"type": "null"}]
        if len(options) == 1:
            field.update(options[0])
        elif options:
            field["anyOf"] = options
        properties[name] = field
    required = sorted({"type", *schema.get("required", [])})
    return {
        "title": schema["title"],
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


# Every model messaging.py streams to the client, in OutputType's order. An
# UnexpectedEndOfExecution is never sent: the server turns it into an Error and stops.
STREAMED = [Stdout, Stderr, Result, Error, NumberOfExecutions, EndOfExecution]

# messaging.py also yields this plain dict (no model) while a run is silent for a while, so a
# client that went away is noticed; clients skip it.
KEEPALIVE = {
    "title": "Keepalive",
    "type": "object",
    "properties": {"type": {"const": "keepalive"}},
    "required": ["type"],
    "additionalProperties": False,
}

stream = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "A line of POST /execute's answer (newline-delimited JSON)",
    "type": "object",
    # Told apart by `type`, as clients do (OpenAPI's keyword; Ajv reads it too).
    "discriminator": {"propertyName": "type"},
    "oneOf": [wire_schema(model) for model in STREAMED] + [KEEPALIVE],
}

(HERE / "openapi.json").write_text(json.dumps(app.openapi(), indent=2) + "\n")
(HERE / "execute-stream.json").write_text(json.dumps(stream, indent=2) + "\n")

"""Turn the code fields of a request into a loaded, callable block."""

from __future__ import annotations

import inspect
import linecache
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import USER_FILENAMES, BadRequest, BlockCompileError, BlockRuntimeError
from .prelude import PRELUDE_CODE

# Field name → the pseudo filename its code is compiled under (the inverse of USER_FILENAMES).
FILENAMES: dict[str, str] = {source: filename for filename, source in USER_FILENAMES.items()}

CONTEXT_KEYS = ("step_name", "step_selector", "block_type", "workflow_execution_id")


@dataclass(frozen=True)
class BlockCode:
    """The ``code`` object of a request (Roboflow's ``PythonCode`` fields)."""

    run_function_code: str
    run_function_name: str = "run"
    init_function_code: str | None = None
    init_function_name: str = "init"
    imports: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, code: Any, path: str = "code") -> BlockCode:
        """Validate a decoded ``code`` map; a bad field raises BadRequest naming its path."""
        if not isinstance(code, Mapping):
            raise BadRequest(f"{path}: must be a map, got {type(code).__name__}")

        def text(name: str, default: str | None, *, required: bool = False) -> str | None:
            value = code.get(name)
            if value is None:
                if required:
                    raise BadRequest(f"{path}.{name}: required field is missing")
                return default
            if not isinstance(value, str):
                raise BadRequest(f"{path}.{name}: must be a string, got {type(value).__name__}")
            return value

        imports = code.get("imports")
        if imports is None:
            imports = []
        if not isinstance(imports, (list, tuple)):
            raise BadRequest(
                f"{path}.imports: must be a list of strings, got {type(imports).__name__}"
            )
        for index, line in enumerate(imports):
            if not isinstance(line, str):
                raise BadRequest(
                    f"{path}.imports[{index}]: must be a string, got {type(line).__name__}"
                )

        return cls(
            run_function_code=text("run_function_code", None, required=True),  # type: ignore[arg-type]
            run_function_name=text("run_function_name", "run"),  # type: ignore[arg-type]
            init_function_code=text("init_function_code", None),
            init_function_name=text("init_function_name", "init"),  # type: ignore[arg-type]
            imports=tuple(imports),
        )

    def sources(self) -> dict[str, str]:
        """Field name → source text, for each piece that is present."""
        pieces = {"imports": "\n".join(self.imports), "run_function_code": self.run_function_code}
        if self.init_function_code is not None:
            pieces["init_function_code"] = self.init_function_code
        return pieces


class BlockSelf:
    """What a block's ``run`` receives as ``self``.

    One instance per loaded block, so attributes a block sets on ``self`` persist
    between its runs, as they do for a Roboflow block instance.
    """

    def __init__(self, init_results: Any) -> None:
        self._init_results = init_results
        self._workflow_context: dict[str, Any] = {}

    def get_workflow_context(self) -> dict[str, Any]:
        # A copy, so a block cannot alter what the next call (or the runtime) sees.
        return dict(self._workflow_context)


@dataclass
class LoadedBlock:
    code: BlockCode
    run_function: Callable[..., Any]
    instance: BlockSelf
    sources: dict[str, str] = field(default_factory=dict)
    takes_self: bool = True

    def register_sources(self) -> None:
        register_sources(self.sources)

    def run(self, inputs: Mapping[str, Any], context: Mapping[str, Any]) -> Any:
        """Call ``run(self, **inputs)``; any failure becomes a BlockRuntimeError."""
        # All blocks share the pseudo filenames, so point linecache at this block's text
        # before running: tracebacks then quote the right lines.
        self.register_sources()
        self.instance._workflow_context = {key: None for key in CONTEXT_KEYS} | dict(context)
        try:
            if self.takes_self:
                outputs = self.run_function(self.instance, **inputs)
            else:
                outputs = self.run_function(**inputs)
        except BaseException as exc:  # SystemExit and KeyboardInterrupt from a block too
            raise BlockRuntimeError.from_exception(exc, self.sources) from None
        check_outputs(outputs, self.code.run_function_name)
        return outputs


def check_outputs(outputs: Any, function: str) -> None:
    """``run`` returns a dict of outputs, or a list of them for batch-oriented blocks."""
    if isinstance(outputs, dict):
        return
    if isinstance(outputs, list):
        bad = next((item for item in outputs if not isinstance(item, dict)), None)
        if bad is None:
            return
        got = f"a list containing {type(bad).__name__}"
    else:
        got = type(outputs).__name__
    raise BlockRuntimeError(
        f"{function} must return a dict of outputs, got {got}",
        function=function,
        source="run_function_code",
    )


def register_sources(sources: Mapping[str, str]) -> None:
    for source, text in sources.items():
        lines = text.splitlines(keepends=True)
        # mtime None: linecache.checkcache never evicts an entry that has no file behind it.
        linecache.cache[FILENAMES[source]] = (len(text), None, lines, FILENAMES[source])


def load_block(code: BlockCode, module_name: str = "blockgate_block") -> LoadedBlock:
    """Build one namespace (prelude, imports, run code, init code), then run ``init`` once."""
    sources = code.sources()
    register_sources(sources)
    module = types.ModuleType(module_name)
    namespace = module.__dict__
    exec(PRELUDE_CODE, namespace)

    # Each piece compiled on its own, so line 1 of an error is line 1 of that field.
    for source in ("imports", "run_function_code", "init_function_code"):
        if source in sources:
            _exec_piece(sources[source], source, namespace, sources)

    run_function = namespace.get(code.run_function_name)
    if not callable(run_function):
        raise BlockCompileError(
            f"run_function_code defines no function named {code.run_function_name!r}",
            function=code.run_function_name,
            source="run_function_code",
        )

    init_function = namespace.get(code.init_function_name)
    if code.init_function_code is not None and not callable(init_function):
        raise BlockCompileError(
            f"init_function_code defines no function named {code.init_function_name!r}",
            function=code.init_function_name,
            source="init_function_code",
        )
    # Like Roboflow: an init found by name is called even when it came from run_function_code.
    init_results: Any = {}
    if callable(init_function):
        try:
            init_results = init_function()
        except BaseException as exc:
            raise BlockRuntimeError.from_exception(exc, sources) from None

    return LoadedBlock(
        code=code,
        run_function=run_function,
        instance=BlockSelf(init_results),
        sources=sources,
        takes_self=_takes_self(run_function),
    )


def _takes_self(function: Callable[..., Any]) -> bool:
    """Whether ``run`` gets ``self``: when its first parameter is so named, as Inference's remote
    executor decides (its code validation sends a ``validate_syntax()`` that takes none)."""
    try:
        parameters = list(inspect.signature(function).parameters)
    except (TypeError, ValueError):  # a builtin without a signature: call it as usual
        return True
    return bool(parameters) and parameters[0] == "self"


def _exec_piece(
    text: str, source: str, namespace: dict[str, Any], sources: Mapping[str, str]
) -> None:
    try:
        compiled = compile(text, FILENAMES[source], "exec", dont_inherit=True)
        exec(compiled, namespace)
    except BaseException as exc:
        error = BlockCompileError.from_exception(exc, sources)
        # Should no frame name a piece (nothing of the user's ran yet), blame the piece being run.
        if error.source is None:
            error.source = source
        raise error from None

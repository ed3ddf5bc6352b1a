"""Typed error hierarchy of vtatune.

Every error names what is wrong (a field, an instruction index) so that callers never
have to parse messages.  ``ErrorCategory`` has the values of AutoTVM's ``MeasureErrorNo``
so that records round-trip with AutoTVM logs.
"""
from __future__ import annotations

from enum import IntEnum


class ErrorCategory(IntEnum):
    NO_ERROR = 0
    INSTANTIATION_ERROR = 1
    COMPILE_HOST = 2
    COMPILE_DEVICE = 3
    RUNTIME_DEVICE = 4
    WRONG_ANSWER = 5
    BUILD_TIMEOUT = 6
    RUN_TIMEOUT = 7
    UNKNOWN_ERROR = 8


class VtatuneError(Exception):
    """Root of all vtatune errors; never raised directly."""

    def __reduce__(self):
        # Typed errors cross process boundaries (measurement and study workers).  Their
        # constructors take other arguments than ``args`` holds, so rebuild without calling
        # them: the message (``args``) and every attribute (field, category, ...) travel.
        return (_rebuild_error, (type(self), self.args, dict(self.__dict__)))


def _rebuild_error(cls, args, state):
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


class ConfigurationError(VtatuneError, ValueError):
    """A bad hardware configuration or user-supplied setting.

    ``field`` names the offending key (e.g. ``LOG_UOP_BUFF_SIZE``).
    """

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


def check_known(field: str, value, known, what: str):
    """``value`` if it is one of ``known``, else ``ConfigurationError`` naming ``field``."""
    if value not in known:
        raise ConfigurationError(field, f"unknown {what} {value!r}; known: {', '.join(known)}")
    return value


class UnsupportedError(VtatuneError):
    """A request vtatune deliberately does not support (e.g. the HW_VER 0.0.1 layout)."""


class FieldOverflowError(VtatuneError, ValueError):
    """A value does not fit the instruction or micro-op field it is encoded into."""

    def __init__(self, field: str, value: int, width: int, signed: bool = False,
                 insn_index: int | None = None):
        self.field = field
        self.value = value
        self.width = width
        self.insn_index = insn_index
        lo, hi = ((-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed
                  else (0, (1 << width) - 1))
        where = "" if insn_index is None else f" in instruction {insn_index}"
        super().__init__(
            f"field {field!r}{where}: value {value} does not fit {width} "
            f"{'signed ' if signed else ''}bits (allowed {lo}..{hi})")


class DecodeError(VtatuneError, ValueError):
    """Bytes that are not a well-formed instruction stream."""


class SimulationError(VtatuneError):
    """A program that the simulator cannot execute faithfully.

    ``insn_index`` is the position of the failing instruction in the stream (None when the
    failure is not tied to one instruction), ``field`` the instruction field at fault.
    """

    def __init__(self, message: str, insn_index: int | None = None, field: str | None = None):
        self.insn_index = insn_index
        self.field = field
        where = "" if insn_index is None else f"instruction {insn_index}"
        if field:
            where += f"{' ' if where else ''}field {field}"
        super().__init__(f"{where}: {message}" if where else message)


class TokenDeadlockError(SimulationError):
    """No module can make progress and FINISH has not executed."""


class MissingFinishError(SimulationError):
    """The instruction stream ran out without a FINISH instruction."""


class UnfinishedWorkError(SimulationError):
    """FINISH executed while other modules still had instructions queued (a racy program)."""


class SramRangeError(SimulationError):
    """An SRAM index outside the buffer (HLS would wrap silently and compute garbage)."""


class DramRangeError(SimulationError):
    """A DRAM access outside every mapped region."""


class UndefinedBehaviourError(SimulationError):
    """An instruction whose effect on the HLS hardware is undefined (e.g. ALU MUL)."""


class BundleFormatError(VtatuneError, ValueError):
    """A program bundle (.npz) that does not follow the documented format."""

    def __init__(self, path: str, field: str, message: str):
        self.path = path
        self.field = field
        super().__init__(f"{path}: {field}: {message}")


class WorkerStartError(VtatuneError):
    """A measurement worker process could not be started."""


class MissingDependencyError(VtatuneError):
    """An optional package a command needs is not installed (the message names the extra)."""


class CLIUsageError(VtatuneError):
    """Bad command-line usage (exit code 2)."""


class MeasureError(VtatuneError):
    """A per-candidate failure with an AutoTVM ``MeasureErrorNo`` category and a stable
    snake_case ``reason`` code (documented in docs/errors.md)."""

    def __init__(self, category: ErrorCategory, reason: str, message: str):
        self.category = ErrorCategory(category)
        self.reason = reason
        self.message = message
        super().__init__(f"[{self.category.name} {reason}] {message}")


class InvalidConfigError(MeasureError):
    """A configuration the original VTA stack would reject, raised at the point (and with
    the category) where the real mechanism fails: lowering (COMPILE_HOST = 2), the VTA
    runtime library's checks on the board (RUNTIME_DEVICE = 4), or silent field truncation
    that only correctness checking would catch (WRONG_ANSWER = 5)."""


class ValidityModelError(ConfigurationError):
    """A validity-classifier problem: a model file that is not one, or a model used with a
    template, hardware or feature set it was not trained for.  ``field`` names the key
    (``template``, ``hw``, ``format`` ...)."""


class IncompleteStudyError(VtatuneError):
    """A study analysed before every configuration of its space was measured (an
    interrupted exploration): ``workload`` names it, ``missing`` of ``size`` lack a record."""

    def __init__(self, workload: str, missing: int, size: int):
        self.workload, self.missing, self.size = workload, missing, size
        super().__init__(f"{workload}: {missing} of {size} configurations are not measured "
                         "yet; rerun the study to measure them")


class RecordDecodeError(VtatuneError, ValueError):
    """A tuning-log record that does not have the AutoTVM v0.2 structure."""


class StorageError(VtatuneError):
    """Any fault of the tuning-record database (driver errors are wrapped in it), or a missing
    optional dependency of it (SQLAlchemy, psycopg)."""


class SchemaVersionError(StorageError):
    """The database was written with a schema this version of vtatune does not know.

    ``found`` is the database's schema version, ``supported`` this vtatune's.
    """

    def __init__(self, found: int | str | None, supported: int, url: str = ""):
        self.found = found
        self.supported = supported
        self.url = url
        where = f"{url}: " if url else ""
        super().__init__(
            f"{where}database schema version {found} is not supported (this vtatune reads and "
            f"writes version {supported}); use a vtatune release that supports it")


class ForeignDatabaseError(SchemaVersionError):
    """A database that holds tables but no vtatune ``meta`` table: another application's.
    vtatune neither reads nor writes it (its schema is only ever created in an empty
    database).  ``tables`` names (some of) what it holds."""

    def __init__(self, url: str, tables: "list[str] | tuple[str, ...]", supported: int):
        self.found = None
        self.supported = supported
        self.url = url
        self.tables = list(tables)
        shown = ", ".join(self.tables[:5]) + (", ..." if len(self.tables) > 5 else "")
        StorageError.__init__(
            self, f"{url}: not a vtatune database (no meta table; it holds {shown}); vtatune "
                  "creates its tables only in an empty database: give it its own")


class DatabaseNotFoundError(StorageError):
    """A database opened read-only that does not exist (a missing SQLite file) or holds no
    vtatune schema yet (an empty database): read-only use never creates one.  ``url``
    names it."""

    def __init__(self, url: str, what: str):
        self.url = url
        super().__init__(f"{url}: {what}")


class LogFileError(RecordDecodeError):
    """A record file (AutoTVM log, MetaSchedule JSON database) that cannot be read as a
    whole: missing, unreadable, a device or directory, or a line longer than the limit.
    ``path`` names it, ``lineno`` the line (None when the file itself is at fault)."""

    def __init__(self, path: str, message: str, lineno: "int | None" = None):
        self.path = path
        self.lineno = lineno
        super().__init__(f"{path}:{lineno}: {message}" if lineno else f"{path}: {message}")


class InternalCompilerError(VtatuneError, ValueError):
    """The compiler asked its own runtime model for something VTA cannot express (e.g. a
    token between the load and store modules): a compiler bug, never a property of the
    configuration.  ``field`` names the argument at fault."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


class BackendUnavailableError(VtatuneError):
    """apache-tvm (or an optional frontend package, or the target's device) is missing or
    unusable (the TVM backend, ``vtatune.backends.tvm``)."""


class TuningFailedError(VtatuneError):
    """MetaSchedule stopped with an error (the first line of TVM's message is kept)."""


class ResourceLimitError(VtatuneError, ValueError):
    """An input that would make vtatune exceed one of its documented resource caps (memory
    or time): a bundle member larger than allowed, one instruction or one run costing more
    than any real program.  Raised before the memory is allocated.

    ``field`` names the quantity at fault (a bundle member, ``insn_count``,
    ``iter_out*iter_in*uops`` ...), ``value`` is what the input asks for, ``limit`` the cap,
    ``insn_index`` the instruction (None when not tied to one).
    """

    def __init__(self, field: str, value: int, limit: int, message: str,
                 insn_index: int | None = None):
        self.field = field
        self.value = value
        self.limit = limit
        self.insn_index = insn_index
        where = "" if insn_index is None else f"instruction {insn_index} "
        super().__init__(f"{where}field {field}: {message} ({value} > limit {limit})")


# ---------------------------------------------------------------------------- board (issue 13)
class BoardError(VtatuneError):
    """A failure reported by (or on the way to) a board server (``vtatune.board``).

    ``code`` is the wire error code (``hang``, ``bad_bundle``, ``dma_out_of_range``, ``auth``,
    ``too_large``, ``busy``, ``bad_request``, ``internal``, ``connection``), ``field`` the
    request or bundle field at fault, ``insn_index`` / ``region`` the instruction and DRAM
    region (relocation errors), ``server`` the ``host:port`` it came from (None if unknown).
    """

    default_code = "internal"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None,
                 insn_index: int | None = None, region: int | None = None,
                 server: str | None = None):
        self.code = code or self.default_code
        self.field = field
        self.insn_index = insn_index
        self.region = region
        self.server = server
        where = f"{server}: " if server else ""
        super().__init__(f"{where}{message}")


class BoardConnectionError(BoardError):
    """Cannot connect, disconnected mid-request, or the peer does not speak the protocol
    (a measurement may be retried on another board)."""

    default_code = "connection"


class BoardHangError(BoardError):
    """The accelerator did not signal completion within ``timeout_s``; the server recovered
    it (re-programmed the bitstream) before answering."""

    default_code = "hang"


class BoardBundleError(BoardError, ValueError):
    """A bundle (or run request) the server refuses: malformed, wrong configuration, too
    large, a region number that does not exist."""

    default_code = "bad_bundle"


class BoardDmaRangeError(BoardBundleError):
    """An instruction whose DRAM transfer would leave the region it starts in (refused before
    the accelerator starts): ``insn_index`` names it, ``region`` the region."""

    default_code = "dma_out_of_range"


class BoardAuthError(BoardError):
    """The shared-token challenge failed (wrong or missing token, or a server that cannot
    prove it knows the token)."""

    default_code = "auth"


class BoardBusyError(BoardError):
    """The server's accelerator is running another client's program."""

    default_code = "busy"

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


class ConfigurationError(VtatuneError, ValueError):
    """A bad hardware configuration or user-supplied setting.

    ``field`` names the offending key (e.g. ``LOG_UOP_BUFF_SIZE``).
    """

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


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

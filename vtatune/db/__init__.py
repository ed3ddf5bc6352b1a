"""The tuning-record database (``open_db``) and the AutoTVM v0.2 log codec.

``TuningRecord`` and the AutoTVM codec (``vtatune.db.autotvm``) need no third-party
package; the database needs SQLAlchemy >= 2 (``pip install 'vtatune[db]'``), imported only
when a database is opened.  See docs/database.md.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .records import SOURCES, TuningRecord, config_hash, workload_key

if TYPE_CHECKING:
    from .storage import Database

__all__ = ["open_db", "TuningRecord", "SOURCES", "config_hash", "workload_key",
           "read_log", "scan_log", "iter_log", "to_line", "import_log", "export_log",
           "ImportResult", "RejectedLine", "check_record", "best_config"]

_AUTOTVM = ("read_log", "scan_log", "iter_log", "to_line", "import_log", "export_log",
            "write_log", "from_line", "ImportResult", "RejectedLine", "check_record")


def open_db(url: str | None = None, *, readonly: bool = False, **kw: Any) -> "Database":
    """Open the tuning database at ``url`` (else ``$VTATUNE_DB``, else ``sqlite:///vtatune.db``).

    ``readonly=True`` for commands that only read (stats, export, best, history): nothing is
    created, converted or written, and a missing or empty database is
    ``DatabaseNotFoundError``.  See ``vtatune.db.storage.open_db``."""
    from .storage import open_db as _open_db
    return _open_db(url, readonly=readonly, **kw)


def __getattr__(name: str) -> Any:
    if name in _AUTOTVM:
        from . import autotvm
        return getattr(autotvm, name)
    if name in ("best_config", "best_record", "pick_best"):
        from . import best
        return getattr(best, name)
    if name == "Database":
        from .storage import Database
        return Database
    raise AttributeError(f"module 'vtatune.db' has no attribute {name!r}")

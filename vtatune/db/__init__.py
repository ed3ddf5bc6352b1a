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
           "read_log", "to_line", "import_log", "export_log", "best_config"]


def open_db(url: str | None = None, **kw: Any) -> "Database":
    """Open the tuning database at ``url`` (else ``$VTATUNE_DB``, else ``sqlite:///vtatune.db``);
    see ``vtatune.db.storage.open_db``."""
    from .storage import open_db as _open_db
    return _open_db(url, **kw)


def __getattr__(name: str) -> Any:
    if name in ("read_log", "to_line", "import_log", "export_log", "write_log", "from_line"):
        from . import autotvm
        return getattr(autotvm, name)
    if name in ("best_config", "best_record", "pick_best"):
        from . import best
        return getattr(best, name)
    if name == "Database":
        from .storage import Database
        return Database
    raise AttributeError(f"module 'vtatune.db' has no attribute {name!r}")

"""BTF: the type table (``BTF``), its .BTF.ext companion (``BTFExt``) and their records."""
from __future__ import annotations

from .ext import BTFExt, CoreRelo, FuncInfo, LineInfo
from .spec import BTF

__all__ = ["BTF", "BTFExt", "CoreRelo", "FuncInfo", "LineInfo"]

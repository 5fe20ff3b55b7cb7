"""Synthetic demo data: the music-label warehouse used by `audience demo`, `audience init`, tests and benches."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb

from audience.demo.warehouse import TABLES, DemoSizes, build_demo_warehouse, export_to_postgres

__all__ = ["TABLES", "DemoSizes", "build_demo_warehouse", "build_sample_warehouse", "export_to_postgres"]


def build_sample_warehouse(project_dir: Path, *, fans: int, as_of: datetime) -> dict[str, int]:
    """A fresh `warehouse.duckdb` in *project_dir* with *fans* synthetic fans (the starter's data)."""
    path = project_dir / "warehouse.duckdb"
    path.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    try:
        return build_demo_warehouse(con, sizes=DemoSizes(fans=fans), as_of=as_of)
    finally:
        con.close()

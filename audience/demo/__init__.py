"""Synthetic demo data: the music-label warehouse used by `audience demo`, tests and benches."""

from audience.demo.warehouse import TABLES, DemoSizes, build_demo_warehouse, export_to_postgres

__all__ = ["TABLES", "DemoSizes", "build_demo_warehouse", "export_to_postgres"]

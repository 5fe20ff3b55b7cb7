"""Refresh runs: state, snapshots and diffs, exporters, schedules, exactly-once resume."""

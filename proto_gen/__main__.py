"""``python -m proto_gen [--force]``: generate the protobuf/gRPC modules (see the package doc)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from proto_gen import ProtoGenError, ensure_generated, generated_root


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proto_gen", description=__doc__)
    parser.add_argument("--force", action="store_true", help="regenerate even when current")
    args = parser.parse_args(argv)
    try:
        ran = ensure_generated(force=args.force)
    except ProtoGenError as exc:
        print(f"proto_gen: {exc}", file=sys.stderr)
        return 2
    print(f"proto_gen: {'generated' if ran else 'up to date'} in {generated_root()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m proto_gen [--force]``: generate the protobuf/gRPC modules in a checkout (see the package doc)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from proto_gen import ProtoGenError, ensure_generated, generate_in_checkout, generated_root, proto_root


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proto_gen", description=__doc__)
    parser.add_argument("--force", action="store_true", help="regenerate even when current")
    args = parser.parse_args(argv)
    try:
        if proto_root() is None:  # an installed package: nothing to generate, only to check
            ensure_generated()
            print(f"proto_gen: generated when the package was built, present in {generated_root()}")
            return 0
        ran = generate_in_checkout(force=args.force)
    except ProtoGenError as exc:
        print(f"proto_gen: {exc}", file=sys.stderr)
        return 2
    print(f"proto_gen: {'generated' if ran else 'up to date'} in {generated_root()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

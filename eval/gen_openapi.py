"""Regenerate docs/openapi.json from the FastAPI app (tests/test_server.py checks it is current).

    python eval/gen_openapi.py            # writes docs/openapi.json
    python eval/gen_openapi.py --check    # exit 1 if the checked-in file is stale
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hippograph.server import openapi_json

SPEC = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="only compare; exit 1 when docs/openapi.json is stale")
    args = p.parse_args()
    text = openapi_json()
    if args.check:
        current = SPEC.read_text(encoding="utf-8") if SPEC.exists() else ""
        if current != text:
            print(f"{SPEC} is stale; run: python eval/gen_openapi.py", file=sys.stderr)
            return 1
        print(f"{SPEC} is current")
        return 0
    SPEC.write_text(text, encoding="utf-8")
    print(f"wrote {SPEC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

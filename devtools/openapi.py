"""Write the Function App's OpenAPI document: `make openapi` runs

    python -m devtools.openapi --version 3.0 > infra/openapi.json

Loading the app (function_app) fills the route table the document is built from; that
happens here, at the command line's edge, so shared.openapi never imports the app.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.openapi", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--version",
        choices=("3.0", "3.1"),
        default="3.0",
        help="3.0: the rendering API Management imports (infra/openapi.json); "
        "3.1: the document the app serves",
    )
    args = parser.parse_args(argv)
    import function_app  # noqa: F401 - registering the blueprints fills ROUTES
    from shared import openapi
    from shared.http import ROUTES

    openapi.write(ROUTES, args.version, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

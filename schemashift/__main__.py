"""`python -m schemashift`: the command line."""

from .cli import main

raise SystemExit(main())

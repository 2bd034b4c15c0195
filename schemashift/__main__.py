"""`python -m schemashift`: the command line."""

from schemashift.cli import main

raise SystemExit(main())

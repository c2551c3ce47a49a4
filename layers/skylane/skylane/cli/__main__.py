"""`python -m skylane.cli`: the same as the `skylane` command."""

from skylane.cli import main

raise SystemExit(main())

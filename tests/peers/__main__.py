"""`python -m tests.peers`: run every sink standalone (see channels.sinks.__main__)."""

from channels.sinks.__main__ import main

raise SystemExit(main())

"""`python -m tests.peers`: run every sink standalone (see ops.peers.__main__)."""

from ops.peers.__main__ import main

raise SystemExit(main())

"""The CLI must not import prometheus_client before it sets PROMETHEUS_MULTIPROC_DIR."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_cli_leaves_prometheus_client_unimported():
    """prometheus_client picks single-process or multiprocess counting when first imported;
    a channel module importing ops.metrics at import time (through channels.runtime) once
    made every worker count in memory only, and /metrics showed none of their counters."""
    code = "import sys, alerts.cli; print('prometheus_client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert out.stdout.strip() == "False"

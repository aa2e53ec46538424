"""The public page's proof-of-work script hashes exactly as the server checks (run by Node when
it is installed; the browser walk-through covers it otherwise)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from alerts.tips import pow as proof

SCRIPT = Path(proof.__file__).parent / "static" / "tips_public.js"
NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_the_script_s_sha256_and_nonce_search_match_the_server():
    issued = proof.issue("k" * 40, "3f2c6d1e-8a4b-4c1e-9a57-2b8f0c6d4e11", 10, 1000.0, 600)
    texts = ["", "abc", "x" * 55, "x" * 56, "x" * 64, "y" * 130, issued.text + ":12345"]
    program = f"""
const m = require({json.dumps(str(SCRIPT))});
const words = {json.dumps(texts)}.map(m.sha256FirstWord);
m.solve({json.dumps(issued.text)}, 10, (nonce) => console.log(JSON.stringify([words, nonce])));
"""
    out = subprocess.run([NODE, "-e", program], capture_output=True, text=True, timeout=60)
    words, nonce = json.loads(out.stdout)
    assert words == [int.from_bytes(hashlib.sha256(t.encode()).digest()[:4]) for t in texts]
    assert nonce == proof.solve(issued.text, 10)
    assert proof.verify("k" * 40, issued.text, str(nonce), issued.text.split(".")[0], 10, 1001.0)

"""The partner guide works word for word: every shell example in the README's partner section
runs, in order, against a live `reunite serve`, with only the variables the guide tells a
partner to set (REUNITE, HOOK_URL; the admin's password and TOTP code typed at the prompt).
Variables an example exports are there for the next one, as in one terminal session. An HTTP
error fails the example (curl runs with --fail-with-body); a stream example may end on its
own -m timeout. The Python examples run too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from ops.peers import webhook as webhook_sink
from tests.e2e.support import cli, login, new_submitted_case, ready, totp_now
from tests.factories import PASSWORD
from tests.workers import free_port, reunite_env, reunite_process, wait_for

pytestmark = pytest.mark.slow
README = Path(__file__).resolve().parents[2] / "README.md"
STREAM_TIMEOUT = 28  # curl's exit code when -m ends a stream it was told to stop


def partner_examples() -> list[tuple[str, str]]:
    """(language, code) of every fenced example in the partner guide, in order."""
    text = README.read_text()
    start = text.index("## Partner integration guide")
    end = text.find("\n## ", start + 10)
    section = text[start:] if end < 0 else text[start:end]
    return re.findall(r"```(sh|python)\n(.*?)```", section, re.S)


# The lines where the guide tells the reader to put their own values; the test sets those.
OWN_VALUES = re.compile(r"^export (REUNITE|HOOK_URL)=.*$", re.M)


def run_shell(code: str, env: dict[str, str], cwd: Path, stdin: str = "") -> str:
    """One example in the session's shell state; fails the test with its output."""
    code = OWN_VALUES.sub("", code)
    script = (
        "[ -f state.sh ] && . ./state.sh\n"
        "trap 'export -p > state.sh' EXIT\n"
        "set -e\n"
        'curl() { command curl --fail-with-body "$@"; }\n'
        f"{code}\n"
    )
    out = subprocess.run(
        ["bash", "-c", script],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    streaming = out.returncode == STREAM_TIMEOUT and "curl -sN" in code
    assert out.returncode == 0 or streaming, (
        f"example failed ({out.returncode}):\n{code}\n--- stdout\n{out.stdout}\n"
        f"--- stderr\n{out.stderr}"
    )
    return out.stdout


def exported(cwd: Path, name: str) -> str:
    state = (cwd / "state.sh").read_text()
    match = re.search(rf'^declare -x {name}="(.*)"$', state, re.M)
    assert match, f"{name} was not exported"
    return match.group(1)


def published(http: httpx.Client, key: str) -> bool:
    """Whether the partner's JSON feed lists an alert yet."""
    feed = http.get("/api/v1/feeds/json", headers={"Authorization": f"Bearer {key}"})
    return bool(feed.json()["items"])


def test_every_partner_guide_example_runs_against_a_live_reunite(tmp_path):
    examples = partner_examples()
    assert len(examples) >= 8, "the guide lost its examples"
    work = tmp_path / "partner"
    work.mkdir()
    receiver = webhook_sink.WebhookReceiver(secret="whsec_" + "A" * 32)
    with contextlib.ExitStack() as stack:
        hook = stack.enter_context(webhook_sink.running(receiver))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = reunite_env(
            DATABASE_URL=None,
            REDIS_URL=None,
            REUNITE_DATA_DIR=str(tmp_path / "d"),
            REUNITE_MODE="development",
            REUNITE_PUBLIC_BASE_URL=base,
            REUNITE_RELAY_INTERVAL_SECONDS="1",
            REUNITE_WAVE_TICK_SECONDS="1",
        )
        stack.enter_context(
            reunite_process(["serve", "--port", str(port)], env, tmp_path, tmp_path / "serve.log")
        )
        http = httpx.Client(base_url=base, timeout=30)
        wait_for(lambda: ready(http), timeout=90)
        for name, role, rank in [
            ("officer1", "officer", "constable"),
            ("sup1", "supervisor", "inspector"),
            ("admin1", "admin", "constable"),
        ]:
            cli(
                ["users", "create", name, "--role", role, "--rank", rank, "--agency", "GZ"]
                + ["--password-stdin"],
                env,
                tmp_path,
                stdin=PASSWORD + "\n",
            )
        login(http, "admin1", env, tmp_path)  # enrols the admin's authenticator in the console

        # What a partner's terminal has: the two variables the guide says to set.
        shell = env | {"REUNITE": base, "HOOK_URL": f"{hook.url}/hooks/maps"}
        admin = (base, "admin1")
        case_published = False
        for language, code in examples:
            if language == "python":
                namespace = {"SECRET": exported(work, "SECRET") if "SECRET" in code else None}
                namespace |= {"seen": lambda _id: False, "show_alert": lambda *_a: None}
                cwd = Path.cwd()
                os.chdir(work)
                try:
                    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
                    if "verified_alert" in namespace:
                        signed = namespace["verified_alert"]((work / "alert.xml").read_bytes())
                        assert signed.tag.endswith("alert")
                finally:
                    os.chdir(cwd)
                continue
            if "feeds/cap" in code and not case_published:
                # The feed examples read a live alert: one is approved near the partner's area.
                officer, sup = login(http, "officer1"), login(http, "sup1", env, tmp_path)
                case_id = new_submitted_case(http, officer)
                assert http.post(f"/api/v1/cases/{case_id}/approve", headers=sup).is_success
                wait_for(lambda: published(http, exported(work, "KEY")), 120)
                case_published = True
            stdin = f"{PASSWORD}\n{totp_now(admin)}\n" if "users token" in code else ""
            run_shell(code, shell, work, stdin)
            if "webhooks" in code and "rotate-secret" in code:
                receiver.secret = exported(work, "SECRET")
        assert case_published, "no example read the feeds"
        # The redelivery example reached the partner's endpoint, signed with the secret the
        # registration example exported.
        wait_for(lambda: receiver.events, 60)
        assert receiver.events[0].event["data"]["case_id"] == case_id
        assert json.loads((work / "partner.json").read_text())["partner"]["name"] == "MapsApp"

"""Every console string is in both catalogues, and no validation message stays in English.

A key used by a template (t('...'), including the dynamic t('state.' ~ ...) families) or by
console code, and every pydantic error type, must have a zh-CN and an English text; the zh-CN
text of a validation error must contain no English word.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pydantic_core.core_schema as core_schema
import pytest

from alerts.cases import history
from alerts.cases.lifecycle import CaseState
from alerts.cases.outcome import Outcome
from alerts.cases.schemas import Sex
from alerts.console import forms, i18n
from alerts.tips.triage import TipState
from alerts.users.roles import Role
from channels.messages import MessageKind
from geo.waves import service as waves

CONSOLE = Path(i18n.__file__).parent
TEMPLATES = sorted((CONSOLE / "templates").glob("*.html"))
STATIC_KEY = re.compile(r"""\bt\(\s*['"]([A-Za-z0-9_.\-]+)['"]\s*[,)]""")
DYNAMIC_KEY = re.compile(r"""\bt\(\s*['"]([A-Za-z0-9_.\-]+)['"]\s*~""")
CODE_KEY = re.compile(r"""(?:\.t|translate)\(\s*(?:[a-z_.]+,\s*)?f?["']([a-z_]+\.[a-z_.{}]+)["']""")
ERROR_KEY = re.compile(r"""\(\s*["'](v\.[a-z_]+)["']\s*,""")
ENGLISH_WORD = re.compile(r"[A-Za-z]{2,}")

# The values each dynamic key family takes.
DYNAMIC = {
    "state.": [s.value for s in CaseState],
    "dash.": ["active", "submitted", "draft"],
    "sex.": [s.value for s in Sex],
    "role.": [r.value for r in Role],
    "lang.": ["zh-CN", "en"],
    "breaker.": ["closed", "open", "half_open"],
    "case.change_": ["details", "sighting", "area"],
    "case.drill_": ["exercise", "test"],
    "list.state_": ["open", "closed"],
    "timeline.": [*history.AUDITED.values(), "wave", "wave_area", "sighting", "system"],
    "tokens.scope_": ["full", "read"],
    "tokens.state_": ["active", "expired", "revoked"],
    "tokens.via_": ["console", "password_totp"],
    "wave_status.": [*waves.PENDING, "started", "cancelled"],
    "change_state.": ["pending", "approved", "rejected"],
    "tips.state_": [s.value for s in TipState],
    "tips.mark_": ["seen", "credible"],  # the moves offered as buttons (dismiss has its own)
    "outcome.": [o.value for o in Outcome],
    "kind.": [k.value for k in MessageKind],
}


def _missing(keys: set[str]) -> dict[str, list[str]]:
    return {
        lang: sorted(k for k in keys if k not in i18n.MESSAGES[lang]) for lang in i18n.LANGUAGES
    }


def test_the_catalogues_have_the_same_keys():
    zh, en = set(i18n.MESSAGES["zh-CN"]), set(i18n.MESSAGES["en"])
    assert zh - en == set() and en - zh == set()


def test_every_template_key_is_translated_in_both_languages():
    keys: set[str] = set()
    for path in TEMPLATES:
        text = path.read_text()
        keys |= set(STATIC_KEY.findall(text))
        for prefix in DYNAMIC_KEY.findall(text):
            assert prefix in DYNAMIC, f"{path.name}: add the values of t('{prefix}' ~ ...)"
    for prefix, values in DYNAMIC.items():
        keys |= {prefix + v for v in values}
    assert len(keys) > 300
    assert _missing(keys) == {"zh-CN": [], "en": []}


def test_every_key_used_by_console_code_is_translated():
    keys: set[str] = set()
    for path in CONSOLE.rglob("*.py"):
        text = path.read_text()
        keys |= {k for k in CODE_KEY.findall(text) if "{" not in k}
        keys |= set(ERROR_KEY.findall(text))
    keys |= set(forms.TYPE_KEYS.values()) | {key for _, key in forms.MESSAGE_KEYS}
    assert {"v.required", "v.future", "err.csrf"} <= keys
    assert _missing(keys) == {"zh-CN": [], "en": []}


# Context values pydantic gives the error types that take some (numbers, as in our schemas).
CTX = {
    "max_length": 100,
    "min_length": 1,
    "ge": 0,
    "gt": 0,
    "le": 90,
    "lt": 90,
    "multiple_of": 5,
    "expected": "'a', 'b'",
    "pattern": "^x$",
    "error": "bad",
}


@pytest.mark.parametrize("kind", typing.get_args(core_schema.ErrorType))
def test_every_pydantic_error_type_reads_as_chinese(kind):
    key, values = forms.error_key(kind, "Input should be a valid number", dict(CTX))
    assert key in i18n.MESSAGES["zh-CN"] and key in i18n.MESSAGES["en"], kind
    text = i18n.translate("zh-CN", key, **values)
    assert text and "{" not in text and not ENGLISH_WORD.search(text), (kind, text)


@pytest.mark.parametrize(
    "message",
    [
        "Value error, must not be in the future",
        "Value error, is implausibly old",
        "Value error, makes the person an adult; Reunite alerts are for children",
        "Value error, give date_of_birth or age_years",
        "Value error, languages must not repeat",
        "Value error, must not contain control characters (U+0007)",
        "is more than 30 days ago; check the date",
        "Value error, something nobody has seen before",
    ],
)
def test_our_validators_messages_read_as_chinese(message):
    key, values = forms.error_key("value_error", message, {})
    text = i18n.translate("zh-CN", key, **values)
    assert not ENGLISH_WORD.search(text), (message, text)
    if "30 days" in message:
        assert "30" in text and "30" in i18n.translate("en", key, **values)


def test_every_status_has_both_languages():
    for prefix in ("state.", "wave_status.", "change_state."):
        for value in DYNAMIC[prefix]:
            zh = i18n.MESSAGES["zh-CN"][prefix + value]
            assert zh != i18n.MESSAGES["en"][prefix + value] and not ENGLISH_WORD.search(zh)

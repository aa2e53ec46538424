"""The console's message catalogue is complete: every key in both languages, and every key a
template or page names literally is in the catalogue (a missing one shows the raw key)."""

from __future__ import annotations

import re
from pathlib import Path

from alerts.console import i18n

CONSOLE = Path(i18n.__file__).parent
KEY = r"([a-z_]+\.[a-z_.0-9]*[a-z0-9])"
# t('key') and ctx.t("key"), ("key", {...}) field errors and any "v.*" validation message;
# keys built at run time (ending in "." or "_") are left out.
LITERAL = re.compile(
    rf"""\bt\(\s*['"]{KEY}['"]|\(\s*['"]{KEY}['"]\s*,\s*\{{|['"](v\.[a-z_]+)['"]"""
)


def test_both_languages_have_the_same_keys():
    zh, en = set(i18n.MESSAGES["zh-CN"]), set(i18n.MESSAGES["en"])
    assert sorted(zh - en) == [] and sorted(en - zh) == []


def test_every_key_the_console_names_is_translated():
    used: set[str] = set()
    for pattern in ("templates/*.html", "*.py", "pages/*.py"):
        for path in CONSOLE.glob(pattern):
            if path.name != "i18n.py":
                used |= {k for groups in LITERAL.findall(path.read_text()) for k in groups if k}
    assert len(used) > 100, "the pattern still finds the keys"
    for language in i18n.LANGUAGES:
        assert sorted(used - set(i18n.MESSAGES[language])) == [], language

"""Chinese text in the English messages, romanised in Hanyu Pinyin (pypinyin), tones off.

A child's name is almost always Chinese, and an English SMS that carries it raw is UCS-2: two
parts hold 134 characters, and fitting cut the name first ("MISSING CHILD ALERT: , 6-year-old
boy"). Romanised, the English texts stay GSM-7 and keep the name people will repeat.

Names are written surname first, given name as one word ("林小雨" -> "Lin Xiaoyu"), with the
compound surnames and the surnames read differently from the everyday character (单 Shan,
曾 Zeng, 解 Xie ...) looked up first: pypinyin reads characters, not names. Other text (places,
clothing) is romanised word by word as pypinyin segments it, with Chinese punctuation made
ASCII. Text without Chinese passes through unchanged.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from pypinyin import Style, lazy_pinyin
from pypinyin.seg.simpleseg import seg

HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
COMPOUND_SURNAMES = frozenset(
    "欧阳 司马 诸葛 上官 东方 皇甫 尉迟 公孙 慕容 夏侯 令狐 长孙 宇文 司徒 西门 南宫 "
    "端木 独孤 轩辕 呼延 闻人 万俟 澹台 公冶 宗政 濮阳 太叔 申屠 钟离 赫连 拓跋".split()
)
# Surnames whose reading differs from the character's commonest one.
SURNAME_READINGS = {
    "单": "shan", "曾": "zeng", "解": "xie", "仇": "qiu", "朴": "piao", "区": "ou",
    "查": "zha", "盖": "ge", "乐": "yue", "覃": "qin", "翟": "zhai", "缪": "miao",
    "繁": "po", "员": "yun", "召": "shao", "种": "chong", "秘": "bi", "冼": "xian",
    "折": "she", "谌": "chen", "尉": "yu", "长": "chang", "重": "chong", "万俟": "moqi",
    "尉迟": "yuchi", "长孙": "zhangsun",
}  # fmt: skip
PUNCTUATION = {
    "、": ", ", "。": ". ", "：": ": ", "；": "; ", "“": '"', "”": '"', "‘": "'", "’": "'",
}  # fmt: skip


def has_han(text: str) -> bool:
    """Whether the text holds Chinese characters."""
    return HAN.search(text) is not None


def _syllables(text: str) -> list[str]:
    return lazy_pinyin(text, style=Style.NORMAL, v_to_u=True, errors="ignore")


def _word(syllables: list[str]) -> str:
    """Syllables joined as one word, with an apostrophe before a/o/e (Xi'an), capitalised."""
    out = ""
    for s in syllables:
        out += ("'" if out and s[:1] in "aoe" else "") + s
    return out[:1].upper() + out[1:]


def _ascii_punctuation(text: str) -> str:
    text = "".join(PUNCTUATION.get(ch, ch) for ch in text)
    return unicodedata.normalize("NFKC", text)  # full-width ，（）！ to , ( ) !


# Generic parts of Chinese place names, written as words of their own ("Tianhe Qu").
PLACE_SUFFIXES = frozenset("省市区县镇乡村路街道巷号站桥港湾")


def _words(value: str) -> list[str]:
    """pypinyin's segments, with runs of single characters it could not segment joined into
    one word (天 河 -> Tianhe) except a place name's generic part (区 -> Qu)."""
    words: list[str] = []
    run = ""
    for piece in seg(value):
        if len(piece) == 1 and HAN.match(piece) and piece not in PLACE_SUFFIXES:
            run += piece
            continue
        if run:
            words.append(run)
            run = ""
        words.append(piece)
    if run:
        words.append(run)
    return words


@lru_cache(maxsize=4096)
def text(value: str) -> str:
    """Place names, clothing and other free text, romanised word by word."""
    if not has_han(value):
        return value
    parts: list[str] = []
    for piece in _words(value):
        if has_han(piece):
            word = _word(_syllables(piece))
            if parts and not parts[-1].endswith((" ", "(", "-", "/")):
                parts.append(" ")
            parts.append(word)
        else:
            piece = _ascii_punctuation(piece)
            if parts and piece[:1].isalnum() or piece[:1] == "(":
                if parts and not parts[-1].endswith(" "):
                    parts.append(" ")
            parts.append(piece)
    return re.sub(r"\s+", " ", "".join(parts)).strip()


@lru_cache(maxsize=4096)
def name(value: str) -> str:
    """A person's name, surname first: "林小雨" -> "Lin Xiaoyu", "欧阳娜娜" -> "Ouyang Nana"."""
    value = value.strip()
    if not has_han(value) or not HAN.fullmatch(value[:1]) or not all(HAN.match(c) for c in value):
        return text(value)  # mixed scripts ("Lin 小雨 (Amy)"): romanise the Chinese runs only
    cut = 2 if value[:2] in COMPOUND_SURNAMES and len(value) > 2 else 1
    surname, given = value[:cut], value[cut:]
    reading = SURNAME_READINGS.get(surname)
    family = _word([reading] if reading else _syllables(surname))
    return f"{family} {_word(_syllables(given))}" if given else family

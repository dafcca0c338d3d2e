"""text/ layer: fastai's text rules, both sets, as pure functions (no spaCy): fastai 2.8.12's `defaults.text_proc_rules`
on the raw string, and fastai 1.0.53's pre-rules (string) and post-rules (spaCy's tokens). fastai_tokenizer.py runs
them around spaCy's tokenizer; its docstring says how the two sets differ and how agreement with fastai is checked.
"""
from __future__ import annotations

import html
import re

from ..errors import UlmfitError

RULE_SETS = ("fastai_v2", "fastai_v1")

# ---- the rules, on the raw string (fastai.text.core, defaults.text_proc_rules) ---------------------------
# fix_html: plain substring replacements in this order, then html.unescape. The fragments lack their "&", so
# "&amp;" becomes "&&" and "&quot;" becomes "&'" (fastai's behaviour, kept on purpose).
_HTML_FIXES = (("#39;", "'"), ("amp;", "&"), ("#146;", "'"), ("nbsp;", " "), ("#36;", "$"), ("\\n", "\n"),
               ("quot;", "'"), ("<br />", "\n"), ('\\"', '"'), ("<unk>", "xxunk"), (" @.@ ", "."),
               (" @-@ ", "-"), ("...", " …"))
_CHAR_REP = re.compile(r"(\S)\1{2,}")                     # 3+ of one non-space char, digits included
_WORD_REP = re.compile(r"""(?:\s|^)(\w+)                  # a word, after whitespace (eaten: it becomes " ")
                           (?:\s+\1){2,}                  # then two or more copies of it
                           (\s|\W|$)                      # then a non-word char, which is eaten and put back
                        """, re.VERBOSE)
_SPECIAL_CHARS = re.compile(r"[/#\\]")
_SPACE_RUN = re.compile(" {2,}")                         # spaces only: tabs and newlines stay
_ALL_CAPS = re.compile(r"(?<!\S)[A-Z]+[^a-z\s]*(?=\s|$)")  # a whitespace-delimited word in ASCII capitals
_CAPITALISED = re.compile(r"(?<!\S)[A-Z][^A-Z\s]*(?=\s|$)")


def fix_html(text: str) -> str:
    """HTML breaks and entities, escaped quotes, WikiText's @.@ / @-@, "..." -> " …"."""
    for old, new in _HTML_FIXES:
        text = text.replace(old, new)
    return html.unescape(text)


def replace_rep(text: str) -> str:
    """Character runs: "!!!!" -> " xxrep 4 ! " (fastai counts any 3+ run, so "1000" -> "1 xxrep 3 0")."""
    return _CHAR_REP.sub(lambda m: f" xxrep {len(m.group(0))} {m.group(1)} ", text)


def replace_wrep(text: str) -> str:
    """Word runs: "so so so good" -> " xxwrep 3 so good"."""
    def count(m: re.Match) -> str:
        n = len(m.string[m.start():m.start(2)].split())          # the copies, without the eaten end char
        return f" xxwrep {n} {m.group(1)} {m.group(2)}"
    return _WORD_REP.sub(count, text)


def spec_add_spaces(text: str) -> str:
    """Spaces around / # and \\, so that spaCy splits them off."""
    return _SPECIAL_CHARS.sub(lambda m: f" {m.group(0)} ", text)


def rm_useless_spaces(text: str) -> str:
    """Runs of spaces -> one space."""
    return _SPACE_RUN.sub(" ", text)


def replace_all_caps(text: str) -> str:
    """ALL-CAPS words: "NASA" -> "xxup nasa"; a single capital ("I", "A") is only lower-cased."""
    return _ALL_CAPS.sub(lambda m: ("xxup " if len(m.group(0)) > 1 else "") + m.group(0).lower(), text)


def replace_maj(text: str) -> str:
    """Capitalised words: "Hello" -> "xxmaj hello"; mixed case ("McDonald") gets no marker."""
    return _CAPITALISED.sub(lambda m: ("xxmaj " if len(m.group(0)) > 1 else "") + m.group(0).lower(), text)


def lowercase(text: str) -> str:
    """Lower-case, strip, and mark the document's start with xxbos (fastai adds no xxeos)."""
    return "xxbos " + text.lower().strip()


RULES = (fix_html, replace_rep, replace_wrep, spec_add_spaces, rm_useless_spaces, replace_all_caps,
         replace_maj, lowercase)


def apply_rules(text: str) -> str:
    """fastai's default text_proc_rules, in its order, on one document."""
    for rule in RULES:
        text = rule(text)
    return text


# ---- fastai v1's rules (fastai 1.0.53, text/transform.py: defaults.text_pre_rules / text_post_rules) --------
# The same fix-ups as v2 up to " @-@ ", then " @,@ " and a backslash spaced out; no "..." rewrite. v1 also squeezes
# runs of spaces inside fix_html (after unescaping: "&nbsp;&nbsp;" -> one space).
_V1_HTML_FIXES = _HTML_FIXES[:-1] + ((" @,@ ", ","), ("\\", " \\ "))
_V1_CHAR_REP = re.compile(r"(\S)\1{3,}")                  # 4+ of one non-space char: "1999" stays a word
_V1_WORD_REP = re.compile(r"(\b\w+\W+)(\1{3,})")           # a word with the separator after it, 4+ times in all
_V1_SPECIAL_CHARS = re.compile(r"[/#\n]")


def fix_html_v1(text: str) -> str:
    """v1's fix_html: v2's list without "..." -> " …", plus " @,@ " -> "," and "\\" -> " \\ "; space runs squeezed."""
    for old, new in _V1_HTML_FIXES:
        text = text.replace(old, new)
    return rm_useless_spaces(html.unescape(text))


def replace_rep_v1(text: str) -> str:
    """Character runs of 4+: "!!!!" -> " xxrep 4 ! "; "1999", "sooo" unchanged."""
    return _V1_CHAR_REP.sub(lambda m: f" xxrep {len(m.group(0))} {m.group(1)} ", text)


def replace_wrep_v1(text: str) -> str:
    """"so so so so good" -> " xxwrep 4 so  good". The repeated unit keeps its separator ("ha! "), and the count
    is v1's: the whitespace-split pieces of the copies + 1 (so "a-a-a-a-" counts 2, as fastai 1.0.53 does)."""
    return _V1_WORD_REP.sub(lambda m: f" xxwrep {len(m.group(2).split()) + 1} {m.group(1)} ", text)


def spec_add_spaces_v1(text: str) -> str:
    """Spaces around / # and newline (v1 spaces out \\n; its backslash is handled in fix_html)."""
    return _V1_SPECIAL_CHARS.sub(lambda m: f" {m.group(0)} ", text)


def replace_all_caps_v1(tokens: list[str]) -> list[str]:
    """Per spaCy token: an upper-case token of 2+ chars (str.isupper: "U.S.", "NASA") -> xxup + lower."""
    out = []
    for t in tokens:
        if t.isupper() and len(t) > 1:
            out += ["xxup", t.lower()]
        else:
            out.append(t)
    return out


def deal_caps_v1(tokens: list[str]) -> list[str]:
    """Per token: "Hello" (capital, then lower only) -> xxmaj hello; every token lower-cased; empty ones dropped."""
    out = []
    for t in tokens:
        if not t:
            continue
        if len(t) > 1 and t[0].isupper() and t[1:].islower():
            out.append("xxmaj")
        out.append(t.lower())
    return out


V1_PRE_RULES = (fix_html_v1, replace_rep_v1, replace_wrep_v1, spec_add_spaces_v1, rm_useless_spaces)
V1_POST_RULES = (replace_all_caps_v1, deal_caps_v1)


def describe_rules(rules: str) -> str:
    """One line naming the rules that run, in order (what `ulmfit tokenizer encode` shows)."""
    if rules == "fastai_v1":
        return ("fastai_v1 (fastai 1.0.53): xxbos + " + ", ".join(r.__name__.removesuffix("_v1") for r in V1_PRE_RULES)
                + " | spaCy | " + ", ".join(r.__name__.removesuffix("_v1") for r in V1_POST_RULES))
    return "fastai_v2 (fastai 2.8.12): " + ", ".join(r.__name__ for r in RULES) + " | spaCy | replace_space"


def check_rules(rules: str) -> str:
    if rules not in RULE_SETS:
        raise UlmfitError(f"unknown fastai rule set {rules!r}; choose one of {', '.join(RULE_SETS)}")
    return rules


def apply_rules_v1(text: str) -> str:
    """fastai 1.0.53's pre-rules on one document, "xxbos " in front first (its _join_texts does that)."""
    text = "xxbos " + text
    for rule in V1_PRE_RULES:
        text = rule(text)
    return text

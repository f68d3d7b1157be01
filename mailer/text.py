"""Outside text made harmless to store and to print on a terminal.

Partner feeds, HTTP reason phrases and typed text can carry terminal escape sequences
(ESC [ 2 J clears the screen, ESC ] 0 ; ... BEL retitles the window, ESC ] 8 hides a link
behind other text). :func:`strip_controls` is the one function that removes them: intake
calls it before anything is stored, and the CLI calls it on every line it prints that holds
stored text, so rows stored before intake cleaned them cannot reach the operator's terminal
either.
"""

from __future__ import annotations

import re
import unicodedata

# Whole escape sequences, so no "[2J" residue is left once the ESC is gone: CSI (7-bit and
# 8-bit), the string commands OSC/DCS/SOS/PM/APC up to their terminator, and two-character
# escapes. An unterminated string command loses only its introducer (the rest is plain text).
_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"
    r"|\x1b[ -/]*[0-~]"
)


_SPACING = "\t\n\v\f"


def strip_controls(text: str | None, keep: str = "\n\t") -> str:
    """``text`` without escape sequences and without control characters (C0, DEL, C1)
    other than those in ``keep`` (newline and tab by default; ``keep=""`` for one line).

    CR LF and a lone CR become a newline first (a lone CR would let text overprint the line
    before it); line breaks and tabs not kept become spaces. Printable text, accents, emoji
    and right-to-left scripts pass through unchanged.
    """
    if not text:
        return ""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.isprintable():  # the common case: no control character at all
        return text
    out = []
    for ch in _SEQUENCE.sub("", text):
        if ch in keep or unicodedata.category(ch) != "Cc":
            out.append(ch)
        elif ch in _SPACING:
            out.append(" ")
    return "".join(out)

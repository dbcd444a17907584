"""Builds a known-item retrieval set from the Linux man-pages project's manual pages (Debian's manpages-dev:
section 2, system calls; section 3, library functions).

Each document is one page's text after its NAME section, with the roff markup taken out; its query is the NAME
line's description ("open and possibly create a file"), which is therefore not in the indexed text, nor are the
names it describes. The relevant document for a query is exactly its page. Pages that only point at another page,
or whose description is too short to be a question, are skipped.
Usage: manpages_corpus.py SECTION COUNT, SECTION 2 or 3. Prints JSON: [{"title", "query", "text"}].
"""

import gzip
import json
import pathlib
import re
import sys

SECTION = sys.argv[1]
MAX_DOCS = int(sys.argv[2])
MAX_CHARS = 3000
MAN = pathlib.Path("/usr/share/man") / f"man{SECTION}"

# Font changes, named characters and strings, and the rest of roff's inline escapes.
ESCAPES = [
    (re.compile(r"\\f(\[[^\]]*\]|\(..|.)"), ""),
    (re.compile(r"\\\*(\[[^\]]*\]|\(..|.)"), ""),
    (re.compile(r"\\\(em|\\\[em\]"), " - "),
    (re.compile(r"\\\(aq|\\\[aq\]"), "'"),
    (re.compile(r"\\\((lq|rq|dq)|\\\[(lq|rq|dq)\]"), '"'),
    (re.compile(r"\\(\(..|\[[^\]]*\])"), ""),
    (re.compile(r"\\[-]"), "-"),
    (re.compile(r"\\e"), "\\\\"),
    (re.compile(r"\\[&|^%:]"), ""),
    (re.compile(r"\\ "), " "),
    (re.compile(r"\\s[-+]?\d"), ""),
]
# Macros whose arguments are text, in alternating fonts (joined without spaces) or one font.
ALTERNATING = {"BR", "RB", "IR", "RI", "BI", "IB"}
TEXT = {"B", "I", "SM", "SB", "SH", "SS", "IP", "TP", "Nm", "Nd"}


def unescape(text):
    for pattern, replacement in ESCAPES:
        text = pattern.sub(replacement, text)
    return text.replace("\\", "")


def macro_text(line):
    name, _, rest = line[1:].strip().partition(" ")
    args = [a.strip('"') for a in re.findall(r'"[^"]*"|\S+', rest)]
    if name in ALTERNATING:
        return "".join(args)
    if name in TEXT:
        return " ".join(args)
    return None


def page_text(path):
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    if any(line.startswith(".so ") for line in lines[:5]):
        return None
    # Only the Linux man-pages project's pages: other packages' pages in the same section vary by machine.
    if not any(line.startswith(".TH") and "Linux man-pages" in line for line in lines):
        return None
    sections, current = [], None
    for line in lines:
        if line.startswith(('.\\"', "'\\\"", '.\\\\"')):
            continue
        if line.startswith(".SH"):
            current = [unescape(macro_text(line) or "").strip().upper(), []]
            sections.append(current)
            continue
        if current is None:
            continue
        text = macro_text(line) if line.startswith((".", "'")) else line
        if text:
            current[1].append(unescape(text))
    return [(name, " ".join(body).split()) for name, body in sections]


def documents():
    for path in sorted(MAN.glob(f"*.{SECTION}.gz")):
        if path.is_symlink():
            continue
        sections = page_text(path)
        if not sections or sections[0][0] != "NAME":
            continue
        name_line = " ".join(sections[0][1])
        names, dash, summary = name_line.partition(" - ")
        summary = summary.strip().rstrip(".")
        if not dash or not (20 <= len(summary) <= 120):
            continue
        text = "\n\n".join(f"{name}\n{' '.join(words)}" for name, words in sections[1:] if words)[:MAX_CHARS]
        if len(text) < 300:
            continue
        title = path.name[: -len(".gz")]
        yield {"title": title, "query": summary, "text": text}


print(json.dumps(list(documents())[:MAX_DOCS]))

"""Reads jconv's docstring conventions for Sphinx, before napoleon does.

jconv's docstrings are Google style, read by people in the source and by
`help()`, with three conventions of their own that napoleon (and reST) would
misread; this rewrites them in the docstring text autodoc renders, leaving the
source as it is:

- A `Shapes (...):` paragraph followed by an indented `name: shape` block
  (napoleon knows no section with words after its name): it becomes the
  paragraph and a bullet list.
- In `Args:`/`Attributes:` sections, a list of names that wraps onto the next
  line (`x, kernel, bias, strides,` / `padding: as for conv2d`), and a
  description continued at the names' indent: the names are joined onto one
  line and the description indented under them. A section that is one
  sentence rather than entries (`as for Conv2D, each per-axis argument an
  int`) becomes a field with that sentence.
- Any other top-level line ending with `:` followed by an indented block
  without a blank line between (`Example (the document's worked example):` and its
  doctest) gets the blank line reST needs.

Also, inline code followed by a letter (`` `PartitionSpec`s ``) gets the
escaped space reST needs to end it, and a constant without a `#:` comment
is shown with its value alone, not its type's docstring.
"""

from __future__ import annotations

import inspect
import re

# Napoleon's section headers that take `name: description` entries.
_ENTRY_SECTIONS = {
    "args": "Parameters",
    "arguments": "Parameters",
    "parameters": "Parameters",
    "params": "Parameters",
    "attributes": "Attributes",
    "keyword args": "Keyword Arguments",
    "keyword arguments": "Keyword Arguments",
    "other parameters": "Other Parameters",
}
# Every header napoleon reads as a section: left to it.
_SECTIONS = {
    *_ENTRY_SECTIONS,
    "example",
    "examples",
    "note",
    "notes",
    "raises",
    "returns",
    "return",
    "yields",
    "yield",
    "see also",
    "references",
    "warning",
    "warnings",
    "todo",
    "methods",
    "warns",
}
_HEADER = re.compile(r"^(\w[\w ]*):\s*$")
# `name: ...`, `a, b, *args: ...`, `name (type): ...`.
_NAMES = r"\**[A-Za-z_][\w.]*(?:,\s*\**[A-Za-z_][\w.]*)*"
_ENTRY = re.compile(rf"^{_NAMES}\s*(?:\([^)]*\))?\s*:(?:\s|$)")
_NAME_LIST = re.compile(rf"^{_NAMES},$")
# Inline code ended by a letter or digit: reST needs `\ ` between.
_CODE_THEN_WORD = re.compile(r"(?<![`\w\\])(`[^`\s](?:[^`]*[^`\s])?`)(?=[A-Za-z0-9])")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _block(lines: list[str], start: int, base: int) -> int:
    """The end of the indented block starting at `start`: the first non-blank
    line at `base` indent or less (blank lines inside the block stay)."""
    end = start
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > base):
        end += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return end


def _entries(body: list[str]) -> list[list[str]] | None:
    """`name: description` entries of a section body: each its first line
    (names joined) and its continuation lines, dedented; None when the body
    is a sentence, not entries."""
    if not body:
        return []
    margin = _indent(body[0])
    entries: list[list[str]] = []
    names = ""
    for line in body:
        text = line.strip()
        if not text:
            if entries:
                entries[-1].append("")
            continue
        deeper = _indent(line) > margin
        if names:  # a name list wrapped onto this line
            names = f"{names} {text}"
            if not _NAME_LIST.match(names):
                entries.append([names])
                names = ""
        elif not deeper and _NAME_LIST.match(text):
            names = text
        elif not deeper and _ENTRY.match(text):
            entries.append([text])
        elif entries:  # the description continued
            entries[-1].append(text)
        else:
            return None
    if names or not all(_ENTRY.match(e[0]) for e in entries):
        return None
    return entries


def _rewrite(lines: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    doctest = False
    while i < len(lines):
        line = lines[i]
        text = line.strip()
        if text.startswith(">>>"):
            doctest = True
        elif not text:
            doctest = False
        if doctest:
            out.append(line)
            i += 1
            continue
        base = _indent(line)
        following = lines[i + 1] if i + 1 < len(lines) else ""
        # A top-level paragraph's `...:` line right above an indented block.
        opens_block = (
            base == 0
            and text.endswith(":")
            and following.strip()
            and _indent(following) > base
        )
        header = _HEADER.match(text)
        if header and header.group(1).lower() in _ENTRY_SECTIONS:
            end = _block(lines, i + 1, base)
            entries = _entries(lines[i + 1 : end])
            pad = " " * base
            if entries is None:  # one sentence for the whole section
                label = _ENTRY_SECTIONS[header.group(1).lower()]
                sentence = " ".join(s.strip() for s in lines[i + 1 : end] if s.strip())
                out += [f"{pad}:{label}: {sentence}", ""]
            else:
                out.append(line)
                for first, *rest in entries:
                    out.append(f"{pad}    {first}")
                    out += [f"{pad}        {r}" if r else "" for r in rest]
            i = end
            continue
        if header and header.group(1).lower() in _SECTIONS:
            out.append(line)
            i += 1
            continue
        if text.startswith("Shapes"):
            # The paragraph `Shapes ...:`, then its `name: shape` block.
            j = i
            while j < len(lines) and lines[j].strip() and _indent(lines[j]) == base:
                nxt = lines[j + 1] if j + 1 < len(lines) else ""
                if (
                    lines[j].rstrip().endswith(":")
                    and nxt.strip()
                    and _indent(nxt) > base
                ):
                    break
                j += 1
            else:
                j = None
            end = _block(lines, j + 1, base) if j is not None else None
            entries = _entries(lines[j + 1 : end]) if j is not None else None
            if entries:
                pad = " " * base
                paragraph = [s.strip() for s in lines[i : j + 1]]
                paragraph[0] = "**Shapes**" + paragraph[0][len("Shapes") :]
                out += [pad + s for s in paragraph] + [""]
                for first, *rest in entries:
                    name, description = first.split(":", 1)
                    out.append(f"{pad}- `{name.strip()}`:{description}")
                    out += [f"{pad}  {r}" if r else "" for r in rest]
                out.append("")
                i = end
                continue
        out.append(line)
        if opens_block:
            out.append("")
        i += 1
    return _end_inline_code(out)


def _end_inline_code(lines: list[str]) -> list[str]:
    """`\\ ` after inline code a letter follows, outside doctests."""
    out = []
    doctest = False
    for line in lines:
        text = line.strip()
        doctest = text.startswith(">>>") or (doctest and bool(text))
        out.append(line if doctest else _CODE_THEN_WORD.sub(r"\1\\ ", line))
    return out


def process_docstring(app, what, name, obj, options, lines):
    if not name.startswith("jconv"):
        return
    if (
        what == "data"
        and lines
        and type(obj).__doc__
        and ("\n".join(lines).strip() == inspect.cleandoc(type(obj).__doc__))
    ):
        # A constant without a `#:` comment: autodoc falls back on its
        # type's docstring (`tuple`'s, `str`'s); its value says what it is.
        lines[:] = []
        return
    lines[:] = _rewrite(lines)


def setup(app):
    # Before napoleon's handler (priority 500), which reads the result.
    app.connect("autodoc-process-docstring", process_docstring, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

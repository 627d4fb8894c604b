"""Thread text made inert for where it is shown: terminals, spreadsheets, Markdown and chart labels.

Titles, categories and bodies come from strangers. Each place that shows them reads some text as
commands: a terminal runs escape sequences (retitle the window, clear the screen, live OSC-8 links),
a spreadsheet runs cells that start with ``=``, ``+``, ``-`` or ``@`` as formulas, Markdown turns
``|`` into a new column and passes HTML through, and plotly renders a subset of HTML in labels.
"""

from __future__ import annotations

import re

# A whole escape sequence goes, not just its ESC: "ESC]0;title BEL" would otherwise leave "]0;title".
_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, clearing the screen
    r"|(?:\x1b[]PX^_]|[\x90\x98\x9d-\x9f])[^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"  # OSC (titles, links), DCS, PM, APC
    r"|\x1b[ -/]*[0-~]?"  # any other escape
)
# C0 but tab and newline, DEL, C1, and the bidirectional overrides and isolates that make a
# terminal show text in another order than it is (Trojan Source, CVE-2021-42574).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# The same, keeping carriage returns: a sheet cell may hold a CRLF line break.
_SHEET_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_CR = re.compile(r"\r\n?")
# OWASP's CSV-injection rule: a cell starting so is read as a formula (tab and CR by some importers).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def terminal_text(value) -> str:
    """Text safe to print on a terminal: escape sequences and control characters removed (tab and
    newline kept). Print it with Rich's ``Text`` or ``markup=False`` as well: ``[/x]`` is markup."""
    return _CONTROL.sub("", _SEQUENCE.sub("", str(value)))


def sheet_cell(value):
    """A spreadsheet cell that is never a formula: text starting with a formula character gets a
    leading ``'``; escape sequences and the control characters XML cannot hold are removed.
    Anything but text (numbers that are data, negative ones too) is returned as it is."""
    if not isinstance(value, str):
        return value
    text = _SHEET_CONTROL.sub("", _SEQUENCE.sub("", value))
    if text.startswith(FORMULA_START):
        text = "'" + text
    # A bare CR is a row break to spreadsheets, yet pandas does not quote it: a new row could start
    # with a formula of the attacker's. As LF it is quoted and stays inside its cell.
    return _CR.sub("\n", text)


def sheet_frame(df):
    """``df`` with every text cell through ``sheet_cell``; numeric and boolean columns untouched."""
    import pandas as pd

    df = df.copy()
    for col in df.columns:
        if not (pd.api.types.is_numeric_dtype(df[col]) or pd.api.types.is_bool_dtype(df[col])):
            df[col] = df[col].map(sheet_cell)
    df.columns = [sheet_cell(str(c)) for c in df.columns]
    return df


def unescape_cell(value):
    """The text a ``sheet_cell`` was made from (for keys read back from a sheet: ids, sources)."""
    if isinstance(value, str) and value.startswith("'") and value[1:].startswith(FORMULA_START):
        return value[1:]
    return value


def markdown_cell(value) -> str:
    """Text for a Markdown table cell: ``|`` cannot add a column, HTML is shown as text, ``[...]``
    cannot make a link, and a line break cannot end the row."""
    import html

    text = terminal_text(value).replace("\\", "\\\\")
    text = html.escape(text, quote=False)
    text = text.replace("|", "\\|").replace("[", "\\[").replace("]", "\\]")
    return re.sub(r"\s*[\r\n]+\s*", " ", text)


def html_label(value) -> str:
    """A chart label (plotly renders ``<a href>``, ``<b>`` and the like in them) shown as text."""
    import html

    return html.escape(terminal_text(value), quote=False)

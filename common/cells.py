"""Cells of CSV files that people open in spreadsheets: text stays text (no formula injection).

One helper for every download (reports, the knowledge base, the audit log) and its inverse for the
files that come back (the knowledge-base import).
"""

from __future__ import annotations

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(text: str) -> str:
    """Text a spreadsheet shows as text: a leading formula character gets an apostrophe before it."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def cell_text(cell: str) -> str:
    """A cell read back from a file :func:`safe_cell` wrote: the text without the apostrophe."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_STARTS) else cell

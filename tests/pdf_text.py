"""Reading a PDF back in tests: its text as PDFium (Chrome's engine) extracts it."""

from __future__ import annotations

import pypdfium2 as pdfium

WORD_JOINER = "\u2060"


def pdf_text(content: bytes) -> str:
    """The text of every page of the PDF ``content``, in page order, without word joiners: the resume maps
    the glyphs a shaped cluster adds (a split vowel sign, a conjunct's half form) to one, and search and copy
    ignore it."""
    doc = pdfium.PdfDocument(content)
    try:
        texts: list[str] = []
        for i in range(len(doc)):
            page = doc[i]
            textpage = page.get_textpage()
            try:
                texts.append(textpage.get_text_range())
            finally:
                textpage.close()
                page.close()
        return "\n".join(texts).replace(WORD_JOINER, "")
    finally:
        doc.close()


def squeezed(text: str) -> str:
    """``text`` without any whitespace: PDFium breaks CJK and right-to-left runs into lines of their own."""
    return "".join(text.split())

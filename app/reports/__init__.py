"""Report numbering and PDF rendering (WeasyPrint), run in RQ jobs."""

"""`unmix report`: result records -> paper-style tables and plots.

`tables` decides every number, difference, bold mark and footnote (a pandas model of the
records); `render` formats it as Markdown, LaTeX, CSV and HTML; `plots` draws the figures;
`cli` is the command. Reads only result records (`unmix.core.records`).

May import: `unmix.core`, pandas, matplotlib. Imported by the `unmix` app.
"""

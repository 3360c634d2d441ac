"""Every format a report is written in escapes what it did not write itself from here. Names, labels, paths and
commands are data: in Markdown (index.md, a study's report.md and table.md), HTML (index.html) and LaTeX (the .tex
tables) none of them may become markup: no `<script>`, no `<img onerror>`, no link, no extra table cell.

Markdown keeps the text's own code spans and bullets: `md` entity-escapes what makes raw HTML (`<`, `>`) and breaks
what makes a link (`](`), which is markup inside a code span as much as outside it; a table cell also escapes `|`.
"""
import html


def md(text):
    """Text (a sentence, a source line, a name) safe in a Markdown document: no raw HTML, no link, one line."""
    text = " ".join(str(text).splitlines())
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("](", "]\\(")


def md_lines(lines):
    """Sentences (`- ...` bullets) safe in a Markdown document."""
    return [md(line) for line in lines]


def md_cell(value):
    return md(value).replace("|", "\\|") if isinstance(value, str) else value


def md_table(frame, **options):
    """`frame` as a Markdown table (pandas' to_markdown with `options`), every text cell and header escaped."""
    frame = frame.rename(columns=md_cell).map(md_cell)
    frame = frame.astype(object).where(frame.notna(), None)  # map() infers dtypes again: None would turn back to NaN
    return frame.to_markdown(index=False, **options)


def html_text(text):
    """Text safe in HTML, attributes included."""
    return html.escape(str(text))


def latex_table(frame):
    """A booktabs table that compiles: names, headers and cells escaped for LaTeX (model names hold "_"),
    numbers to 4 significant digits, "--" (an en dash) for a missing cell."""
    styler = frame.style.hide(axis="index").format(
        lambda value: f"{value:.4g}" if isinstance(value, float) else value, na_rep="--", escape="latex"
    ).format_index(escape="latex", axis=1)
    return styler.to_latex(hrules=True)


def frame_html(frame):
    """A sortable HTML table, every cell and header escaped."""
    return frame.to_html(index=False, na_rep="–", classes="sortable", border=0, escape=True)


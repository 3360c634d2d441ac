"""The report as one page to open: index.html beside index.md, self-contained (figures embedded as PNG
data, no script or style fetched from anywhere), readable offline. Tables sort by any column on a click;
each section says where its numbers come from. The page checks itself when it loads: every figure
decoded, no script error (`data-images-ok`, `data-script-errors` on <body>, read by the browser test).
"""
import base64
from pathlib import Path

from bench.report.markup import frame_html, html_text

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
.source { color: #666; font-size: 0.85em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; display: block; overflow-x: auto; }
th, td { padding: 0.25em 0.6em; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }
th { cursor: pointer; background: #f6f6f6; position: sticky; top: 0; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; }
"""
SCRIPT = """
window.addEventListener('error', () => {
  document.body.dataset.scriptErrors = String(Number(document.body.dataset.scriptErrors || 0) + 1);
});
function sortTable(th) {
  const table = th.closest('table'), body = table.tBodies[0], column = th.cellIndex;
  const ascending = th.dataset.order !== 'ascending';
  const value = row => row.cells[column].textContent.trim();
  const rows = Array.from(body.rows).sort((a, b) => {
    const x = value(a), y = value(b), nx = parseFloat(x.replace(/,/g, '')), ny = parseFloat(y.replace(/,/g, ''));
    const order = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
    return ascending ? order : -order;
  });
  rows.forEach(row => body.appendChild(row));
  table.querySelectorAll('th').forEach(other => delete other.dataset.order);
  th.dataset.order = ascending ? 'ascending' : 'descending';
}
window.addEventListener('load', () => {
  document.querySelectorAll('table.sortable th').forEach(th => th.addEventListener('click', () => sortTable(th)));
  const images = Array.from(document.images);
  document.body.dataset.imagesOk = String(images.filter(img => img.complete && img.naturalWidth > 0).length);
  document.body.dataset.images = String(images.length);
  document.body.dataset.scriptErrors = document.body.dataset.scriptErrors || '0';
});
"""


def figure_html(path, title):
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html_text(title)}" src="data:image/png;base64,{data}">'


def text_html(lines):
    return "<ul>" + "".join(f"<li>{html_text(line.removeprefix('- '))}</li>" for line in lines) + "</ul>"


def page(title, header, sections):
    """The whole page. `header`: lines of provenance; `sections`: (title, source, kind, content) with kind
    "table" (a DataFrame), "figure" (a PNG path) or "text" (lines)."""
    body = [f"<h1>{html_text(title)}</h1>", *(f"<p>{html_text(line)}</p>" for line in header)]
    for section_title, source, kind, content in sections:
        body.append(f"<h2>{html_text(section_title)}</h2>")
        body.append(f'<p class="source">Source: {html_text(source)}</p>')
        if kind == "table":
            body.append(frame_html(content))
        elif kind == "figure":
            body.append(figure_html(content, section_title))
        else:
            body.append(text_html(content))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html_text(title)}</title><style>{STYLE}</style><script>{SCRIPT}</script></head>"
            f"<body>{''.join(body)}</body></html>\n")

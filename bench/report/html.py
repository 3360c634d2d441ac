"""The report as one page to open: index.html beside index.md, self-contained (figures embedded as PNG
data, no script or style fetched from anywhere), readable offline. A table of contents links every part and
section; tables sort by any column on a click, a wide one is split into tables of a readable width (each repeating
the columns that name a row) and scrolls sideways if still too wide; each section says where its numbers come from.

The page checks itself when it loads: every figure decoded, no script error, every link of the contents pointing at
a heading of the same text (`data-images-ok`, `data-script-errors`, `data-toc-ok` on <body>); opened as
`index.html?selftest`, it also follows each contents link and counts those that bring their heading into view
(`data-toc-landed`). The browser tests read them.
"""
import base64
import re
from pathlib import Path

from bench.report.markup import frame_html, html_text

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.35em; margin-top: 2.5em; border-bottom: 2px solid #ccc; }
h3 { font-size: 1.1em; margin-top: 1.8em; border-bottom: 1px solid #eee; }
nav ol { padding-left: 1.5em; } nav ol ol { font-size: 0.9em; } nav li { margin: 0.1em 0; }
.source { color: #666; font-size: 0.85em; }
.wide { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
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
function checkContents() {
  const links = Array.from(document.querySelectorAll('nav#contents a[href^="#"]'));
  const target = a => document.getElementById(decodeURIComponent(a.getAttribute('href').slice(1)));
  const named = links.filter(a => {
    const heading = target(a);
    return heading && /^H[23]$/.test(heading.tagName) && heading.textContent === a.textContent;
  });
  document.body.dataset.toc = String(links.length);
  document.body.dataset.tocOk = String(named.length);
  if (!new URLSearchParams(location.search).has('selftest')) return;
  let landed = 0;  // follow each link as a reader would; its heading must then be in view, at the top if it can be
  for (const a of named) {
    a.click();
    const top = target(a).getBoundingClientRect().top;
    const bottom = document.documentElement.scrollHeight - window.innerHeight - window.scrollY;
    if (top >= -1 && top < window.innerHeight && (Math.abs(top) <= 1 || bottom <= 1)) landed += 1;
  }
  document.body.dataset.tocLanded = String(landed);
  window.scrollTo(0, 0);
}
window.addEventListener('load', () => {
  document.querySelectorAll('table.sortable th').forEach(th => th.addEventListener('click', () => sortTable(th)));
  const images = Array.from(document.images);
  document.body.dataset.imagesOk = String(images.filter(img => img.complete && img.naturalWidth > 0).length);
  document.body.dataset.images = String(images.length);
  checkContents();
  document.body.dataset.scriptErrors = document.body.dataset.scriptErrors || '0';
});
"""


def figure_html(path, title):
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html_text(title)}" src="data:image/png;base64,{data}">'


def text_html(lines):
    return "<ul>" + "".join(f"<li>{html_text(line.removeprefix('- '))}</li>" for line in lines) + "</ul>"


def anchors(parts):
    """An id per part and section: its title's words in lower case joined by hyphens (plain ASCII, whatever the
    title holds), numbered where one repeats."""
    seen, ids = set(), {}
    for key, title in [(id(x), x.title) for part in parts for x in (part, *part.sections)]:
        base = "-".join(re.findall(r"[a-z0-9]+", title.lower()))[:60].strip("-") or "section"
        anchor, n = base, 1
        while anchor in seen:
            n += 1
            anchor = f"{base}-{n}"
        seen.add(anchor)
        ids[key] = anchor
    return ids


def contents_html(parts, ids):
    """The table of contents: a numbered list of the parts, each with its sections."""
    items = []
    for part in parts:
        sections = "".join(f'<li><a href="#{ids[id(section)]}">{html_text(section.title)}</a></li>'
                           for section in part.sections)
        items.append(f'<li><a href="#{ids[id(part)]}">{html_text(part.title)}</a>'
                     + (f"<ol>{sections}</ol>" if sections else "") + "</li>")
    return f'<nav id="contents"><h2>Contents</h2><ol>{"".join(items)}</ol></nav>'


def section_html(section, ids, keys):
    body = [f'<h3 id="{ids[id(section)]}">{html_text(section.title)}</h3>',
            f'<p class="source">Source: {html_text(section.source)}</p>']
    if section.kind == "table":
        body += [f'<div class="wide">{frame_html(chunk)}</div>' for chunk in keys(section.content)]
    elif section.kind == "figure":
        body.append(figure_html(section.content, section.title))
    else:
        body.append(text_html(section.content))
    return "".join(body)


def page(title, header, parts, split=lambda frame: [frame]):
    """The whole page. `header`: lines of provenance; `parts`: objects with `title`, `intro` (lines) and `sections`,
    each with `title`, `source`, `kind` and `content`: kind "table" (a DataFrame, shown as the tables `split`
    makes of it), "figure" (a PNG path) or "text" (lines)."""
    ids = anchors(parts)
    body = [f"<h1>{html_text(title)}</h1>", *(f"<p>{html_text(line)}</p>" for line in header)]
    if parts:
        body.append(contents_html(parts, ids))
    for part in parts:
        body.append(f'<h2 id="{ids[id(part)]}">{html_text(part.title)}</h2>')
        body += [f"<p>{html_text(line)}</p>" for line in part.intro]
        body += [section_html(section, ids, split) for section in part.sections]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html_text(title)}</title><style>{STYLE}</style><script>{SCRIPT}</script></head>"
            f"<body>{''.join(body)}</body></html>\n")

"""The digest in a real browser (headless Chromium): readable at 320 px with no sideways
scrolling, every text at least 4.5:1 contrast in light and dark mode, and right-to-left
scripts laid out right to left."""

from __future__ import annotations

import pytest

from mailer.digest.compose import copy_for, prepare_edition
from mailer.digest.editions import build_edition
from subscribers.service import recipients
from tests.factories import PERIOD, standard_world

# For each element with its own visible text: its colour against the first opaque
# background behind it, as a WCAG 2 contrast ratio.
CONTRAST_JS = """
() => {
  const lum = (c) => {
    const [r, g, b] = c.match(/[\\d.]+/g).slice(0, 3).map(Number).map(v => {
      v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const opaque = (c) => { const p = c.match(/[\\d.]+/g); return p && (p.length < 4 || Number(p[3]) > 0.5); };
  const bad = [];
  for (const el of document.body.querySelectorAll('*')) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own) continue;
    const style = getComputedStyle(el);
    if (style.display === 'none' || style.visibility === 'hidden' || el.offsetWidth === 0) continue;
    let bg = null;
    for (let a = el; a; a = a.parentElement) {
      const c = getComputedStyle(a).backgroundColor;
      if (c && opaque(c) && !c.startsWith('rgba(0, 0, 0, 0')) { bg = c; break; }
    }
    bg = bg || 'rgb(255, 255, 255)';
    const [l1, l2] = [lum(style.color), lum(bg)].sort((x, y) => y - x);
    const ratio = (l1 + 0.05) / (l2 + 0.05);
    if (ratio < 4.5) bad.push(`${el.tagName} "${el.textContent.trim().slice(0, 30)}" ${style.color} on ${bg}: ${ratio.toFixed(2)}`);
  }
  return bad;
}
"""


@pytest.fixture
def digest_html(session, rt):
    w = standard_world(session)
    w.item(
        "urdu",
        "naz",
        ["sexual-health"],
        title="جنسی صحت کی خدمات کے بارے میں آن لائن گروپ",
        summary="اقلیتی نسلی گروہوں کے لیے جنسی صحت کی خدمات پر بات چیت۔",
    )
    w.subscriber("all@x.org", topics=list(w.topics), partners=list(w.partners), name="Amina Rahman")
    ed = build_edition(session, PERIOD)
    ed.featured_item_id = w.items["letter"].id
    ed.intro = "A short note from the editor."
    session.commit()
    prepared = prepare_edition(session, ed, rt.settings)
    return copy_for(prepared, recipients(session)[0])[0]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_readable_at_320px_with_enough_contrast(browser, digest_html, scheme):
    for width in (320, 700):
        page = browser.new_page(viewport={"width": width, "height": 800}, color_scheme=scheme)
        page.set_content(digest_html)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        assert page.evaluate(CONTRAST_JS) == []
        if width == 320:  # one column: the footer's two columns stack
            boxes = page.evaluate(
                "[...document.querySelectorAll('.mj-column-per-60, .mj-column-per-40')]"
                ".map(e => e.getBoundingClientRect().width)"
            )
            assert boxes and all(w > 250 for w in boxes)
        else:  # two columns side by side on desktop
            boxes = page.evaluate(
                "[...document.querySelectorAll('.mj-column-per-60, .mj-column-per-40')]"
                ".map(e => e.getBoundingClientRect().top)"
            )
            assert len(set(boxes)) < len(boxes)
        page.close()


def test_right_to_left_items_run_right_to_left(browser, digest_html):
    page = browser.new_page(viewport={"width": 600, "height": 800})
    page.set_content(digest_html)
    by_title = dict(
        page.evaluate("""() => [...document.querySelectorAll('h3[dir=auto]')].map(
        h => [h.textContent.trim(), getComputedStyle(h).direction])""")
    )
    summaries = dict(
        page.evaluate("""() => [...document.querySelectorAll('p[dir=auto]')].map(
        p => [p.textContent.trim().slice(0, 12), getComputedStyle(p).direction])""")
    )
    assert summaries["اقلیتی نسلی "] == "rtl" and summaries["A summary."] == "ltr"
    assert by_title["جنسی صحت کی خدمات کے بارے میں آن لائن گروپ"] == "rtl"
    assert by_title["PrEP clinic evenings"] == "ltr"
    page.close()

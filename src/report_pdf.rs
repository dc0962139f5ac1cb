//! The annual attestation pack (or quarterly summary) as a PDF for people: a title, then the pack's flat rows as a
//! four-column table (section, key, attribute, value) in the built-in Helvetica, A4 pages,
//! uncompressed so the text can be checked without a PDF library. Built with `pdf-writer`
//! (no dependencies of its own); the figures are exactly the CSV's.

use computegate_kyc::ledger::annual::{AnnualPack, PackRow};
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};

/// A4 in points.
const PAGE: (f32, f32) = (595.0, 842.0);
/// Left edge of each column, points.
const COLUMNS: [f32; 4] = [40.0, 130.0, 330.0, 450.0];
/// Most characters a cell shows (longer ones end in `...`), per column.
const CELL_CHARS: [usize; 4] = [20, 40, 24, 28];
/// Body font size and line height, points.
const FONT_SIZE: f32 = 8.0;
const LINE: f32 = 11.0;
/// Top and bottom margins, points.
const TOP: f32 = 790.0;
const BOTTOM: f32 = 50.0;
/// Font resource name.
const FONT: Name<'static> = Name(b"F1");

/// Renders `pack` as a PDF document.
pub fn render(pack: &AnnualPack) -> Vec<u8> {
    let rows = pack.rows();
    let per_page = ((TOP - BOTTOM) / LINE) as usize - 3;
    let pages: Vec<&[PackRow]> = if rows.is_empty() {
        vec![&[]]
    } else {
        rows.chunks(per_page).collect()
    };
    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let font = Ref::new(3);
    let ids: Vec<(Ref, Ref)> = (0..pages.len() as i32)
        .map(|i| (Ref::new(4 + 2 * i), Ref::new(5 + 2 * i)))
        .collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(ids.iter().map(|(page, _)| *page))
        .count(ids.len() as i32);
    pdf.type1_font(font).base_font(Name(b"Helvetica"));
    let title = pack.title();
    for (n, (chunk, (page_id, content_id))) in pages.iter().zip(&ids).enumerate() {
        let mut page = pdf.page(*page_id);
        page.media_box(Rect::new(0.0, 0.0, PAGE.0, PAGE.1));
        page.parent(tree);
        page.contents(*content_id);
        page.resources().fonts().pair(FONT, font);
        page.finish();
        let heading = format!("{title} - page {} of {}", n + 1, pages.len());
        let content = page_content(&heading, chunk);
        pdf.stream(*content_id, &content);
    }
    pdf.finish()
}

/// One page: the heading, the column names and `rows`.
fn page_content(heading: &str, rows: &[PackRow]) -> Vec<u8> {
    let mut c = Content::new();
    text(&mut c, COLUMNS[0], TOP, 12.0, heading);
    let mut y = TOP - 2.0 * LINE;
    for (x, name) in COLUMNS.iter().zip(["section", "key", "attribute", "value"]) {
        text(&mut c, *x, y, FONT_SIZE, name);
    }
    for row in rows {
        y -= LINE;
        let cells = [row.section, &row.key, &row.attribute, &row.value];
        for ((x, cell), width) in COLUMNS.iter().zip(cells).zip(CELL_CHARS) {
            text(&mut c, *x, y, FONT_SIZE, &fit(cell, width));
        }
    }
    c.finish().into_vec()
}

fn text(c: &mut Content, x: f32, y: f32, size: f32, s: &str) {
    c.begin_text();
    c.set_font(FONT, size);
    c.next_line(x, y);
    c.show(Str(s.as_bytes()));
    c.end_text();
}

/// `s` in printable ASCII (Helvetica's standard encoding covers no more reliably), cut to
/// `width` characters.
fn fit(s: &str, width: usize) -> String {
    let ascii: String = s
        .chars()
        .map(|ch| {
            if ch.is_ascii_graphic() || ch == ' ' {
                ch
            } else {
                '?'
            }
        })
        .collect();
    if ascii.len() <= width {
        return ascii;
    }
    format!("{}...", &ascii[..width.saturating_sub(3)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_ascii_and_cut_to_width() {
        assert_eq!(fit("Straße", 20), "Stra?e");
        assert_eq!(fit("abcdefghij", 6), "abc...");
        assert_eq!(fit("abc", 3), "abc");
    }
}

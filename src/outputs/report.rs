//! A self-contained HTML result sheet: for some queries of each task, the query and its top-5
//! results with scores, thumbnails embedded, true matches marked when a truth file is known.
use crate::error::Result;
use crate::features::image::decode;
use base64::Engine;
use std::collections::{HashMap, HashSet};
use std::fmt::Write;
use std::path::Path;

/// One query's row on the sheet.
pub struct Row {
    pub query_id: String,
    /// Caption (task 1) or image file (task 2).
    pub query: Query,
    /// (id, score, caption or image file).
    pub results: Vec<(String, f32, Query)>,
    /// Per result, its largest per-term contributions (term, contribution), from
    /// [`crate::explain`]; empty when not explained.
    pub explanations: Vec<Vec<(String, f32)>>,
    pub truth: HashSet<String>,
}

pub enum Query {
    Text(String),
    Image(std::path::PathBuf),
}

pub struct Section {
    pub title: String,
    /// Said above the table (e.g. which images could not be read).
    pub notes: Vec<String>,
    pub rows: Vec<Row>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A 160-px JPEG thumbnail as a data URI (or a note when the file cannot be read).
fn thumb(path: &Path, cache: &mut HashMap<std::path::PathBuf, String>) -> String {
    if let Some(t) = cache.get(path) {
        return t.clone();
    }
    let html = match decode::read_image_file(path)
        .ok()
        .and_then(|b| decode::decode_at_least(&b, 160).ok())
    {
        Some(img) => {
            let t = decode::thumbnail(&img, 160);
            let mut buf = Vec::new();
            let ok = image::DynamicImage::ImageRgb8(t)
                .write_to(
                    &mut std::io::Cursor::new(&mut buf),
                    image::ImageFormat::Jpeg,
                )
                .is_ok();
            if ok {
                format!(
                    "<img src=\"data:image/jpeg;base64,{}\" alt=\"{}\">",
                    base64::engine::general_purpose::STANDARD.encode(&buf),
                    esc(&path.file_name().unwrap_or_default().to_string_lossy())
                )
            } else {
                "<span class=na>(not shown)</span>".into()
            }
        }
        None => "<span class=na>(unreadable)</span>".into(),
    };
    cache.insert(path.to_path_buf(), html.clone());
    html
}

fn cell(q: &Query, cache: &mut HashMap<std::path::PathBuf, String>) -> String {
    match q {
        Query::Text(t) => format!("<div class=cap>{}</div>", esc(t)),
        Query::Image(p) => thumb(p, cache),
    }
}

/// Write the sheet to `out` (atomically).
pub fn write_html(out: &Path, title: &str, summary: &str, sections: &[Section]) -> Result<()> {
    let mut cache = HashMap::new();
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=zh><head><meta charset=utf-8>{GENERATOR}<title>{t}</title><style>\
body{{font-family:sans-serif;margin:20px;background:#fafafa}} table{{border-collapse:collapse;margin-bottom:30px}}\
td{{border:1px solid #ddd;padding:6px;vertical-align:top;background:#fff;width:170px}}\
td.q{{background:#eef3fb}} .cap{{font-size:14px;max-width:160px}} .s{{color:#666;font-size:12px}}\
td.hit{{outline:4px solid #2a9d3a;outline-offset:-4px}} .t{{font-size:11px;color:#335}} .na{{color:#a00}} img{{max-width:160px;max-height:160px}}\
</style></head><body><h1>{t}</h1><p>{s}</p>",
        t = esc(title),
        s = esc(summary)
    );
    for sec in sections {
        let found = sec
            .rows
            .iter()
            .filter(|r| r.results.iter().any(|x| r.truth.contains(&x.0)))
            .count();
        let known = sec.rows.iter().filter(|r| !r.truth.is_empty()).count();
        let _ = write!(h, "<h2>{}</h2>", esc(&sec.title));
        for n in &sec.notes {
            let _ = write!(h, "<p class=na>{}</p>", esc(n));
        }
        if known > 0 {
            let _ = write!(h, "<p>true match in the top 5 for {found} of {known} queries shown (green frame).</p>");
        }
        h.push_str(
            "<table><tr><th>query</th><th>1</th><th>2</th><th>3</th><th>4</th><th>5</th></tr>",
        );
        for r in &sec.rows {
            let _ = write!(
                h,
                "<tr><td class=q>{}<div class=s>{}</div></td>",
                cell(&r.query, &mut cache),
                esc(&r.query_id)
            );
            for (i, (id, score, q)) in r.results.iter().enumerate() {
                let hit = if r.truth.contains(id) {
                    " class=hit"
                } else {
                    ""
                };
                let terms: String = r
                    .explanations
                    .get(i)
                    .into_iter()
                    .flatten()
                    .map(|(t, c)| format!("<div>{} <b>{c:+.3}</b></div>", esc(t)))
                    .collect();
                let _ = write!(
                    h,
                    "<td{hit}>{}<div class=s>{} · {:.3}</div><div class=t>{terms}</div></td>",
                    cell(q, &mut cache),
                    esc(id),
                    score
                );
            }
            h.push_str("</tr>");
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>\n");
    // `--out word_test.csv` (or any file tuwen did not write) is refused, not overwritten.
    crate::fsutil::write_atomic_replacing(out, h.as_bytes(), "report", |old| {
        let old = String::from_utf8_lossy(old);
        old.contains(GENERATOR)
            || old.starts_with("<!doctype html>") && old.contains("<title>tuwen")
    })
}

/// Marks a sheet as tuwen's, so a later report may replace it.
const GENERATOR: &str = "<meta name=generator content=tuwen>";

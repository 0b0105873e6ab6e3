//! What the commands print: skip summaries and explanation tables.
use anyhow::Result;
use std::path::Path;
use tuwen::data::Skip;
use tuwen::jobs::{self, rank::RankOutput};
use tuwen::outputs::csv as out_csv;
use tuwen::retrieval::score::Scoring;
use tuwen::retrieval::Bank;

/// Say what was skipped (counts by reason, a few examples) and write the full list if asked.
pub fn skips(skips: &[Skip], list: Option<&Path>) -> Result<()> {
    // Written even when empty, so no list of an earlier run is left in its place.
    if let (Some(p), true) = (list, skips.is_empty()) {
        out_csv::write_skips(p, skips)?;
    }
    if skips.is_empty() {
        return Ok(());
    }
    let mut reasons: std::collections::BTreeMap<String, usize> = Default::default();
    for s in skips {
        let key = s.reason.kind().to_string();
        *reasons.entry(key).or_default() += 1;
    }
    eprintln!("skipped {} rows/files:", skips.len());
    for (r, n) in reasons {
        eprintln!("  {n:>6}  {r}");
    }
    for s in skips.iter().take(5) {
        eprintln!("  e.g. {} row {} `{}`: {}", s.file, s.row, s.id, s.reason);
    }
    if let Some(p) = list {
        out_csv::write_skips(p, skips)?;
        eprintln!("skip list written to {}", p.display());
    } else {
        eprintln!("  (--skip-list FILE writes them all)");
    }
    Ok(())
}

/// The notes and skips of ranking jobs (`rank`, `report`).
pub fn rank_skips(outs: Vec<RankOutput>, list: Option<&Path>) -> Result<()> {
    let mut all = Vec::new();
    for r in outs {
        for n in r.failure_notes() {
            eprintln!("{n}");
        }
        all.extend(r.failed_queries);
        all.extend(r.failed_gallery);
        all.extend(r.empty_captions);
    }
    skips(&all, list)
}

pub fn explain(c: crate::cli::ExplainCmd) -> Result<()> {
    // Before the model is loaded.
    jobs::explain::check_caption(&c.caption)?;
    let emb = c.model.embedder(&c.run)?;
    let opts = c.score.options(Bank::Train);
    let scorer = emb.scorer(opts)?;
    let e = jobs::explain::explain_files(&emb, &scorer, &c.caption, &c.image, c.query.into())?;
    if c.json {
        println!("{}", serde_json::to_string(&e)?);
        return Ok(());
    }
    let x = &e.cosine;
    println!("score {:.4} ({})", e.score, opts.describe());
    if e.scoring != Scoring::Cosine {
        println!(
            "  = {:.1} × cosine {:.4} − query penalty {:.4} − gallery penalty {:.4} (correction {:+.4})",
            e.scale, x.cosine, e.query_penalty, e.gallery_penalty, e.correction()
        );
    }
    println!(
        "cosine {:.4} = Σ {} terms {:+.4} + offset {:+.4} (centring)",
        x.cosine,
        x.terms.len(),
        x.total() - x.offset,
        x.offset
    );
    let n = if c.top == 0 {
        x.terms.len()
    } else {
        c.top.min(x.terms.len())
    };
    println!("  contribution  kind    term");
    for t in &x.terms[..n] {
        let note = if t.oov {
            "  (out of vocabulary)"
        } else if t.via_chars {
            "  (via its characters)"
        } else {
            ""
        };
        println!(
            "  {:+12.5}  {:<6}  {}{note}",
            t.contribution,
            t.kind.name(),
            t.text
        );
    }
    if n < x.terms.len() {
        let rest: f32 = x.terms[n..].iter().map(|t| t.contribution).sum();
        println!("  {rest:+12.5}  (the other {} terms)", x.terms.len() - n);
    }
    let oov: Vec<&str> = x
        .terms
        .iter()
        .filter(|t| t.oov)
        .map(|t| t.text.as_str())
        .collect();
    if !oov.is_empty() {
        println!(
            "out of vocabulary (no word-vector part; their characters may still count in the bag): {}",
            oov.join(" ")
        );
    }
    Ok(())
}

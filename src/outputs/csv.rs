//! Teddy result files (`result1.csv`, `result2.csv`): validated in full, written to a temporary
//! file in the target folder and renamed, so a result file is never partial.
use crate::data::Skip;
use crate::error::{Error, Result};
use crate::retrieval::Direction;
use std::collections::{HashMap, HashSet};
use std::path::Path;

pub const TOP: usize = 5;

/// Check that every query has exactly ranks 1..=5 with 5 distinct results drawn from the gallery,
/// and that no other query appears.
pub fn validate(
    path: &Path,
    rows: &[(String, usize, String)],
    queries: &[String],
    gallery: &HashSet<&str>,
) -> Result<()> {
    let bad = |msg: String| Error::Validation {
        path: path.to_path_buf(),
        msg,
    };
    let wanted: HashSet<&str> = queries.iter().map(String::as_str).collect();
    let mut by_query: HashMap<&str, Vec<(usize, &str)>> = HashMap::new();
    for (q, r, res) in rows {
        if !wanted.contains(q.as_str()) {
            return Err(bad(format!("unexpected query id `{q}`")));
        }
        if !gallery.contains(res.as_str()) {
            return Err(bad(format!(
                "query `{q}`: result `{res}` is not in the gallery"
            )));
        }
        by_query.entry(q).or_default().push((*r, res));
    }
    for q in queries {
        let Some(list) = by_query.get(q.as_str()) else {
            return Err(bad(format!("query `{q}` has no results")));
        };
        if list.len() != TOP {
            return Err(bad(format!(
                "query `{q}` has {} results, expected {TOP}",
                list.len()
            )));
        }
        let ranks: HashSet<usize> = list.iter().map(|x| x.0).collect();
        if ranks != (1..=TOP).collect() {
            let mut r: Vec<usize> = list.iter().map(|x| x.0).collect();
            r.sort_unstable();
            return Err(bad(format!(
                "query `{q}` has ranks {r:?}, expected 1..={TOP} once each"
            )));
        }
        let distinct: HashSet<&str> = list.iter().map(|x| x.1).collect();
        if distinct.len() != TOP {
            return Err(bad(format!("query `{q}` repeats a result")));
        }
    }
    Ok(())
}

/// Validate and atomically write a result file. `results[i]` are the gallery ids for `queries[i]`,
/// best first.
pub fn write_results(
    path: &Path,
    task: Direction,
    queries: &[String],
    results: &[Vec<String>],
    gallery: &[String],
) -> Result<()> {
    if gallery.len() < TOP {
        return Err(Error::Validation {
            path: path.to_path_buf(),
            msg: format!(
                "the gallery has {} items; a top-{TOP} answer needs at least {TOP}",
                gallery.len()
            ),
        });
    }
    let rows: Vec<(String, usize, String)> = queries
        .iter()
        .zip(results)
        .flat_map(|(q, res)| {
            res.iter()
                .enumerate()
                .map(move |(k, r)| (q.clone(), k + 1, r.clone()))
        })
        .collect();
    let gset: HashSet<&str> = gallery.iter().map(String::as_str).collect();
    validate(path, &rows, queries, &gset)?;
    let mut w = ::csv::Writer::from_writer(Vec::new());
    let io = |e: ::csv::Error| Error::file(path, e.to_string());
    w.write_record(task.header()).map_err(io)?;
    for (q, r, res) in &rows {
        w.write_record([q.as_str(), &r.to_string(), res.as_str()])
            .map_err(io)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| Error::file(path, e.to_string()))?;
    super::write_atomic(path, &bytes)
}

/// A result file may only replace a result file of the same task (or nothing): never a user's
/// file that happens to be called `result1.csv`, and never through a symbolic link. Checked
/// before any work, so a refusal costs nothing.
pub fn check_result_target(path: &Path, task: Direction) -> Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if meta.file_type().is_symlink() {
        return Err(Error::file(
            path,
            "is a symbolic link; tuwen does not write result files through links (remove it or \
             choose another --out-dir)",
        ));
    }
    let first = std::fs::read(path).ok().and_then(|b| {
        b.split(|&c| c == b'\n')
            .next()
            .map(|l| String::from_utf8_lossy(l).trim().to_string())
    });
    if meta.is_file() && first.as_deref() == Some(task.header().join(",").as_str()) {
        return Ok(());
    }
    Err(Error::file(
        path,
        "exists and is not a tuwen result file of this task; it is not replaced (move it or \
         choose another --out-dir)",
    ))
}

/// Read a result file back and validate it (for users checking a file, and for tests).
pub fn check_file(
    path: &Path,
    task: Direction,
    queries: &[String],
    gallery: &[String],
) -> Result<()> {
    let t = crate::data::read_table(path)?;
    let h = task.header();
    let cols = [t.column(h[0])?, t.column(h[1])?, t.column(h[2])?];
    let mut rows = Vec::new();
    for (i, r) in t.rows.iter().enumerate() {
        let rank: usize = r[cols[1]].trim().parse().map_err(|_| {
            Error::row(
                path,
                i + 1,
                format!("rank `{}` is not a number", r[cols[1]]),
            )
        })?;
        rows.push((r[cols[0]].clone(), rank, r[cols[2]].clone()));
    }
    let gset: HashSet<&str> = gallery.iter().map(String::as_str).collect();
    validate(path, &rows, queries, &gset)
}

/// Write a skip list (`file,row,id,reason`), atomically.
pub fn write_skips(path: &Path, skips: &[Skip]) -> Result<()> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    let err = |e: ::csv::Error| Error::file(path, e.to_string());
    w.write_record(["file", "row", "id", "reason"])
        .map_err(err)?;
    for k in skips {
        w.write_record([
            k.file.as_str(),
            &k.row.to_string(),
            &k.id,
            &k.reason.to_string(),
        ])
        .map_err(err)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| Error::file(path, e.to_string()))?;
    // `--skip-list train.csv` must not overwrite the training pairs.
    crate::fsutil::write_atomic_replacing(path, &bytes, "skip list", is_skip_list)
}

/// Whether a file's first bytes are a skip list's header (tuwen wrote it).
fn is_skip_list(head: &[u8]) -> bool {
    head.strip_prefix(b"\xef\xbb\xbf".as_slice())
        .unwrap_or(head)
        .starts_with(b"file,row,id,reason")
}

/// Check a `--skip-list` path before any work, so a mistake costs nothing and the list is never
/// lost at the end of a long run: it must not be one of the command's `inputs`, and
/// [`write_skips`] must be able to write it ([`crate::fsutil::check_file_target`]: not a folder,
/// not a user's file, its folder creatable). Creates and changes nothing.
pub fn check_skip_list(path: &Path, inputs: &[&Path]) -> Result<()> {
    crate::fsutil::check_not_input(path, inputs)?;
    crate::fsutil::check_file_target(path, "skip list", |p| {
        crate::fsutil::head(p).is_ok_and(|h| is_skip_list(&h))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(p: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{p}{i}")).collect()
    }

    #[test]
    fn only_a_result_file_of_the_same_task_is_replaced() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("result1.csv");
        check_result_target(&p, Direction::TextToImage).unwrap();
        let (q, g) = (ids("q", 1), ids("g", 5));
        write_results(&p, Direction::TextToImage, &q, std::slice::from_ref(&g), &g).unwrap();
        check_result_target(&p, Direction::TextToImage).unwrap();
        assert!(check_result_target(&p, Direction::ImageToText).is_err());
        std::fs::write(&p, "my,own\n").unwrap();
        let e = check_result_target(&p, Direction::TextToImage)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a tuwen result file"), "{e}");
        let link = d.path().join("result2.csv");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        let e = check_result_target(&link, Direction::ImageToText)
            .unwrap_err()
            .to_string();
        assert!(e.contains("symbolic link"), "{e}");
    }

    #[test]
    fn writes_valid_file_and_reads_it_back() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("result1.csv");
        let q = ids("W", 2);
        let g = ids("I", 6);
        let res = vec![g[..5].to_vec(), g[1..6].to_vec()];
        write_results(&p, Direction::TextToImage, &q, &res, &g).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("text_id,similarity_ranking,result_image_id\nW0,1,I0\n"));
        assert_eq!(text.lines().count(), 11);
        check_file(&p, Direction::TextToImage, &q, &g).unwrap();
    }

    #[test]
    fn rejects_missing_query_duplicate_rank_and_short_lists() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("r.csv");
        let q = ids("W", 2);
        let g = ids("I", 6);
        let gs: HashSet<&str> = g.iter().map(String::as_str).collect();
        let full = |qq: &str| {
            (1..=5)
                .map(|r| (qq.to_string(), r, g[r].clone()))
                .collect::<Vec<_>>()
        };
        // missing query W1
        let e = validate(&p, &full("W0"), &q, &gs).unwrap_err().to_string();
        assert!(e.contains("`W1` has no results"), "{e}");
        // duplicate rank
        let mut rows = full("W0");
        rows.extend(full("W1"));
        rows[4].1 = 4;
        let e = validate(&p, &rows, &q, &gs).unwrap_err().to_string();
        assert!(e.contains("ranks [1, 2, 3, 4, 4]"), "{e}");
        // fewer than 5
        let mut rows = full("W0");
        rows.extend(full("W1"));
        rows.pop();
        let e = validate(&p, &rows, &q, &gs).unwrap_err().to_string();
        assert!(e.contains("has 4 results"), "{e}");
        // a repeated result
        let mut rows = full("W0");
        rows.extend(full("W1"));
        rows[1].2 = rows[0].2.clone();
        assert!(validate(&p, &rows, &q, &gs)
            .unwrap_err()
            .to_string()
            .contains("repeats"));
    }

    #[test]
    fn small_gallery_is_a_clear_error_and_nothing_is_written() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("result2.csv");
        let g = ids("W", 3);
        let e = write_results(
            &p,
            Direction::ImageToText,
            &ids("I", 1),
            std::slice::from_ref(&g),
            &g,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("gallery has 3 items"), "{e}");
        assert!(!p.exists());
    }
}

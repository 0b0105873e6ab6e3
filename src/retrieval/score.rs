//! Hubness-aware scoring: CSLS and inverted softmax on top of cosine similarity.
//!
//! In high-dimensional cross-modal spaces a few gallery items ("hubs") are close to almost every
//! query and crowd the top of every ranking. Both corrections here penalise an item by how close
//! it is to *everything* of the query's modality, so a hub no longer wins by default:
//!
//! * **CSLS** (Conneau et al. 2018): `csls(q, g) = 2·cos(q, g) − r_q − r_g`, where `r_q` is the
//!   mean cosine of `q` to its `k` nearest rows of a bank of the gallery's modality and `r_g` the
//!   mean cosine of `g` to its `k` nearest rows of a bank of the query's modality.
//! * **Inverted softmax** (Smith et al. 2017): `is(q, g) = exp(β·cos(q, g)) / Σ_{q'} exp(β·cos(q', g))`
//!   over a bank of the query's modality. It is reported as its **logarithm**,
//!   `β·cos(q, g) − logsumexp_{q'}(β·cos(q', g))` (`exp` of it is the probability; the ranking is
//!   the same), which never overflows even for large β.
//!
//! Every scoring has the same shape, `score = scale·cos − (query_penalty + gallery_penalty)`
//! ([`Scoring::scale`], [`Penalties`]): the query penalty is constant per query (it never changes
//! a query's ranking, but reported scores include it) and the gallery penalty is one number per
//! gallery item. So ranking is [`penalties`] (one blocked pass over the banks) followed by
//! [`top_k_scored`] (the blocked top-k of plain cosine ranking, with the correction applied on the
//! fly), or [`rank_sets`], which does both in usually a single pass when the ranked sets are
//! their own banks. The one large buffer is a block of `BLOCK` rows × the gallery (or × a bank);
//! bank × gallery is never formed in full.
//!
//! These are the building blocks of [`super::scorer::Scorer`], the one entry point commands
//! use: all queries at once with the sets as banks → [`rank_sets`]; stored training banks →
//! [`gallery_penalties`] once per prepared gallery, [`query_penalties`] per query, then
//! [`top_k_scored`]; held-out evaluation from one cosine matrix, both directions → [`both_ways`].
//!
//! Every cosine goes through [`crate::kernel`], so a pair has the same score in every block,
//! batch and command. Rows are expected L2-normalised (the dot product is the cosine). Ordering
//! everywhere: higher score first, ties broken by lower gallery index (galleries are kept in id
//! order), NaN ranked as −∞ (as in plain cosine ranking).
use ndarray::{s, Array1, Array2, ArrayView2, Axis, Zip};
use rayon::prelude::*;
use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// Bad scoring parameters or vectors of different dimensions.
    #[error("invalid scoring: {0}")]
    Invalid(String),
    #[error("this model stores no training banks; use --bank sets or refit")]
    NoTrainBanks,
    #[error(
        "{0} compares items with a bank, and one query alone has no sets to rank: use the \
         model's training items (--bank train) or plain cosine (--score cosine)"
    )]
    NoSets(Scoring),
    #[error("gallery ids: {0}")]
    Gallery(String),
}

/// Rows per block: 512 × 50,000 f32 similarities = 100 MB, the one large buffer.
pub const BLOCK: usize = 512;

/// Columns per parallel task when per-column statistics are accumulated.
const COL_CHUNK: usize = 256;

/// Largest CSLS neighbourhood accepted (memory per gallery item grows with it).
pub const MAX_CSLS_K: usize = 1000;
/// Largest inverse temperature accepted (β·cos must stay far from f32 overflow).
pub const MAX_BETA: f32 = 1e4;

/// How query–gallery pairs are scored.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Scoring {
    /// Plain cosine similarity.
    #[default]
    Cosine,
    /// Cross-domain similarity local scaling with `k` nearest neighbours (10 in the paper).
    Csls { k: usize },
    /// Inverted softmax with inverse temperature `beta`, reported as a log-probability.
    InvertedSoftmax { beta: f32 },
}

impl Scoring {
    /// Short name, e.g. "cosine", "csls(k=10)", "inverted-softmax(beta=10)".
    pub fn name(&self) -> String {
        self.to_string()
    }

    /// `Ok` when the parameters make sense: `k >= 1`, `beta` finite and positive.
    pub fn validate(&self) -> Result<(), ScoreError> {
        match *self {
            Scoring::Cosine => Ok(()),
            Scoring::Csls { k: 0 } => Err(ScoreError::Invalid("csls: k must be at least 1".into())),
            Scoring::Csls { k } if k > MAX_CSLS_K => Err(ScoreError::Invalid(format!(
                "csls: k = {k} is above {MAX_CSLS_K} (r is a local mean over the nearest few; \
                 10 is usual)"
            ))),
            Scoring::Csls { .. } => Ok(()),
            Scoring::InvertedSoftmax { beta } if !(beta > 0.0 && beta <= MAX_BETA) => {
                Err(ScoreError::Invalid(format!(
                    "inverted-softmax: beta must be in (0, {MAX_BETA}], got {beta}"
                )))
            }
            Scoring::InvertedSoftmax { .. } => Ok(()),
        }
    }

    /// The factor on the cosine: 1 (cosine), 2 (CSLS), β (inverted softmax).
    pub fn scale(&self) -> f32 {
        match *self {
            Scoring::Cosine => 1.0,
            Scoring::Csls { .. } => 2.0,
            Scoring::InvertedSoftmax { beta } => beta,
        }
    }
}

impl fmt::Display for Scoring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scoring::Cosine => write!(f, "cosine"),
            Scoring::Csls { k } => write!(f, "csls(k={k})"),
            Scoring::InvertedSoftmax { beta } => write!(f, "inverted-softmax(beta={beta})"),
        }
    }
}

/// What is subtracted from `scale·cos`: one value per query row and one per gallery row.
///
/// CSLS: `query[i] = r_q`, `gallery[j] = r_g`. Inverted softmax: `query` is all zeros and
/// `gallery[j] = logsumexp over the query bank of β·cos(q', g_j)`. Cosine: all zeros (and
/// ignored, so empty arrays are fine there).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Penalties {
    pub query: Array1<f32>,
    pub gallery: Array1<f32>,
}

impl Penalties {
    /// All-zero penalties (cosine ranking).
    pub fn zeros(n_queries: usize, n_gallery: usize) -> Self {
        Penalties {
            query: Array1::zeros(n_queries),
            gallery: Array1::zeros(n_gallery),
        }
    }
}

/// A single pair's score split into its parts, for showing a user why an item ranks where it
/// does: `score = scale·cosine − (query_penalty + gallery_penalty)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Breakdown {
    pub cosine: f32,
    pub scale: f32,
    pub query_penalty: f32,
    pub gallery_penalty: f32,
    pub score: f32,
}

/// Corrected score of one pair from its cosine and the two penalties. For `Cosine` the
/// penalties are ignored and the cosine is returned unchanged. The blocked and dense paths both
/// go through this function, so they agree bit for bit given the same cosine.
#[inline]
pub fn score(cos: f32, scoring: Scoring, query_penalty: f32, gallery_penalty: f32) -> f32 {
    match scoring {
        Scoring::Cosine => cos,
        // One expression for both corrections; the sum of the penalties is symmetric, so swapping
        // the roles of the two sides (see `both_ways`) gives the same bits.
        _ => scoring.scale() * cos - (query_penalty + gallery_penalty),
    }
}

/// [`score`] with its parts.
pub fn breakdown(
    cos: f32,
    scoring: Scoring,
    query_penalty: f32,
    gallery_penalty: f32,
) -> Breakdown {
    let (query_penalty, gallery_penalty) = match scoring {
        Scoring::Cosine => (0.0, 0.0),
        _ => (query_penalty, gallery_penalty),
    };
    Breakdown {
        cosine: cos,
        scale: scoring.scale(),
        query_penalty,
        gallery_penalty,
        score: score(cos, scoring, query_penalty, gallery_penalty),
    }
}

/// Per-item penalties for `scoring` over separate, fixed banks (a model's stored training
/// items: `--bank train`).
///
/// * `query_bank`: rows of the query's modality; gives the gallery-side penalty (`r_g` for
///   CSLS, the log-normaliser for inverted softmax).
/// * `gallery_bank`: rows of the gallery's modality; gives the query-side penalty (`r_q`, CSLS
///   only; unused otherwise).
///
/// Every item's penalty depends on that item and its bank only, never on the other items, so one
/// query scored alone gets the same bits as in a batch. For banks that are the ranked sets
/// themselves see [`penalties_sets`]; for held-out evaluation from one cosine matrix
/// [`both_ways`].
///
/// Documented edge cases: a bank with fewer than `k` rows gives the mean over all its rows; an
/// empty bank gives penalty 0 (CSLS then reduces to `2·cos − other side`, inverted softmax to
/// `β·cos`); NaN similarities inside a bank are skipped (as are −∞ ones for CSLS). Empty
/// `queries` or `gallery` give empty penalty arrays.
///
/// Errors: invalid `scoring` ([`Scoring::validate`]) or row lengths that disagree.
pub fn penalties(
    scoring: Scoring,
    queries: ArrayView2<f32>,
    gallery: ArrayView2<f32>,
    query_bank: ArrayView2<f32>,
    gallery_bank: ArrayView2<f32>,
) -> Result<Penalties, ScoreError> {
    scoring.validate()?;
    check_dims(&[
        ("queries", queries.dim()),
        ("gallery", gallery.dim()),
        ("query bank", query_bank.dim()),
        ("gallery bank", gallery_bank.dim()),
    ])?;
    Ok(Penalties {
        query: query_penalties(scoring, queries, gallery_bank)?,
        gallery: gallery_penalties(scoring, gallery, query_bank)?,
    })
}

/// Penalties when the ranked sets are their own banks (all queries known at once: Teddy's
/// files, `--bank sets`): the queries are the bank of the gallery items and the gallery the bank
/// of the queries. CSLS takes one pass over queries × gallery for both sides. Same edge cases
/// and errors as [`penalties`].
pub fn penalties_sets(
    scoring: Scoring,
    queries: ArrayView2<f32>,
    gallery: ArrayView2<f32>,
) -> Result<Penalties, ScoreError> {
    scoring.validate()?;
    check_dims(&[("queries", queries.dim()), ("gallery", gallery.dim())])?;
    Ok(match scoring {
        Scoring::Csls { k } => fused(queries, gallery, Stat::MeanTopK(k), Stat::MeanTopK(k)),
        _ => Penalties {
            query: query_penalties(scoring, queries, gallery)?,
            gallery: gallery_penalties(scoring, gallery, queries)?,
        },
    })
}

/// The query-side penalty alone: CSLS `r_q` of each query over `gallery_bank` (rows of the
/// gallery's modality); zeros for the other scorings. Edge cases as [`penalties`].
pub fn query_penalties(
    scoring: Scoring,
    queries: ArrayView2<f32>,
    gallery_bank: ArrayView2<f32>,
) -> Result<Array1<f32>, ScoreError> {
    scoring.validate()?;
    check_dims(&[
        ("queries", queries.dim()),
        ("gallery bank", gallery_bank.dim()),
    ])?;
    Ok(match scoring {
        Scoring::Csls { k } => item_stat(queries, gallery_bank, Stat::MeanTopK(k)),
        _ => Array1::zeros(queries.nrows()),
    })
}

/// The gallery-side penalty alone, from `query_bank` (rows of the query's modality): CSLS `r_g`,
/// or the inverted-softmax log-normaliser; zeros for cosine. It does not depend on the queries,
/// so with a fixed bank (a stored training sample) it can be computed once per gallery and kept.
pub fn gallery_penalties(
    scoring: Scoring,
    gallery: ArrayView2<f32>,
    query_bank: ArrayView2<f32>,
) -> Result<Array1<f32>, ScoreError> {
    scoring.validate()?;
    check_dims(&[("gallery", gallery.dim()), ("query bank", query_bank.dim())])?;
    Ok(match scoring {
        Scoring::Cosine => Array1::zeros(gallery.nrows()),
        Scoring::Csls { k } => item_stat(gallery, query_bank, Stat::MeanTopK(k)),
        Scoring::InvertedSoftmax { beta } => item_stat(gallery, query_bank, Stat::LogSumExp(beta)),
    })
}

/// The `k` best gallery rows for every query under `scoring`, as (gallery index, corrected
/// score), best first. Blocked like plain cosine ranking: one `BLOCK` × gallery block of
/// cosines at a time. `k` is capped at the gallery size; `k = 0`, or an empty gallery, gives
/// one empty list per query; no queries give an empty result. With `Scoring::Cosine` it is
/// exactly cosine top-k.
///
/// # Panics
/// If `penalties` was not computed for these queries and gallery (lengths differ; not checked for
/// `Cosine`), or if query and gallery rows differ in length: both are caller bugs.
pub fn top_k_scored(
    queries: ArrayView2<f32>,
    gallery: ArrayView2<f32>,
    k: usize,
    scoring: Scoring,
    penalties: &Penalties,
) -> Ranking {
    let (nq, ng) = (queries.nrows(), gallery.nrows());
    check_penalties(scoring, penalties, nq, ng);
    let k = k.min(ng);
    if k == 0 {
        return vec![Vec::new(); nq];
    }
    let mut out = Vec::with_capacity(nq);
    for start in (0..nq).step_by(BLOCK) {
        let end = (start + BLOCK).min(nq);
        let block = cosines(queries.slice(s![start..end, ..]), gallery);
        let rows = row_major(&block);
        let gp = &penalties.gallery;
        match scoring {
            Scoring::Cosine => out.par_extend(
                rows.par_chunks_exact(ng)
                    .map(|row| select(row, k, |_, c| c)),
            ),
            _ => out.par_extend(rows.par_chunks_exact(ng).enumerate().map(|(r, row)| {
                let qp = penalties.query[start + r];
                select(row, k, |j, c| score(c, scoring, qp, gp[j]))
            })),
        }
    }
    out
}

/// Dense queries × gallery matrix of corrected scores (small sets: evaluation, tests).
///
/// # Panics
/// Same conditions as [`top_k_scored`].
pub fn score_matrix(
    queries: ArrayView2<f32>,
    gallery: ArrayView2<f32>,
    scoring: Scoring,
    penalties: &Penalties,
) -> Array2<f32> {
    let (nq, ng) = (queries.nrows(), gallery.nrows());
    check_penalties(scoring, penalties, nq, ng);
    if nq == 0 || ng == 0 {
        return Array2::zeros((nq, ng));
    }
    let mut m = cosines(queries, gallery);
    apply(&mut m, scoring, &penalties.query, &penalties.gallery);
    m
}

/// Per query, its best (gallery index, score) pairs, best first.
pub type Ranking = Vec<Vec<(usize, f32)>>;

/// Ranking with the sets as their own banks ([`penalties_sets`]) in one call: the top `k` per
/// query (as [`top_k_scored`]) and the penalties used (for [`breakdown`]).
///
/// The gallery-side penalty comes from the same queries × gallery cosines the ranking needs, so
/// this takes one pass instead of two: each query keeps its best `max(4k, 64)` candidates by
/// cosine (memory O(queries × that), besides the usual block), and after the pass its corrected
/// top-k among them is kept only if it provably beats every non-candidate: `score(c_m, r_q,
/// min_g r_g)`, with `c_m` the worst candidate's cosine, bounds every non-candidate's score. The
/// queries that fail the check (hub-heavy data has more of them) are re-ranked exactly in a
/// second, blocked pass over just those queries. Every cosine goes through the one float path, so
/// the result is that of [`penalties_sets`] then [`top_k_scored`]: bit for bit for CSLS; for the
/// inverted softmax up to the rounding of its running log-sum-exp over blocks of queries.
///
/// Errors as [`penalties`]; panics only where [`top_k_scored`] would.
pub fn rank_sets(
    queries: ArrayView2<f32>,
    gallery: ArrayView2<f32>,
    k: usize,
    scoring: Scoring,
) -> Result<(Ranking, Penalties), ScoreError> {
    if scoring == Scoring::Cosine || k.min(gallery.nrows()) == 0 || queries.nrows() == 0 {
        let p = penalties_sets(scoring, queries, gallery)?;
        let top = top_k_scored(queries, gallery, k, scoring, &p);
        return Ok((top, p));
    }
    let (top, p, _) = rank_one_pass(queries, gallery, k, scoring, (4 * k).max(64))?;
    Ok((top, p))
}

/// The one-pass path of [`rank_sets`] with `m` candidates per query; also returns how many
/// queries needed the exact second pass. Needs `k >= 1`, non-empty sets.
fn rank_one_pass(
    queries: ArrayView2<f32>,
    gallery: ArrayView2<f32>,
    k: usize,
    scoring: Scoring,
    m: usize,
) -> Result<(Ranking, Penalties, usize), ScoreError> {
    scoring.validate()?;
    check_dims(&[("queries", queries.dim()), ("gallery", gallery.dim())])?;
    let (nq, ng) = (queries.nrows(), gallery.nrows());
    let k = k.min(ng);
    let (gallery_stat, csls_k) = match scoring {
        Scoring::Csls { k } => (Stat::MeanTopK(k), Some(k)),
        Scoring::InvertedSoftmax { beta } => (Stat::LogSumExp(beta), None),
        Scoring::Cosine => (Stat::MeanTopK(1), None), // not reached from `rank`
    };
    // r_q from the candidates: its bank is the gallery itself (needs m >= its k).
    let m = m.max(k).max(csls_k.unwrap_or(0)).min(ng);

    let mut cands: Vec<Vec<(usize, f32)>> = Vec::with_capacity(nq);
    let mut acc = ColAcc::new(gallery_stat, ng);
    for start in (0..nq).step_by(BLOCK) {
        let end = (start + BLOCK).min(nq);
        let block = cosines(queries.slice(s![start..end, ..]), gallery);
        let data = row_major(&block);
        cands.par_extend(
            data.par_chunks_exact(ng)
                .map(|row| select(row, m, |_, c| c)),
        );
        acc.update(data, ng);
    }
    let gp = acc.finish();
    let qp = match csls_k {
        Some(kc) => cands
            .iter()
            .map(|c| {
                let mut t = KBest::new(kc);
                c.iter().take(kc).for_each(|&(_, v)| t.push(v));
                t.mean()
            })
            .collect(),
        None => Array1::zeros(nq),
    };
    // Smallest gallery penalty: a non-candidate scores at most score(c_m, qp, min_gp).
    let gp_min = gp
        .iter()
        .copied()
        .filter(|v| !v.is_nan())
        .fold(f32::INFINITY, f32::min);
    let ranked: Vec<Option<Vec<(usize, f32)>>> = cands
        .par_iter()
        .enumerate()
        .map(|(i, c)| {
            let best = select_pairs(
                c.iter()
                    .map(|&(j, cos)| (j, score(cos, scoring, qp[i], gp[j]))),
                k,
            );
            let complete = c.len() == ng;
            let certified = match (c.last(), best.get(k - 1)) {
                (Some(&(_, c_m)), Some(&(_, kth))) => kth > score(c_m, scoring, qp[i], gp_min),
                _ => false,
            };
            (complete || certified).then_some(best)
        })
        .collect();
    let redo: Vec<usize> = (0..nq).filter(|&i| ranked[i].is_none()).collect();
    let p = Penalties {
        query: qp,
        gallery: gp,
    };
    let mut redone = Vec::new();
    if !redo.is_empty() {
        let sub = Penalties {
            query: p.query.select(Axis(0), &redo),
            gallery: p.gallery.clone(),
        };
        let sub_q = queries.select(Axis(0), &redo);
        redone = top_k_scored(sub_q.view(), gallery, k, scoring, &sub);
    }
    let mut redone = redone.into_iter();
    let top = ranked
        .into_iter()
        .map(|r| r.or_else(|| redone.next()).unwrap_or_default())
        .collect();
    Ok((top, p, redo.len()))
}

/// Corrected scores for ranking both ways, from one rows × cols cosine matrix whose two sets are
/// also the banks (held-out evaluation: captions × images).
#[derive(Debug, Clone, PartialEq)]
pub struct BothWays {
    /// Row items are the queries: rank row `i` over the columns (e.g. text → image).
    pub row_queries: Array2<f32>,
    /// Column items are the queries: rank column `j` over the rows (e.g. image → text). Same
    /// rows × cols layout as the input.
    pub col_queries: Array2<f32>,
}

/// Both ranking directions from one cosine matrix (rows × cols), with the row set and the column
/// set as each other's banks. For cosine and CSLS the two matrices are identical (CSLS is
/// symmetric: `2·cos − r_row − r_col`); inverted softmax is not: `row_queries` normalises each
/// column over the rows, `col_queries` each row over the columns. Use `row_queries` for the
/// row→column numbers and `col_queries` for the column→row ones (e.g. two calls of a metric that
/// reads rows for one direction and columns for the other). Empty input gives empty matrices.
pub fn both_ways(cos: ArrayView2<f32>, scoring: Scoring) -> Result<BothWays, ScoreError> {
    scoring.validate()?;
    let (nr, nc) = cos.dim();
    let mut row_queries = cos.to_owned();
    if nr == 0 || nc == 0 {
        return Ok(BothWays {
            col_queries: row_queries.clone(),
            row_queries,
        });
    }
    let std = cos.as_standard_layout();
    let data = row_major_view(&std);
    let stat = match scoring {
        Scoring::Cosine => {
            return Ok(BothWays {
                col_queries: row_queries.clone(),
                row_queries,
            })
        }
        Scoring::Csls { k } => Stat::MeanTopK(k),
        Scoring::InvertedSoftmax { beta } => Stat::LogSumExp(beta),
    };
    let per_row = Array1::from(row_stats(data, nc, stat));
    let mut acc = ColAcc::new(stat, nc);
    acc.update(data, nc);
    let per_col = acc.finish();
    match scoring {
        Scoring::InvertedSoftmax { .. } => {
            let zr = Array1::zeros(nr);
            let zc = Array1::zeros(nc);
            let mut col_queries = row_queries.clone();
            apply(&mut row_queries, scoring, &zr, &per_col);
            apply(&mut col_queries, scoring, &per_row, &zc);
            Ok(BothWays {
                row_queries,
                col_queries,
            })
        }
        _ => {
            apply(&mut row_queries, scoring, &per_row, &per_col);
            Ok(BothWays {
                col_queries: row_queries.clone(),
                row_queries,
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// A per-item statistic over an item's similarities to a bank.
#[derive(Debug, Clone, Copy)]
enum Stat {
    /// Mean of the k largest (fewer if the bank is smaller; NaN/−∞ skipped; none → 0).
    MeanTopK(usize),
    /// logsumexp of β·cos (NaN skipped; empty → 0).
    LogSumExp(f32),
}

/// The order of every ranking: higher score first, then the lower gallery index (galleries are
/// kept in id order, so this is the lower id: see the module docs of [`super`]).
#[inline]
pub fn better(a: (usize, f32), b: (usize, f32)) -> bool {
    a.1 > b.1 || (a.1 == b.1 && a.0 < b.0)
}

/// The k best of one row after mapping each cosine through `f` (sorted insertion buffer; NaN →
/// −∞). `k >= 1`.
#[inline]
fn select(row: &[f32], k: usize, f: impl Fn(usize, f32) -> f32) -> Vec<(usize, f32)> {
    select_pairs(row.iter().enumerate().map(|(j, &c)| (j, f(j, c))), k)
}

/// The k best (index, score) pairs under `better`, whatever the visiting order. `k >= 1`.
#[inline]
pub(crate) fn select_pairs(
    items: impl Iterator<Item = (usize, f32)>,
    k: usize,
) -> Vec<(usize, f32)> {
    let mut best: Vec<(usize, f32)> = Vec::with_capacity(k + 1);
    for (j, v) in items {
        let v = if v.is_nan() { f32::NEG_INFINITY } else { v };
        if best.len() == k && !better((j, v), best[k - 1]) {
            continue;
        }
        let pos = best
            .iter()
            .position(|&b| better((j, v), b))
            .unwrap_or(best.len());
        best.insert(pos, (j, v));
        best.truncate(k);
    }
    best
}

/// `a · bᵀ` in standard (row-major) layout, every entry through the one fixed float path
/// ([`crate::kernel`]): the same pair gets the same bits in any block and any command.
fn cosines(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    crate::kernel::dots(a, b)
}

fn row_major(m: &Array2<f32>) -> &[f32] {
    m.as_slice()
        .expect("cosines() returns standard layout by construction")
}

fn row_major_view<'a>(m: &'a ndarray::CowArray<'_, f32, ndarray::Ix2>) -> &'a [f32] {
    m.as_slice()
        .expect("as_standard_layout() is standard layout by construction")
}

/// `m[i, j] = score(m[i, j], scoring, qp[i], gp[j])`.
fn apply(m: &mut Array2<f32>, scoring: Scoring, qp: &Array1<f32>, gp: &Array1<f32>) {
    if scoring == Scoring::Cosine {
        return;
    }
    Zip::indexed(m).par_for_each(|(i, j), v| *v = score(*v, scoring, qp[i], gp[j]));
}

fn check_penalties(scoring: Scoring, p: &Penalties, nq: usize, ng: usize) {
    if scoring != Scoring::Cosine {
        assert!(
            p.query.len() == nq && p.gallery.len() == ng,
            "penalties for {} queries × {} gallery rows used with {nq} × {ng}",
            p.query.len(),
            p.gallery.len()
        );
    }
}

/// All non-empty inputs must have the same row length (empty ones may have any).
pub(crate) fn check_dims(named: &[(&str, (usize, usize))]) -> Result<(), ScoreError> {
    let mut dim: Option<(&str, usize)> = None;
    for &(name, (rows, cols)) in named {
        if rows == 0 {
            continue;
        }
        match dim {
            None => dim = Some((name, cols)),
            Some((first, d)) if d != cols => {
                return Err(ScoreError::Invalid(format!(
                    "{first} rows have {d} dimensions but {name} rows have {cols}"
                )))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The statistic of every row of `items` over its similarities to all of `bank`: each item's
/// value comes from its own full row of similarities, in bank order, so it does not depend on
/// which other items are scored with it (one gallery image gets the same penalty in `serve` and in
/// `rank`). Memory: `BLOCK × bank` similarities.
fn item_stat(items: ArrayView2<f32>, bank: ArrayView2<f32>, stat: Stat) -> Array1<f32> {
    let (n, m) = (items.nrows(), bank.nrows());
    if n == 0 || m == 0 {
        return Array1::zeros(n);
    }
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(BLOCK) {
        let end = (start + BLOCK).min(n);
        let block = cosines(items.slice(s![start..end, ..]), bank);
        out.extend(row_stats(row_major(&block), m, stat));
    }
    Array1::from(out)
}

/// Both CSLS-style sides from one pass over queries × gallery (banks = the sets themselves):
/// row statistics give the query side, column statistics the gallery side.
fn fused(queries: ArrayView2<f32>, gallery: ArrayView2<f32>, qs: Stat, gs: Stat) -> Penalties {
    let (nq, ng) = (queries.nrows(), gallery.nrows());
    if nq == 0 || ng == 0 {
        return Penalties::zeros(nq, ng);
    }
    let mut query = Vec::with_capacity(nq);
    let mut acc = ColAcc::new(gs, ng);
    for start in (0..nq).step_by(BLOCK) {
        let end = (start + BLOCK).min(nq);
        let block = cosines(queries.slice(s![start..end, ..]), gallery);
        let data = row_major(&block);
        query.extend(row_stats(data, ng, qs));
        acc.update(data, ng);
    }
    Penalties {
        query: Array1::from(query),
        gallery: acc.finish(),
    }
}

/// The statistic of each row of a row-major block with `ncols >= 1` columns.
fn row_stats(data: &[f32], ncols: usize, stat: Stat) -> Vec<f32> {
    data.par_chunks_exact(ncols)
        .map(|row| match stat {
            Stat::MeanTopK(k) => {
                let mut buf = KBest::new(k);
                row.iter().for_each(|&v| buf.push(v));
                buf.mean()
            }
            Stat::LogSumExp(beta) => {
                let m = row
                    .iter()
                    .map(|&c| beta * c)
                    .filter(|v| !v.is_nan())
                    .fold(f32::NEG_INFINITY, f32::max);
                if m == f32::NEG_INFINITY {
                    return 0.0;
                }
                let s: f64 = row
                    .iter()
                    .map(|&c| beta * c)
                    .filter(|v| !v.is_nan())
                    .map(|v| f64::from((v - m).exp()))
                    .sum();
                lse_finish(m, s)
            }
        })
        .collect()
}

fn lse_finish(m: f32, s: f64) -> f32 {
    if m == f32::NEG_INFINITY {
        0.0
    } else {
        (f64::from(m) + s.ln()) as f32
    }
}

/// The k largest values seen (descending), for one item.
struct KBest {
    k: usize,
    vals: Vec<f32>,
}

impl KBest {
    fn new(k: usize) -> Self {
        KBest {
            k,
            // Reserve little up front: k is a user's flag, the buffer grows only as far as used.
            vals: Vec::with_capacity(k.min(64) + 1),
        }
    }

    /// A value must beat this to enter: −∞ until full, +∞ for `k = 0`.
    #[inline]
    fn threshold(&self) -> f32 {
        match self.k.checked_sub(1) {
            None => f32::INFINITY,
            Some(last) => self.vals.get(last).copied().unwrap_or(f32::NEG_INFINITY),
        }
    }

    /// NaN and −∞ never enter (`v > threshold` is false for them).
    #[inline]
    fn push(&mut self, v: f32) {
        if v > self.threshold() {
            let pos = self
                .vals
                .iter()
                .position(|&b| v > b)
                .unwrap_or(self.vals.len());
            self.vals.insert(pos, v);
            self.vals.truncate(self.k);
        }
    }

    fn mean(&self) -> f32 {
        if self.vals.is_empty() {
            return 0.0;
        }
        let sum: f64 = self.vals.iter().map(|&v| f64::from(v)).sum();
        (sum / self.vals.len() as f64) as f32
    }
}

/// Running per-column statistics over row blocks (the column items' similarities to the
/// bank rows seen so far). State is O(columns × k), independent of the bank size.
enum ColAcc {
    KBest {
        bufs: Vec<KBest>,
        /// Cached `bufs[c].threshold()`, so rejecting a value reads one contiguous array.
        thr: Vec<f32>,
    },
    Lse {
        beta: f32,
        max: Vec<f32>,
        sum: Vec<f64>,
    },
}

impl ColAcc {
    fn new(stat: Stat, n: usize) -> Self {
        match stat {
            Stat::MeanTopK(k) => ColAcc::KBest {
                bufs: (0..n).map(|_| KBest::new(k)).collect(),
                thr: vec![f32::NEG_INFINITY; n],
            },
            Stat::LogSumExp(beta) => ColAcc::Lse {
                beta,
                max: vec![f32::NEG_INFINITY; n],
                sum: vec![0.0; n],
            },
        }
    }

    /// Fold in a row-major block with `ncols >= 1` columns (one per item).
    fn update(&mut self, data: &[f32], ncols: usize) {
        let rows = || data.chunks_exact(ncols);
        match self {
            ColAcc::KBest { bufs, thr } => bufs
                .par_chunks_mut(COL_CHUNK)
                .zip(thr.par_chunks_mut(COL_CHUNK))
                .enumerate()
                .for_each(|(t, (bufs, thr))| {
                    let c0 = t * COL_CHUNK;
                    for row in rows() {
                        let seg = &row[c0..c0 + bufs.len()];
                        for ((b, th), &v) in bufs.iter_mut().zip(thr.iter_mut()).zip(seg) {
                            if v > *th {
                                b.push(v);
                                *th = b.threshold();
                            }
                        }
                    }
                }),
            ColAcc::Lse { beta, max, sum } => {
                let beta = *beta;
                max.par_chunks_mut(COL_CHUNK)
                    .zip(sum.par_chunks_mut(COL_CHUNK))
                    .enumerate()
                    .for_each(|(t, (max, sum))| {
                        let c0 = t * COL_CHUNK;
                        let w = max.len();
                        // New running max per column, then rescale the old sums once.
                        let mut new_max = max.to_vec();
                        for row in rows() {
                            for (m, &c) in new_max.iter_mut().zip(&row[c0..c0 + w]) {
                                let v = beta * c;
                                if v > *m {
                                    *m = v;
                                }
                            }
                        }
                        for ((m, s), &nm) in max.iter_mut().zip(sum.iter_mut()).zip(&new_max) {
                            if nm > *m {
                                *s *= f64::from((*m - nm).exp());
                                *m = nm;
                            }
                        }
                        for row in rows() {
                            for ((s, &m), &c) in
                                sum.iter_mut().zip(max.iter()).zip(&row[c0..c0 + w])
                            {
                                let v = beta * c;
                                if m != f32::NEG_INFINITY && !v.is_nan() {
                                    *s += f64::from((v - m).exp());
                                }
                            }
                        }
                    });
            }
        }
    }

    fn finish(self) -> Array1<f32> {
        match self {
            ColAcc::KBest { bufs, .. } => bufs.iter().map(KBest::mean).collect(),
            ColAcc::Lse { max, sum, .. } => max
                .iter()
                .zip(&sum)
                .map(|(&m, &s)| lse_finish(m, s))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use ndarray::{array, Array2};

    /// The two ways of ranking this module offers, chosen as the scorer does: the sets as their
    /// own banks ([`rank_sets`]), or separate banks ([`penalties`] then [`top_k_scored`]).
    fn rank(
        q: ArrayView2<f32>,
        g: ArrayView2<f32>,
        k: usize,
        scoring: Scoring,
        qb: ArrayView2<f32>,
        gb: ArrayView2<f32>,
    ) -> Result<(Ranking, Penalties), ScoreError> {
        let same =
            |a: ArrayView2<f32>, b: ArrayView2<f32>| a.as_ptr() == b.as_ptr() && a.dim() == b.dim();
        if same(qb, q) && same(gb, g) {
            return rank_sets(q, g, k, scoring);
        }
        let p = penalties(scoring, q, g, qb, gb)?;
        Ok((top_k_scored(q, g, k, scoring, &p), p))
    }

    /// Random unit rows from a 64-bit LCG (uniform in the cube, then normalised).
    fn unit_rows(n: usize, d: usize, seed: u64) -> Array2<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut m = Array2::from_shape_fn((n, d), |_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        });
        for mut row in m.rows_mut() {
            let norm = row.dot(&row).sqrt();
            row /= norm;
        }
        m
    }

    /// Element-wise |a − b| <= eps over two same-shaped arrays (any dimension).
    fn assert_all_close<'a, 'b, D: ndarray::Dimension>(
        a: impl Into<ndarray::ArrayView<'a, f32, D>>,
        b: impl Into<ndarray::ArrayView<'b, f32, D>>,
        eps: f32,
    ) {
        let (a, b) = (a.into(), b.into());
        assert_eq!(a.shape(), b.shape());
        for (x, y) in a.iter().zip(b.iter()) {
            assert!((x - y).abs() <= eps, "{x} vs {y}\n{a}\n{b}");
        }
    }

    fn ids(top: &[(usize, f32)]) -> Vec<usize> {
        top.iter().map(|x| x.0).collect()
    }

    /// Dense top-k oracle: full sort of each row by (score desc, index asc), NaN as −∞.
    fn dense_top_k(m: &Array2<f32>, k: usize) -> Vec<Vec<(usize, f32)>> {
        m.rows()
            .into_iter()
            .map(|row| {
                let mut v: Vec<(usize, f32)> = row
                    .iter()
                    .map(|&x| if x.is_nan() { f32::NEG_INFINITY } else { x })
                    .enumerate()
                    .collect();
                v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                v.truncate(k);
                v
            })
            .collect()
    }

    /// Penalty oracle in f64: mean of the k largest similarities, or logsumexp of β·cos.
    fn naive_stat(items: &Array2<f32>, bank: &Array2<f32>, stat: Stat) -> Vec<f64> {
        items
            .rows()
            .into_iter()
            .map(|x| {
                let mut sims: Vec<f64> = bank
                    .rows()
                    .into_iter()
                    .map(|b| {
                        x.iter()
                            .zip(b)
                            .map(|(&p, &q)| f64::from(p) * f64::from(q))
                            .sum()
                    })
                    .collect();
                match stat {
                    Stat::MeanTopK(k) => {
                        sims.sort_by(|a, b| b.total_cmp(a));
                        let n = k.min(sims.len());
                        sims[..n].iter().sum::<f64>() / n as f64
                    }
                    Stat::LogSumExp(beta) => {
                        let v: Vec<f64> = sims.iter().map(|s| f64::from(beta) * s).collect();
                        let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                        m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
                    }
                }
            })
            .collect()
    }

    /// Blocked top-k equals the dense oracle: scores to 1e-5, and every returned index is one
    /// the oracle could return (its dense score matches and reaches the k-th best, up to 1e-5,
    /// so only near-ties at the boundary may be swapped).
    fn assert_top_k_matches(top: &[Vec<(usize, f32)>], dense: &Array2<f32>, k: usize) {
        let oracle = dense_top_k(dense, k);
        assert_eq!(top.len(), oracle.len());
        let mut exact = 0;
        for (i, (got, want)) in top.iter().zip(&oracle).enumerate() {
            assert_eq!(got.len(), want.len(), "query {i}");
            let kth = want.last().map_or(f32::NEG_INFINITY, |x| x.1);
            for (&(j, s), &(_, ws)) in got.iter().zip(want) {
                assert_abs_diff_eq!(s, ws, epsilon = 1e-5);
                assert_abs_diff_eq!(s, dense[[i, j]], epsilon = 1e-5);
                assert!(
                    dense[[i, j]] >= kth - 1e-5,
                    "query {i}: {j} is not a top-{k} item"
                );
            }
            let mut a = ids(got);
            let mut b = ids(want);
            a.sort_unstable();
            b.sort_unstable();
            exact += usize::from(a == b);
        }
        // Random data has (almost) no near-ties: the sets should agree essentially everywhere.
        assert!(
            exact + 2 >= top.len(),
            "{exact} of {} sets equal",
            top.len()
        );
    }

    #[test]
    fn names_and_validation() {
        assert_eq!(Scoring::Cosine.name(), "cosine");
        assert_eq!(Scoring::Csls { k: 10 }.name(), "csls(k=10)");
        assert_eq!(
            Scoring::InvertedSoftmax { beta: 10.0 }.to_string(),
            "inverted-softmax(beta=10)"
        );
        assert_eq!(
            Scoring::InvertedSoftmax { beta: 0.5 }.to_string(),
            "inverted-softmax(beta=0.5)"
        );
        assert!(Scoring::Cosine.validate().is_ok());
        assert!(Scoring::Csls { k: 1 }.validate().is_ok());
        assert!(Scoring::Csls { k: 0 }.validate().is_err());
        for beta in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            assert!(
                Scoring::InvertedSoftmax { beta }.validate().is_err(),
                "{beta}"
            );
        }
        let q = array![[1.0f32, 0.0]];
        let bad = penalties(
            Scoring::Csls { k: 0 },
            q.view(),
            q.view(),
            q.view(),
            q.view(),
        );
        assert!(bad.is_err());
        let three = array![[1.0f32, 0.0, 0.0]];
        let csls = Scoring::Csls { k: 1 };
        assert!(penalties(csls, q.view(), q.view(), three.view(), q.view()).is_err());
    }

    /// The hub example, 3-D, k = 2, banks = the query set and the gallery themselves.
    ///
    /// q0 = (4,1,8)/9, q1 = (4,8,1)/9, q2 = (4,0,3)/5
    /// g0 = (7,4,4)/9 (the hub), g1 = (1,0,0), g2 = (0,3,4)/5, g3 = (0,4,3)/5
    ///
    /// cosines      g0              g1            g2             g3
    ///   q0     64/81 = .790123  4/9 = .444444  7/9 = .777778  28/45 = .622222
    ///   q1     64/81 = .790123  4/9 = .444444  28/45 = .622222  7/9 = .777778
    ///   q2      8/9 = .888889   4/5 = .8       12/25 = .48    9/25 = .36
    /// Cosine: g0 is first for every query (q0: g0 g2 g3 g1, q1: g0 g3 g2 g1, q2: g0 g1 g2 g3).
    ///
    /// r_q (mean of the 2 best in the row):  q0, q1: (64/81 + 63/81)/2 = 127/162 = .783951
    ///                                        q2: (8/9 + 4/5)/2 = 38/45 = .844444
    /// r_g (mean of the 2 best in the column): g0: (72/81 + 64/81)/2 = 68/81 = .839506
    ///     g1: (4/5 + 4/9)/2 = 28/45 = .622222, g2 = g3: (7/9 + 28/45)/2 = 7/10
    ///
    /// CSLS = 2cos − r_q − r_g:
    ///   q0: g0 −7/162 = −.043210, g1 −419/810 = −.517284, g2 29/405 = .071605, g3 −97/405 = −.239506
    ///   q1: g0 −.043210, g1 −.517284, g2 −.239506, g3 .071605
    ///   q2: g0 38/405 = .093827, g1 2/15 = .133333, g2 −263/450 = −.584444, g3 −371/450 = −.824444
    /// CSLS ranking: q0: g2 g0 g3 g1, q1: g3 g0 g2 g1, q2: g1 g0 g2 g3 — the hub drops to second.
    #[test]
    fn csls_demotes_the_hub() {
        let q = array![
            [4.0f32 / 9.0, 1.0 / 9.0, 8.0 / 9.0],
            [4.0 / 9.0, 8.0 / 9.0, 1.0 / 9.0],
            [0.8, 0.0, 0.6]
        ];
        let g = array![
            [7.0f32 / 9.0, 4.0 / 9.0, 4.0 / 9.0],
            [1.0, 0.0, 0.0],
            [0.0, 0.6, 0.8],
            [0.0, 0.8, 0.6]
        ];
        let csls = Scoring::Csls { k: 2 };
        let cos_top = top_k_scored(
            q.view(),
            g.view(),
            4,
            Scoring::Cosine,
            &Penalties::default(),
        );
        let cos_ids: Vec<Vec<usize>> = cos_top.iter().map(|t| ids(t)).collect();
        assert_eq!(
            cos_ids,
            vec![vec![0, 2, 3, 1], vec![0, 3, 2, 1], vec![0, 1, 2, 3]]
        );

        let want_rq = [127.0 / 162.0, 127.0 / 162.0, 38.0 / 45.0];
        let want_rg = [68.0 / 81.0, 28.0 / 45.0, 0.7, 0.7];
        let want = [
            [-7.0 / 162.0, -419.0 / 810.0, 29.0 / 405.0, -97.0 / 405.0],
            [-7.0 / 162.0, -419.0 / 810.0, -97.0 / 405.0, 29.0 / 405.0],
            [38.0 / 405.0, 2.0 / 15.0, -263.0 / 450.0, -371.0 / 450.0],
        ];
        let (qo, go) = (q.to_owned(), g.to_owned()); // separate banks: the unfused path
        for (qb, gb) in [(q.view(), g.view()), (qo.view(), go.view())] {
            let p = penalties(csls, q.view(), g.view(), qb, gb).unwrap();
            for (a, b) in p.query.iter().zip(want_rq) {
                assert_abs_diff_eq!(*a, b as f32, epsilon = 1e-6);
            }
            for (a, b) in p.gallery.iter().zip(want_rg) {
                assert_abs_diff_eq!(*a, b as f32, epsilon = 1e-6);
            }
            let m = score_matrix(q.view(), g.view(), csls, &p);
            for ((i, j), v) in m.indexed_iter() {
                assert_abs_diff_eq!(*v, want[i][j] as f32, epsilon = 1e-6);
            }
            let top = top_k_scored(q.view(), g.view(), 4, csls, &p);
            let got: Vec<Vec<usize>> = top.iter().map(|t| ids(t)).collect();
            assert_eq!(
                got,
                vec![vec![2, 0, 3, 1], vec![3, 0, 2, 1], vec![1, 0, 2, 3]]
            );
            for (i, t) in top.iter().enumerate() {
                for &(j, s) in t {
                    assert_eq!(s, m[[i, j]]);
                }
            }
            let (one, p1) = rank(q.view(), g.view(), 1, csls, qb, gb).unwrap();
            assert_eq!(one, top.iter().map(|t| t[..1].to_vec()).collect::<Vec<_>>());
            assert_all_close(&p1.query, &p.query, 1e-6);
            assert_all_close(&p1.gallery, &p.gallery, 1e-6);
        }
        // The split shown to a user: 2 × .790123 − (.783951 + .839506) = −.043210.
        let b = breakdown(64.0 / 81.0, csls, 127.0 / 162.0, 68.0 / 81.0);
        assert_eq!(b.scale, 2.0);
        assert_abs_diff_eq!(b.score, -7.0 / 162.0, epsilon = 1e-6);
        assert_eq!(breakdown(0.5, Scoring::Cosine, 3.0, 4.0).score, 0.5);
    }

    /// q0 = (1,0), q1 = (0,1); g0 = (1,0), g1 = (.6,.8); bank = the queries; β = 1.
    /// cos: q0g0 = 1, q0g1 = .6, q1g0 = 0, q1g1 = .8
    /// gallery penalties: g0: ln(e¹ + e⁰) = 1.3132617, g1: ln(e^.6 + e^.8) = 1.3981389
    /// log-scores: q0g0 = −0.3132617, q0g1 = −0.7981389, q1g0 = −1.3132617, q1g1 = −0.5981389
    /// probabilities: e/(e+1) = .7310586, 1/(1+e^.2) = .4501660, .2689414, .5498340
    /// β = 1000: penalties 1000 + ln(1 + e⁻¹⁰⁰⁰) = 1000 and 800 + ln(1 + e⁻²⁰⁰) = 800, so the
    /// log-scores are 0, −200, −1000, 0 (exp(1000) itself overflows f32 and f64).
    #[test]
    fn inverted_softmax_by_hand_and_no_overflow() {
        let q = array![[1.0f32, 0.0], [0.0, 1.0]];
        let g = array![[1.0f32, 0.0], [0.6, 0.8]];
        let none = Array2::<f32>::zeros((0, 2));
        let is1 = Scoring::InvertedSoftmax { beta: 1.0 };
        let p = penalties(is1, q.view(), g.view(), q.view(), none.view()).unwrap();
        assert_eq!(p.query, array![0.0f32, 0.0]);
        assert_abs_diff_eq!(p.gallery[0], 1.3132617, epsilon = 1e-6);
        assert_abs_diff_eq!(p.gallery[1], 1.3981389, epsilon = 1e-6);
        let m = score_matrix(q.view(), g.view(), is1, &p);
        let want = array![[-0.3132617f32, -0.7981389], [-1.3132617, -0.5981389]];
        let prob = array![[0.7310586f32, 0.450166], [0.2689414, 0.549834]];
        for ((ij, v), w) in m.indexed_iter().zip(want.iter()) {
            assert_abs_diff_eq!(*v, *w, epsilon = 1e-6);
            assert_abs_diff_eq!(v.exp(), prob[ij], epsilon = 1e-6);
        }
        let top = top_k_scored(q.view(), g.view(), 2, is1, &p);
        assert_eq!(
            top.iter().map(|t| ids(t)).collect::<Vec<_>>(),
            [[0, 1], [1, 0]]
        );

        let is1000 = Scoring::InvertedSoftmax { beta: 1000.0 };
        assert!((1000.0f32).exp().is_infinite() && (1000.0f64).exp().is_infinite());
        let p = penalties(is1000, q.view(), g.view(), q.view(), none.view()).unwrap();
        assert_abs_diff_eq!(p.gallery[0], 1000.0, epsilon = 1e-3);
        assert_abs_diff_eq!(p.gallery[1], 800.0, epsilon = 1e-3);
        let m = score_matrix(q.view(), g.view(), is1000, &p);
        let want = array![[0.0f32, -200.0], [-1000.0, 0.0]];
        for (v, w) in m.iter().zip(want.iter()) {
            assert!(v.is_finite());
            assert_abs_diff_eq!(*v, *w, epsilon = 1e-3);
        }
        // The column-accumulator path (bank larger than the gallery) agrees.
        let bank = array![[1.0f32, 0.0], [0.0, 1.0], [1.0, 0.0]];
        let one = g.slice(s![..1, ..]).to_owned();
        let p = penalties(is1000, q.view(), one.view(), bank.view(), none.view()).unwrap();
        // g0 against (1,0), (0,1), (1,0): 1000 + ln(2 + e⁻¹⁰⁰⁰) = 1000.6931472
        assert_abs_diff_eq!(p.gallery[0], 1000.6931, epsilon = 1e-3);
    }

    /// One query q = (.6,.8), gallery g0 = (1,0), g1 = (0,1), CSLS k = 1.
    /// Query bank A = {(1,0)}: r_g0 = 1, r_g1 = 0.   Query bank B = {(0,1)}: r_g0 = 0, r_g1 = 1.
    /// Gallery bank = the gallery: r_q = max(.6, .8) = .8; gallery bank C = {(.8,.6), (1,0)}:
    /// r_q = max(.96, .6) = .96.
    /// With A: g0 = 1.2 − .8 − 1 = −.6, g1 = 1.6 − .8 − 0 = .8 → g1 first.
    /// With B: g0 = 1.2 − .8 − 0 = .4, g1 = 1.6 − .8 − 1 = −.2 → g0 first.
    /// Inverted softmax β = 1, bank A: ln e¹ = 1, ln e⁰ = 0; bank B: ln(e⁰) = 0... and with
    /// bank A ∪ B = {(1,0), (0,1)}: both ln(e + 1) = 1.3132617.
    #[test]
    fn bank_choice_matters() {
        let q = array![[0.6f32, 0.8]];
        let g = array![[1.0f32, 0.0], [0.0, 1.0]];
        let a = array![[1.0f32, 0.0]];
        let b = array![[0.0f32, 1.0]];
        let c = array![[0.8f32, 0.6], [1.0, 0.0]];
        let csls = Scoring::Csls { k: 1 };
        let pa = penalties(csls, q.view(), g.view(), a.view(), g.view()).unwrap();
        let pb = penalties(csls, q.view(), g.view(), b.view(), g.view()).unwrap();
        assert_abs_diff_eq!(pa.query[0], 0.8, epsilon = 1e-6);
        assert_all_close(&pa.gallery, &array![1.0f32, 0.0], 1e-6);
        assert_all_close(&pb.gallery, &array![0.0f32, 1.0], 1e-6);
        let ta = top_k_scored(q.view(), g.view(), 2, csls, &pa);
        let tb = top_k_scored(q.view(), g.view(), 2, csls, &pb);
        assert_eq!(ids(&ta[0]), [1, 0]);
        assert_abs_diff_eq!(ta[0][0].1, 0.8, epsilon = 1e-6);
        assert_abs_diff_eq!(ta[0][1].1, -0.6, epsilon = 1e-6);
        assert_eq!(ids(&tb[0]), [0, 1]);
        assert_abs_diff_eq!(tb[0][0].1, 0.4, epsilon = 1e-6);
        assert_abs_diff_eq!(tb[0][1].1, -0.2, epsilon = 1e-6);
        // The gallery-modality bank moves only the query constant, never the order.
        let pc = penalties(csls, q.view(), g.view(), a.view(), c.view()).unwrap();
        assert_abs_diff_eq!(pc.query[0], 0.96, epsilon = 1e-6);
        let tc = top_k_scored(q.view(), g.view(), 2, csls, &pc);
        assert_eq!(ids(&tc[0]), [1, 0]);
        assert_abs_diff_eq!(tc[0][0].1, 0.8 - 0.16, epsilon = 1e-6);

        let is1 = Scoring::InvertedSoftmax { beta: 1.0 };
        let pa = penalties(is1, q.view(), g.view(), a.view(), c.view()).unwrap();
        let pb = penalties(is1, q.view(), g.view(), b.view(), c.view()).unwrap();
        let ab = ndarray::concatenate![Axis(0), a, b];
        let pab = penalties(is1, q.view(), g.view(), ab.view(), c.view()).unwrap();
        assert_all_close(&pa.gallery, &array![1.0f32, 0.0], 1e-6);
        assert_all_close(&pb.gallery, &array![0.0f32, 1.0], 1e-6);
        assert_all_close(&pab.gallery, &array![1.3132617f32, 1.3132617], 1e-6);
        assert_eq!(pa.query, array![0.0f32]);
    }

    /// A single query: gallery penalties computed once from a stored query-modality sample and
    /// reused; per query only r_q. Same as the all-in-one call, and as the f64 oracle.
    #[test]
    fn single_query_with_cached_gallery_penalties() {
        let g = unit_rows(300, 8, 31);
        let sample = unit_rows(200, 8, 32);
        let csls = Scoring::Csls { k: 10 };
        let gp = gallery_penalties(csls, g.view(), sample.view()).unwrap();
        for (a, b) in gp.iter().zip(naive_stat(&g, &sample, Stat::MeanTopK(10))) {
            assert_abs_diff_eq!(f64::from(*a), b, epsilon = 1e-6);
        }
        for seed in [33, 34] {
            let q = unit_rows(1, 8, seed);
            let p = Penalties {
                query: query_penalties(csls, q.view(), g.view()).unwrap(),
                gallery: gp.clone(),
            };
            let all = penalties(csls, q.view(), g.view(), sample.view(), g.view()).unwrap();
            for (a, b) in p.query.iter().zip(naive_stat(&q, &g, Stat::MeanTopK(10))) {
                assert_abs_diff_eq!(f64::from(*a), b, epsilon = 1e-6);
            }
            let top = top_k_scored(q.view(), g.view(), 10, csls, &p);
            assert_top_k_matches(&top, &score_matrix(q.view(), g.view(), csls, &all), 10);
        }
    }

    /// Blocked penalties and top-k against f64 / dense oracles on data larger than one block,
    /// for all scorings and every path: fused banks, and separate banks blocked on either side.
    #[test]
    fn blocked_equals_dense_on_random_data() {
        let (nq, ng, d) = (1300, 700, 32);
        let q = unit_rows(nq, d, 1);
        let g = unit_rows(ng, d, 2);
        let qb_big = unit_rows(1100, d, 3); // bank > gallery: column accumulator for r_g
        let gb_small = unit_rows(600, d, 4); // bank < queries: row statistics for r_q
        let qb_small = unit_rows(300, d, 5);
        let gb_big = unit_rows(2000, d, 6);
        let scorings = [
            Scoring::Cosine,
            Scoring::Csls { k: 10 },
            Scoring::InvertedSoftmax { beta: 10.0 },
        ];
        let banks = [
            (q.view(), g.view()),
            (qb_big.view(), gb_small.view()),
            (qb_small.view(), gb_big.view()),
        ];
        for scoring in scorings {
            for (bi, &(qb, gb)) in banks.iter().enumerate() {
                let p = penalties(scoring, q.view(), g.view(), qb, gb).unwrap();
                let (qs, gs) = match scoring {
                    Scoring::Cosine => (None, None),
                    Scoring::Csls { k } => (Some(Stat::MeanTopK(k)), Some(Stat::MeanTopK(k))),
                    Scoring::InvertedSoftmax { beta } => (None, Some(Stat::LogSumExp(beta))),
                };
                let check = |got: &Array1<f32>, items: &Array2<f32>, bank, stat: Option<Stat>| {
                    let want = match stat {
                        Some(st) => naive_stat(items, &bank, st),
                        None => vec![0.0; items.nrows()],
                    };
                    for (a, b) in got.iter().zip(&want) {
                        assert_abs_diff_eq!(f64::from(*a), *b, epsilon = 2e-5);
                    }
                };
                check(&p.query, &q, gb.to_owned(), qs);
                check(&p.gallery, &g, qb.to_owned(), gs);

                let dense = score_matrix(q.view(), g.view(), scoring, &p);
                for k in [1, 10, 50] {
                    let top = top_k_scored(q.view(), g.view(), k, scoring, &p);
                    assert_top_k_matches(&top, &dense, k);
                    let (ranked, pr) = rank(q.view(), g.view(), k, scoring, qb, gb).unwrap();
                    assert_top_k_matches(&ranked, &dense, k);
                    if scoring != Scoring::Cosine {
                        assert_all_close(&pr.query, &p.query, 1e-6);
                        assert_all_close(&pr.gallery, &p.gallery, 1e-6);
                    }
                }
                if scoring == Scoring::Cosine && bi == 0 {
                    // Plain cosine top-k is a full sort of each row under `better`.
                    let cos = cosines(q.view(), g.view());
                    let want: Ranking = cos
                        .rows()
                        .into_iter()
                        .map(|r| {
                            let mut v: Vec<(usize, f32)> = r.iter().copied().enumerate().collect();
                            v.sort_by(|&a, &b| {
                                if better(a, b) {
                                    std::cmp::Ordering::Less
                                } else {
                                    std::cmp::Ordering::Greater
                                }
                            });
                            v.truncate(10);
                            v
                        })
                        .collect();
                    assert_eq!(top_k_scored(q.view(), g.view(), 10, scoring, &p), want);
                }
            }
        }
    }

    /// The one-pass path's candidate check: with the minimum number of candidates many
    /// queries must be re-ranked, with many all are certified; both equal the two-step result.
    #[test]
    fn one_pass_check_and_fallback_agree_with_two_steps() {
        let q = unit_rows(700, 16, 7);
        let g = unit_rows(900, 16, 8);
        for scoring in [
            Scoring::Csls { k: 10 },
            Scoring::InvertedSoftmax { beta: 20.0 },
        ] {
            let p = penalties(scoring, q.view(), g.view(), q.view(), g.view()).unwrap();
            let dense = score_matrix(q.view(), g.view(), scoring, &p);
            let mut redos = Vec::new();
            for m in [5, 64, 900] {
                let (top, pr, redo) = rank_one_pass(q.view(), g.view(), 5, scoring, m).unwrap();
                // Same cosines (one float path); the inverted softmax's block-wise log-sum-exp
                // rounds differently from the row-wise one: equal to its last bits.
                assert_top_k_matches(&top, &dense, 5);
                assert_all_close(&pr.query, &p.query, 1e-5);
                assert_all_close(&pr.gallery, &p.gallery, 1e-5);
                redos.push(redo);
            }
            assert!(
                redos[0] > 0,
                "{scoring}: m = k must fail the check somewhere"
            );
            assert_eq!(redos[2], 0, "{scoring}: all candidates is always exact");
        }
    }

    #[test]
    fn ties_go_to_the_lower_index_and_nan_is_last() {
        let q = array![[1.0f32, 0.0]];
        let g = array![
            [0.0f32, 1.0],
            [1.0, 0.0],
            [f32::NAN, 0.0],
            [1.0, 0.0],
            [0.0, 1.0]
        ];
        for scoring in [Scoring::Cosine, Scoring::Csls { k: 1 }] {
            // Banks give every gallery item the same penalty, so ties stay ties.
            let p = Penalties::zeros(1, 5);
            let top = top_k_scored(q.view(), g.view(), 5, scoring, &p);
            assert_eq!(ids(&top[0]), [1, 3, 0, 4, 2]);
            assert_eq!(top[0][4].1, f32::NEG_INFINITY);
        }
    }

    #[test]
    fn small_banks_empty_inputs_and_k_zero() {
        let q = unit_rows(5, 4, 11);
        let g = unit_rows(6, 4, 12);
        let csls = Scoring::Csls { k: 10 };
        let is = Scoring::InvertedSoftmax { beta: 5.0 };
        // k larger than the banks: the mean over all of them.
        let p = penalties(csls, q.view(), g.view(), q.view(), g.view()).unwrap();
        let cos = q.dot(&g.t());
        for i in 0..5 {
            assert_abs_diff_eq!(p.query[i], cos.row(i).mean().unwrap(), epsilon = 1e-6);
        }
        for j in 0..6 {
            assert_abs_diff_eq!(p.gallery[j], cos.column(j).mean().unwrap(), epsilon = 1e-6);
        }

        let empty = Array2::<f32>::zeros((0, 4));
        let no_dims = Array2::<f32>::zeros((0, 0));
        for scoring in [Scoring::Cosine, csls, is] {
            // Empty banks: penalties 0, i.e. scaled cosine.
            for bank in [empty.view(), no_dims.view()] {
                let p = penalties(scoring, q.view(), g.view(), bank, bank).unwrap();
                assert_eq!(p, Penalties::zeros(5, 6));
                let m = score_matrix(q.view(), g.view(), scoring, &p);
                assert_all_close(&m, &(&cos * scoring.scale()), 1e-6);
                let (top, _) = rank(q.view(), g.view(), 3, scoring, bank, bank).unwrap();
                assert_top_k_matches(&top, &m, 3);
            }
            // No queries.
            let p = penalties(scoring, empty.view(), g.view(), empty.view(), g.view()).unwrap();
            assert_eq!((p.query.len(), p.gallery.len()), (0, 6));
            assert!(top_k_scored(empty.view(), g.view(), 3, scoring, &p).is_empty());
            assert_eq!(
                score_matrix(empty.view(), g.view(), scoring, &p).dim(),
                (0, 6)
            );
            let (top, _) =
                rank(empty.view(), g.view(), 3, scoring, empty.view(), g.view()).unwrap();
            assert!(top.is_empty());
            // No gallery: one empty list per query.
            let p = penalties(scoring, q.view(), no_dims.view(), q.view(), no_dims.view()).unwrap();
            assert_eq!((p.query.len(), p.gallery.len()), (5, 0));
            let top = top_k_scored(q.view(), no_dims.view(), 3, scoring, &p);
            assert_eq!(top, vec![Vec::new(); 5]);
            assert_eq!(
                score_matrix(q.view(), no_dims.view(), scoring, &p).dim(),
                (5, 0)
            );
            let (top, _) =
                rank(q.view(), empty.view(), 3, scoring, q.view(), empty.view()).unwrap();
            assert_eq!(top, vec![Vec::new(); 5]);
            // k = 0.
            let p = penalties(scoring, q.view(), g.view(), q.view(), g.view()).unwrap();
            assert_eq!(
                top_k_scored(q.view(), g.view(), 0, scoring, &p),
                vec![Vec::new(); 5]
            );
            let (top, _) = rank(q.view(), g.view(), 0, scoring, q.view(), g.view()).unwrap();
            assert_eq!(top, vec![Vec::new(); 5]);
            // both_ways on an empty matrix.
            let bw = both_ways(Array2::<f32>::zeros((0, 3)).view(), scoring).unwrap();
            assert_eq!(
                (bw.row_queries.dim(), bw.col_queries.dim()),
                ((0, 3), (0, 3))
            );
        }
    }

    /// Evaluation helper: from one texts × images cosine matrix, the same scores as ranking
    /// each direction with penalties() and score_matrix() (banks = the two sets).
    #[test]
    fn both_ways_matches_two_calls() {
        let t = unit_rows(50, 8, 21);
        let i = unit_rows(40, 8, 22);
        let cos = t.dot(&i.t());
        for scoring in [
            Scoring::Cosine,
            Scoring::Csls { k: 3 },
            Scoring::InvertedSoftmax { beta: 10.0 },
        ] {
            let bw = both_ways(cos.view(), scoring).unwrap();
            let p = penalties(scoring, t.view(), i.view(), t.view(), i.view()).unwrap();
            let t2i = score_matrix(t.view(), i.view(), scoring, &p);
            let p = penalties(scoring, i.view(), t.view(), i.view(), t.view()).unwrap();
            let i2t = score_matrix(i.view(), t.view(), scoring, &p);
            assert_all_close(&bw.row_queries, &t2i, 1e-5);
            assert_all_close(&bw.col_queries, i2t.t(), 1e-5);
            if scoring == (Scoring::InvertedSoftmax { beta: 10.0 }) {
                assert!((&bw.row_queries - &bw.col_queries)
                    .iter()
                    .any(|d| d.abs() > 1e-3));
            }
        }
        assert!(both_ways(cos.view(), Scoring::Csls { k: 0 }).is_err());
    }
}

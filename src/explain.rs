//! Why a caption and an image match: their cosine split exactly into one contribution per
//! caption term, plus a constant.
//!
//! Every map is linear up to the final L2 normalisation. With t the caption's text feature (the
//! word-vector mean(s), then the TF-IDF bag), μ and P the model's text mean and map, and x̂ the
//! image's projection (unit length),
//!
//! ```text
//! cos = Σ_j t_j·(P·x̂)_j / ‖(t − μ)·P‖  −  μ·P·x̂ / ‖(t − μ)·P‖
//! ```
//!
//! t is a sum over the caption's tokens (each one's share of the weighted mean) and bag terms
//! (each one's TF-IDF value), so each gets the part of the first sum its entries carry; the
//! second, the centring term, is the [`Explanation::offset`]. The parts add up to the cosine.
//! A hubness correction (CSLS, inverted softmax) is shown beside it, not spread over the terms:
//! `score = scale·cosine − query_penalty − gallery_penalty` ([`ScoredExplanation`]).
use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::retrieval::score::{Breakdown, Scoring};
use crate::retrieval::{Direction, ScoreError, Scorer};
use ndarray::{Array1, ArrayView1, Axis};
use std::collections::HashMap;

/// What a term of an explanation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TermKind {
    /// A jieba token, through its word vector(s) in the caption's mean.
    Token,
    /// A bag term: a jieba word (`w:`).
    Word,
    /// A bag term: a character (`c:`).
    Char,
    /// A bag term: a character bigram (`b:`).
    Bigram,
}

impl TermKind {
    /// Short label for tables: `token`, `word`, `char`, `bigram`.
    pub fn name(&self) -> &'static str {
        match self {
            TermKind::Token => "token",
            TermKind::Word => "word",
            TermKind::Char => "char",
            TermKind::Bigram => "bigram",
        }
    }
}

/// One term's part of the cosine.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Term {
    pub kind: TermKind,
    pub text: String,
    /// Its part of the cosine (a token repeated in the caption: all its occurrences together).
    pub contribution: f32,
    /// A token with no vector in any word-vector set in use (it contributes nothing).
    pub oov: bool,
    /// A token whose first-set vector is its characters' mean (out of vocabulary as a word).
    pub via_chars: bool,
}

/// A caption–image cosine, term by term: `cosine = Σ terms' contributions + offset`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Explanation {
    /// The cosine of the projected caption and image, as ranking computes it.
    pub cosine: f32,
    /// Tokens (word-vector part) and bag terms of the caption, largest |contribution| first.
    /// Bag terms outside the model's vocabulary contribute nothing and are not listed;
    /// out-of-vocabulary tokens are listed with contribution 0.
    pub terms: Vec<Term>,
    /// The centring term −μ·P·x̂ / ‖(t − μ)·P‖: the same for every caption of equal norm.
    pub offset: f32,
    /// The projected caption and image (unit length; the caption is zero if it projects to 0).
    #[serde(skip)]
    pub text_projection: Array1<f32>,
    #[serde(skip)]
    pub image_projection: Array1<f32>,
}

impl Explanation {
    /// Σ contributions + offset (equals `cosine` up to rounding).
    pub fn total(&self) -> f32 {
        (self
            .terms
            .iter()
            .map(|t| t.contribution as f64)
            .sum::<f64>()
            + self.offset as f64) as f32
    }
}

/// An explained cosine with the hubness correction beside it:
/// `score = scale·cosine.cosine − query_penalty − gallery_penalty` (cosine scoring: scale 1, no
/// penalties).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScoredExplanation {
    #[serde(serialize_with = "scoring_name")]
    pub scoring: Scoring,
    pub score: f32,
    pub cosine: Explanation,
    pub scale: f32,
    pub query_penalty: f32,
    pub gallery_penalty: f32,
}

fn scoring_name<S: serde::Serializer>(s: &Scoring, ser: S) -> std::result::Result<S::Ok, S::Error> {
    ser.serialize_str(&s.name())
}

impl ScoredExplanation {
    /// Put a correction beside an explanation: `b` is the scorer's split of the same pair
    /// ([`Scorer::breakdown`]), so the score is the one ranking computes.
    pub fn new(cosine: Explanation, scoring: Scoring, b: Breakdown) -> ScoredExplanation {
        ScoredExplanation {
            scoring,
            score: b.score,
            cosine,
            scale: b.scale,
            query_penalty: b.query_penalty,
            gallery_penalty: b.gallery_penalty,
        }
    }

    /// The correction: `score − cosine` (0 for cosine scoring).
    pub fn correction(&self) -> f32 {
        self.score - self.cosine.cosine
    }
}

/// Explain the cosine of `caption` and the image whose feature (as extracted, before the
/// model's image normalisation) is `image_feature`, through the model's embedder.
pub fn explain_pair(
    emb: &Embedder,
    caption: &str,
    image_feature: ArrayView1<f32>,
) -> Result<Explanation> {
    let (proj, enc) = (&emb.model().projection, emb.encoder());
    if image_feature.len() != proj.image_proj.nrows() {
        return Err(Error::Model(format!(
            "image feature has {} values, the model takes {}",
            image_feature.len(),
            proj.image_proj.nrows()
        )));
    }
    if enc.feature_dim() != proj.text_proj.nrows() {
        return Err(Error::Model(format!(
            "text features have {} values, the model takes {}: use the model's text encoder",
            enc.feature_dim(),
            proj.text_proj.nrows()
        )));
    }
    let x = proj
        .project_images(image_feature.insert_axis(Axis(0)))
        .index_axis_move(Axis(0), 0);
    // `features` is the source of truth for t; the parts only split it.
    let (t, _) = enc.features(&[caption.to_string()]);
    let y = proj.project_texts(t.view()).index_axis_move(Axis(0), 0);
    // The one float path of every score (ranking computes this very cosine).
    let cosine = crate::kernel::dot_view(y.view(), x.view());
    let parts = enc.caption_parts(caption);

    // g = P·x̂ and the norm ‖(t − μ)·P‖, in f64.
    let p = proj.text_proj.mapv(f64::from);
    let x64 = x.mapv(f64::from);
    let g = p.dot(&x64);
    let centred = (&t.row(0).mapv(f64::from) - &proj.text_mean.mapv(f64::from)).dot(&p);
    let norm = centred.dot(&centred).sqrt();
    let inv = if norm > 0.0 { 1.0 / norm } else { 0.0 };
    let dot = |v: &Array1<f32>, from: usize| -> f64 {
        v.iter()
            .zip(g.iter().skip(from))
            .map(|(&a, &b)| a as f64 * b)
            .sum()
    };

    let (d, d2) = (parts.dim, parts.second_dim);
    // Tokens: all occurrences of one token together, in order of first occurrence.
    let mut order: Vec<String> = Vec::new();
    let mut tokens: HashMap<String, (f64, bool, bool)> = HashMap::new();
    for tok in &parts.tokens {
        let c = tok.first.as_ref().map_or(0.0, |v| dot(v, 0))
            + tok.second.as_ref().map_or(0.0, |v| dot(v, d));
        let oov = tok.first.is_none() && tok.second.is_none();
        let e = tokens.entry(tok.text.clone()).or_insert_with(|| {
            order.push(tok.text.clone());
            (0.0, oov, tok.via_chars)
        });
        e.0 += c * inv;
    }
    let mut terms: Vec<Term> = order
        .into_iter()
        .map(|text| {
            let (c, oov, via_chars) = tokens[&text];
            Term {
                kind: TermKind::Token,
                text,
                contribution: c as f32,
                oov,
                via_chars,
            }
        })
        .collect();
    for b in &parts.bag {
        let (kind, text) = match b.term.split_once(':') {
            Some(("w", s)) => (TermKind::Word, s),
            Some(("c", s)) => (TermKind::Char, s),
            Some(("b", s)) => (TermKind::Bigram, s),
            _ => (TermKind::Word, b.term.as_str()),
        };
        terms.push(Term {
            kind,
            text: text.to_string(),
            contribution: (b.value as f64 * g[d + d2 + b.index] * inv) as f32,
            oov: false,
            via_chars: false,
        });
    }
    terms.sort_by(|a, b| b.contribution.abs().total_cmp(&a.contribution.abs()));
    let offset = -proj.text_mean.mapv(f64::from).dot(&g) * inv;
    Ok(Explanation {
        cosine,
        terms,
        offset: offset as f32,
        text_projection: y,
        image_projection: x,
    })
}

/// [`explain_pair`] with the correction of the scorer, as ranking computes it for a query that
/// arrives alone: the scorer must score single queries (cosine, or `--bank train`: one pair has
/// no sets to rank). `direction` says which side is the query.
pub fn explain_scored(
    emb: &Embedder,
    scorer: &Scorer,
    caption: &str,
    image_feature: ArrayView1<f32>,
    direction: Direction,
) -> Result<ScoredExplanation> {
    if !scorer.scores_single_queries() {
        return Err(ScoreError::NoSets(scorer.scoring()).into());
    }
    let e = explain_pair(emb, caption, image_feature)?;
    let (text, image) = (e.text_projection.view(), e.image_projection.view());
    let b = match direction {
        Direction::TextToImage => scorer.breakdown(direction, text, image)?,
        Direction::ImageToText => scorer.breakdown(direction, image, text)?,
    };
    Ok(ScoredExplanation::new(e, scorer.scoring(), b))
}

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
use crate::error::{Error, Result};
use crate::features::image::{self, ExtractOptions};
use crate::features::text::TextEncoder;
use crate::model::Model;
use crate::pipeline::{self, Bank, ScoreOptions, VectorFiles};
use crate::retrieval::score::{self, Scoring};
use ndarray::{Array1, ArrayView1, Axis};
use std::collections::HashMap;
use std::path::Path;

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

/// Which side of the pair is the query (matters for which penalty is which, and for the
/// inverted softmax, which is not symmetric).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum QuerySide {
    /// The caption is the query, the image a gallery item (task 1, text → image).
    #[default]
    Caption,
    /// The image is the query, the caption a gallery item (task 2, image → text).
    Image,
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
    /// Put a correction beside an explanation, through [`score::breakdown`] (so the score is
    /// the one ranking computes from the same cosine and penalties).
    pub fn new(
        cosine: Explanation,
        scoring: Scoring,
        query_penalty: f32,
        gallery_penalty: f32,
    ) -> ScoredExplanation {
        let b = score::breakdown(cosine.cosine, scoring, query_penalty, gallery_penalty);
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
/// model's image normalisation) is `image_feature`. `enc` must be the model's text encoder
/// ([`pipeline::model_text_encoder`]).
pub fn explain_pair(
    model: &Model,
    enc: &TextEncoder,
    caption: &str,
    image_feature: ArrayView1<f32>,
) -> Result<Explanation> {
    let proj = &model.projection;
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
    let cosine = y.dot(&x);
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

/// [`explain_pair`] with the correction of `opts.scoring` from the model's stored training
/// banks (the only banks one pair has: `opts.bank` must be [`Bank::Train`] unless the scoring
/// is plain cosine).
pub fn explain_scored(
    model: &Model,
    enc: &TextEncoder,
    caption: &str,
    image_feature: ArrayView1<f32>,
    opts: &ScoreOptions,
    query: QuerySide,
) -> Result<ScoredExplanation> {
    check_options(model, opts)?;
    let e = explain_pair(model, enc, caption, image_feature)?;
    let (qp, gp) = train_bank_penalties(model, opts.scoring, &e, query)?;
    Ok(ScoredExplanation::new(e, opts.scoring, qp, gp))
}

fn check_options(model: &Model, opts: &ScoreOptions) -> Result<()> {
    if opts.scoring != Scoring::Cosine && opts.bank == Bank::Sets {
        return Err(Error::Param(format!(
            "{} compares items with a bank, and one pair has no sets to rank: use the model's \
             training items (--bank train) or plain cosine (--score cosine)",
            opts.scoring
        )));
    }
    opts.check(model)
}

/// (query penalty, gallery penalty) of an explained pair from the model's training banks:
/// [`score::query_penalties`] of the query over the gallery modality's bank and
/// [`score::gallery_penalties`] of the gallery item over the query modality's bank, as
/// `rank --bank train` computes them. Zeros for cosine.
pub fn train_bank_penalties(
    model: &Model,
    scoring: Scoring,
    e: &Explanation,
    query: QuerySide,
) -> Result<(f32, f32)> {
    if scoring == Scoring::Cosine {
        return Ok((0.0, 0.0));
    }
    let text = e.text_projection.view().insert_axis(Axis(0));
    let img = e.image_projection.view().insert_axis(Axis(0));
    let (q, g) = match query {
        QuerySide::Caption => (text, img),
        QuerySide::Image => (img, text),
    };
    let (qb, gb) = ScoreOptions {
        scoring,
        bank: Bank::Train,
    }
    .train_banks(model, query == QuerySide::Caption)?;
    let qp = score::query_penalties(scoring, q, gb).map_err(Error::Param)?;
    let gp = score::gallery_penalties(scoring, g, qb).map_err(Error::Param)?;
    Ok((qp[0], gp[0]))
}

/// The whole job behind `tuwen explain`: the model's text encoder (vectors checked), the
/// image's feature through the model's feature spec (cache as in `ex`), then
/// [`explain_scored`].
pub fn explain_files(
    model: &Model,
    vectors: &VectorFiles,
    ex: &ExtractOptions,
    caption: &str,
    image_path: &Path,
    opts: &ScoreOptions,
    query: QuerySide,
) -> Result<ScoredExplanation> {
    check_options(model, opts)?;
    let spec = model.feature_spec(ex.weights.as_deref())?;
    let enc = pipeline::model_text_encoder(model, vectors)?;
    let name = image_path
        .file_name()
        .ok_or_else(|| Error::file(image_path, "not an image file"))?
        .to_string_lossy()
        .into_owned();
    let dir = match image_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let f = image::extract(&[name], dir, &spec, ex)?;
    if !f.ok[0] {
        let why = f
            .skipped
            .first()
            .map_or("unreadable", |s| s.reason.as_str());
        return Err(Error::file(image_path, format!("cannot be used: {why}")));
    }
    explain_scored(model, &enc, caption, f.features.row(0), opts, query)
}

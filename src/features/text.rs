//! Caption features: jieba-rs tokens → word2vec vectors (finalfusion) → weighted mean.
use crate::error::{Error, Result};
use crate::sparse::SparseRows;
use finalfusion::compat::word2vec::ReadWord2Vec;
use finalfusion::prelude::*;
use finalfusion::similarity::WordSimilarity;
use finalfusion::storage::NdArray;
use finalfusion::vocab::{SimpleVocab, Vocab};
use ndarray::{Array1, Array2};
use std::collections::{HashMap, HashSet};
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// How token vectors are weighted in a caption's mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Weighting {
    /// Plain mean.
    Mean,
    /// Inverse document frequency over the training captions.
    Idf,
    /// Smooth inverse frequency a / (a + p(w)) (Arora et al. 2017), p from the training captions.
    Sif,
}

/// What is computed for each caption. Saved in a fitted model's config.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TextFeatureConfig {
    pub weighting: Weighting,
    /// SIF's a.
    pub sif_a: f32,
    /// Use unit-length word vectors (true) or word2vec's raw vectors with their norms (false).
    pub unit_vectors: bool,
    /// Drop stop words (synonyms' list) and punctuation before averaging.
    pub remove_stopwords: bool,
    /// An out-of-vocabulary word takes the mean of its characters' vectors, where they exist.
    pub char_fallback: bool,
    /// Extra words for jieba's dictionary (e.g. domain terms), so they are kept whole.
    #[serde(default)]
    pub user_words: Vec<String>,
    /// Append a TF-IDF bag of words / characters to the word2vec mean (None: word2vec only).
    #[serde(default)]
    pub bag: Option<BagConfig>,
    /// A second word-vector set (default `models/cnsyn.vector`, 75-d), its caption mean placed
    /// right after the first one's (None: not used).
    #[serde(default)]
    pub second: Option<SecondVectors>,
}

/// The second word-vector block.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SecondVectors {
    /// Weight of its mean vector (the first set's weight is the bag's `w2v_weight`, or 1).
    pub weight: f32,
}

/// A sparse-looking but dense-stored TF-IDF block: jieba words, single characters and character
/// bigrams seen in at least `min_df` training captions. High-dimensional, so CCA gets far more
/// directions on the text side than 100-d word2vec offers.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BagConfig {
    pub words: bool,
    pub chars: bool,
    pub bigrams: bool,
    pub min_df: u64,
    pub max_terms: usize,
    /// Weight of the word2vec mean next to the unit-length bag block (0 drops it).
    pub w2v_weight: f32,
}

impl Default for BagConfig {
    fn default() -> Self {
        BagConfig {
            words: true,
            chars: true,
            bigrams: true,
            min_df: 2,
            max_terms: 8000,
            w2v_weight: 1.0,
        }
    }
}

impl Default for TextFeatureConfig {
    fn default() -> Self {
        TextFeatureConfig {
            weighting: Weighting::Mean,
            sif_a: 1e-3,
            unit_vectors: true,
            remove_stopwords: true,
            char_fallback: true,
            user_words: Vec::new(),
            bag: Some(BagConfig::default()),
            second: None,
        }
    }
}

impl TextFeatureConfig {
    /// Validate the options before any work (a NaN or negative weight would otherwise surface
    /// as a failed factorisation, or scale a block silently): `--w2v-weight` (bag
    /// `w2v_weight`), `--second-weight` (`second.weight`), `--bag-max-terms`, `--bag-no-*`.
    pub fn check(&self) -> Result<()> {
        let bad = |what: &str, v: f32, rule: &str| {
            Err(Error::Param(format!("{what} must be {rule}, got {v}")))
        };
        if !(self.sif_a.is_finite() && self.sif_a > 0.0) {
            return bad("the SIF constant a", self.sif_a, "finite and > 0");
        }
        if let Some(b) = &self.bag {
            if !(b.w2v_weight.is_finite() && b.w2v_weight >= 0.0) {
                return bad(
                    "--w2v-weight (the word-vector mean's weight beside the bag)",
                    b.w2v_weight,
                    "finite and >= 0",
                );
            }
            if b.max_terms == 0 {
                return Err(Error::Param(
                    "--bag-max-terms must be at least 1 (or turn the bag off with --bag false)"
                        .into(),
                ));
            }
            if !(b.words || b.chars || b.bigrams) {
                return Err(Error::Param(
                    "the bag needs words, characters or bigrams (all three are turned off); \
                     turn the bag off with --bag false instead"
                        .into(),
                ));
            }
        }
        if let Some(s) = &self.second {
            if !(s.weight.is_finite() && s.weight > 0.0) {
                return bad(
                    "--second-weight (the second word-vector set's weight)",
                    s.weight,
                    "finite and > 0 (0: no second set)",
                );
            }
        }
        Ok(())
    }
}

/// Token statistics of the training captions (for IDF and SIF weights).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct WordStats {
    pub n_docs: u64,
    pub total_tokens: u64,
    pub doc_freq: HashMap<String, u64>,
    pub term_freq: HashMap<String, u64>,
    /// Bag terms and their IDF, in feature order (empty without a bag).
    #[serde(default)]
    pub bag_vocab: Vec<(String, f32)>,
}

/// Out-of-vocabulary report of one encoding run.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct OovReport {
    pub captions: usize,
    pub tokens: usize,
    pub in_vocab: usize,
    pub via_chars: usize,
    pub oov: usize,
    /// Captions with no usable token (their vector is zero).
    pub empty_captions: usize,
    /// Most frequent out-of-vocabulary tokens.
    pub top_oov: Vec<(String, usize)>,
}

impl OovReport {
    pub fn oov_rate(&self) -> f64 {
        if self.tokens == 0 {
            0.0
        } else {
            self.oov as f64 / self.tokens as f64
        }
    }
    pub fn summary(&self) -> String {
        let pct = |n: usize| 100.0 * n as f64 / self.tokens.max(1) as f64;
        format!(
            "{} captions, {} tokens: {:.1}% in vocabulary, {:.1}% via characters, {:.1}% out of vocabulary; {} captions with no known token",
            self.captions,
            self.tokens,
            pct(self.in_vocab),
            pct(self.via_chars),
            pct(self.oov),
            self.empty_captions
        )
    }
}

/// A token's vector: the word's own, its characters' mean, or none.
enum TokenVector {
    Word(Array1<f32>),
    Chars(Array1<f32>),
    Missing,
}

/// One caption's text feature as the sum of its parts (see [`TextEncoder::caption_parts`]).
#[derive(Debug, Clone)]
pub struct CaptionParts {
    /// Every token, in caption order (a repeated token appears once per occurrence).
    pub tokens: Vec<TokenPart>,
    /// The caption's bag terms that are in the vocabulary, in column order.
    pub bag: Vec<BagPart>,
    /// Block widths: first word vectors, second word vectors (0 if none), bag (0 if none).
    pub dim: usize,
    pub second_dim: usize,
    pub bag_dim: usize,
}

/// One token occurrence's share of the word-vector block(s).
#[derive(Debug, Clone)]
pub struct TokenPart {
    pub text: String,
    /// Its share of block 1, `w1 · w_tok / Σw · v_tok` (None: no vector in the first set).
    pub first: Option<Array1<f32>>,
    /// Its vector in the first set is its characters' mean (out of vocabulary as a word).
    pub via_chars: bool,
    /// Its share of block 2 (None: no second set, or no vector there).
    pub second: Option<Array1<f32>>,
}

/// One bag term of a caption: `w:` word, `c:` character or `b:` bigram, its column within the
/// bag block, and its value there (TF-IDF, L2-normalised over the caption).
#[derive(Debug, Clone)]
pub struct BagPart {
    pub term: String,
    pub index: usize,
    pub value: f32,
}

impl CaptionParts {
    /// The text feature the parts add up to: equal (up to rounding) to the caption's
    /// [`TextEncoder::features`] row.
    pub fn feature(&self) -> Array1<f32> {
        let (d, d2) = (self.dim, self.second_dim);
        let mut t = Array1::<f32>::zeros(d + d2 + self.bag_dim);
        for tok in &self.tokens {
            if let Some(v) = &tok.first {
                let mut s = t.slice_mut(ndarray::s![..d]);
                s += v;
            }
            if let Some(v) = &tok.second {
                let mut s = t.slice_mut(ndarray::s![d..d + d2]);
                s += v;
            }
        }
        for b in &self.bag {
            t[d + d2 + b.index] += b.value;
        }
        t
    }
}

pub struct TextEncoder {
    pub cfg: TextFeatureConfig,
    jieba: jieba_rs::Jieba,
    emb: Embeddings<SimpleVocab, NdArray>,
    stopwords: HashSet<String>,
    stats: WordStats,
    pub vectors_path: PathBuf,
    /// sha256 of the vectors file: the identity a fitted model records and checks.
    pub vectors_sha256: String,
    /// The second vector set, when the config asks for one: (vectors, file, sha256).
    pub second: Option<(Embeddings<SimpleVocab, NdArray>, PathBuf, String)>,
}

/// `$TUWEN_MODELS/cnsyn.vector` or `<crate>/models/cnsyn.vector`.
pub fn default_second_vectors_path() -> PathBuf {
    crate::features::image::backbone::default_models_dir().join("cnsyn.vector")
}

/// `$TUWEN_MODELS/words.vector` or `<crate>/models/words.vector`.
pub fn default_vectors_path() -> PathBuf {
    crate::features::image::backbone::default_models_dir().join("words.vector")
}

impl TextEncoder {
    /// Load word vectors (word2vec binary) and the stop-word list beside them (and the default
    /// second vector set if the config asks for one).
    pub fn load(cfg: TextFeatureConfig, vectors: Option<&Path>) -> Result<TextEncoder> {
        Self::load_with(cfg, vectors, None)
    }

    /// [`TextEncoder::load`] with the second vector set's file given.
    pub fn load_with(
        cfg: TextFeatureConfig,
        vectors: Option<&Path>,
        second: Option<&Path>,
    ) -> Result<TextEncoder> {
        cfg.check()?;
        let second = match &cfg.second {
            None => None,
            Some(_) => {
                let p = second
                    .map(Path::to_path_buf)
                    .unwrap_or_else(default_second_vectors_path);
                let (e, sha) = load_word2vec(&p)?;
                Some((e, p, sha))
            }
        };
        let path = vectors
            .map(Path::to_path_buf)
            .unwrap_or_else(default_vectors_path);
        let (emb, vectors_sha256) = load_word2vec(&path)?;
        let stop_path = path.with_file_name("stopwords.txt");
        let stopwords = if cfg.remove_stopwords {
            std::fs::read_to_string(&stop_path)
                .map_err(|e| Error::asset(&stop_path, format!("cannot read stop words ({e})")))?
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect()
        } else {
            HashSet::new()
        };
        let mut jieba = jieba_rs::Jieba::new();
        for w in &cfg.user_words {
            jieba.add_word(w, None, None);
        }
        Ok(TextEncoder {
            cfg,
            jieba,
            emb,
            stopwords,
            stats: WordStats::default(),
            vectors_path: path,
            vectors_sha256,
            second,
        })
    }

    pub fn dim(&self) -> usize {
        self.emb.dims()
    }

    pub fn vocab_len(&self) -> usize {
        self.emb.vocab().words_len()
    }

    pub fn stats(&self) -> &WordStats {
        &self.stats
    }

    pub fn set_stats(&mut self, stats: WordStats) {
        self.stats = stats;
    }

    /// jieba tokens, without blanks, punctuation and (if configured) stop words.
    pub fn tokenize(&self, caption: &str) -> Vec<String> {
        self.jieba
            .cut(caption, true)
            .into_iter()
            .map(|t| t.word.trim())
            .filter(|w| !w.is_empty() && w.chars().any(|c| c.is_alphanumeric()))
            .filter(|w| !self.stopwords.contains(*w))
            .map(str::to_string)
            .collect()
    }

    /// Count token frequencies over the training captions.
    pub fn fit_stats(&mut self, captions: &[String]) {
        let mut s = WordStats::default();
        let tokens: Vec<Vec<String>> = captions.iter().map(|c| self.tokenize(c)).collect();
        for toks in &tokens {
            s.n_docs += 1;
            s.total_tokens += toks.len() as u64;
            let mut seen = HashSet::new();
            for t in toks.iter().cloned() {
                *s.term_freq.entry(t.clone()).or_default() += 1;
                if seen.insert(t.clone()) {
                    *s.doc_freq.entry(t).or_default() += 1;
                }
            }
        }
        if let Some(bag) = &self.cfg.bag {
            let mut df: HashMap<String, u64> = HashMap::new();
            for (c, toks) in captions.iter().zip(&tokens) {
                let terms: HashSet<String> = bag_terms(c, toks, bag).into_iter().collect();
                for t in terms {
                    *df.entry(t).or_default() += 1;
                }
            }
            let mut terms: Vec<(String, u64)> =
                df.into_iter().filter(|(_, n)| *n >= bag.min_df).collect();
            terms.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            terms.truncate(bag.max_terms);
            let n = s.n_docs as f32;
            s.bag_vocab = terms
                .into_iter()
                .map(|(t, d)| (t, ((1.0 + n) / (1.0 + d as f32)).ln() + 1.0))
                .collect();
        }
        self.stats = s;
    }

    /// Dimension of the second vector block (0 without one).
    pub fn second_dim(&self) -> usize {
        self.second.as_ref().map_or(0, |s| s.0.dims())
    }

    /// Feature dimension: word2vec (100), the second set (75, if used), the bag's terms.
    pub fn feature_dim(&self) -> usize {
        self.dim()
            + self.second_dim()
            + if self.cfg.bag.is_some() {
                self.stats.bag_vocab.len()
            } else {
                0
            }
    }

    /// Encode captions into the full text feature (word2vec mean, then the second set's, then
    /// the bag if configured): [`TextEncoder::features_sparse`] as a dense matrix.
    pub fn features(&self, captions: &[String]) -> (Array2<f32>, OovReport) {
        let (s, rep) = self.features_sparse(captions);
        (s.to_dense(), rep)
    }

    /// The text features of captions as sparse rows: the bag's ~8,000 columns hold a dozen
    /// values per caption, so a training set's features never exist as a dense matrix.
    pub fn features_sparse(&self, captions: &[String]) -> (SparseRows, OovReport) {
        let tokens: Vec<Vec<String>> = captions.iter().map(|c| self.tokenize(c)).collect();
        let (w2v, rep) = self.encode_tokens(&tokens);
        let second = self
            .second
            .as_ref()
            .map(|s| self.encode_tokens_with(&s.0, &tokens).0);
        let d = self.dim();
        let d2 = self.second_dim();
        let w1 = self.cfg.bag.as_ref().map_or(1.0, |b| b.w2v_weight);
        let w2 = self.cfg.second.as_ref().map_or(1.0, |c| c.weight);
        let index = self.bag_index();
        let mut out = SparseRows::new(self.feature_dim());
        for (i, (c, toks)) in captions.iter().zip(&tokens).enumerate() {
            let first = w2v.row(i).into_iter().map(|v| v * w1).enumerate();
            let second = second
                .iter()
                .flat_map(|m| m.row(i).into_iter().map(|v| v * w2).collect::<Vec<_>>())
                .enumerate()
                .map(|(j, v)| (d + j, v));
            let bag = self.cfg.bag.as_ref().map_or_else(Vec::new, |bag| {
                self.bag_values(c, toks, bag, &index)
                    .into_iter()
                    .map(|(j, v)| (d + d2 + j, v))
                    .collect()
            });
            out.push_entries(first.chain(second).chain(bag));
        }
        (out, rep)
    }

    /// Bag term → its column within the bag block.
    fn bag_index(&self) -> HashMap<&str, usize> {
        self.stats
            .bag_vocab
            .iter()
            .enumerate()
            .map(|(i, (t, _))| (t.as_str(), i))
            .collect()
    }

    /// The bag block of one caption: (column within the block, value) of every vocabulary term
    /// it holds, TF-IDF (1 + ln tf)·idf, L2-normalised over the caption; in column order.
    fn bag_values(
        &self,
        caption: &str,
        tokens: &[String],
        bag: &BagConfig,
        index: &HashMap<&str, usize>,
    ) -> Vec<(usize, f32)> {
        let mut tf: std::collections::BTreeMap<usize, f32> = Default::default();
        for t in bag_terms(caption, tokens, bag) {
            if let Some(&j) = index.get(t.as_str()) {
                *tf.entry(j).or_default() += 1.0;
            }
        }
        let mut norm = 0.0f32;
        let vals: Vec<(usize, f32)> = tf
            .into_iter()
            .map(|(j, n)| {
                let v = (1.0 + n.ln()) * self.stats.bag_vocab[j].1;
                norm += v * v;
                (j, v)
            })
            .collect();
        let norm = norm.sqrt().max(1e-12);
        vals.into_iter().map(|(j, v)| (j, v / norm)).collect()
    }

    /// One caption's text feature split into what [`TextEncoder::features`] adds up: each
    /// token's share of the word-vector mean(s) and each bag term's value. Summing the parts
    /// ([`CaptionParts::feature`]) gives the caption's `features` row (up to rounding).
    pub fn caption_parts(&self, caption: &str) -> CaptionParts {
        let tokens = self.tokenize(caption);
        let w1 = self.cfg.bag.as_ref().map_or(1.0, |b| b.w2v_weight);
        let first = self.token_shares(&self.emb, &tokens, w1);
        let second = match (&self.second, &self.cfg.second) {
            (Some(s), Some(cfg2)) => Some(self.token_shares(&s.0, &tokens, cfg2.weight)),
            _ => None,
        };
        let parts = tokens
            .iter()
            .enumerate()
            .map(|(i, tok)| {
                let (first, via_chars) = first[i].clone();
                TokenPart {
                    text: tok.clone(),
                    first,
                    via_chars,
                    second: second.as_ref().and_then(|s| s[i].0.clone()),
                }
            })
            .collect();
        let bag = match &self.cfg.bag {
            Some(b) => {
                let index = self.bag_index();
                self.bag_values(caption, &tokens, b, &index)
                    .into_iter()
                    .map(|(j, value)| BagPart {
                        term: self.stats.bag_vocab[j].0.clone(),
                        index: j,
                        value,
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        CaptionParts {
            tokens: parts,
            bag,
            dim: self.dim(),
            second_dim: self.second_dim(),
            bag_dim: if self.cfg.bag.is_some() {
                self.stats.bag_vocab.len()
            } else {
                0
            },
        }
    }

    /// Each token's share `scale · w_tok / Σw · v_tok` of one caption's weighted mean over
    /// `emb` (None where the token has no vector), and whether it came from its characters.
    fn token_shares(
        &self,
        emb: &Embeddings<SimpleVocab, NdArray>,
        tokens: &[String],
        scale: f32,
    ) -> Vec<(Option<Array1<f32>>, bool)> {
        let found: Vec<_> = tokens
            .iter()
            .map(|t| match self.token_vector(emb, t) {
                TokenVector::Word(v) => (Some((self.weight(t), v)), false),
                TokenVector::Chars(v) => (Some((self.weight(t), v)), true),
                TokenVector::Missing => (None, false),
            })
            .collect();
        let wsum: f32 = found.iter().filter_map(|f| f.0.as_ref().map(|x| x.0)).sum();
        found
            .into_iter()
            .map(|(f, via)| {
                let share = f
                    .filter(|_| wsum > 0.0)
                    .map(|(w, v)| v * (scale * w / wsum));
                (share, via)
            })
            .collect()
    }

    /// A token's vector over `emb`: its own, else (with `char_fallback`) its characters' mean.
    fn token_vector(&self, emb: &Embeddings<SimpleVocab, NdArray>, tok: &str) -> TokenVector {
        if let Some(v) = self.vector(emb, tok) {
            return TokenVector::Word(v);
        }
        if !self.cfg.char_fallback {
            return TokenVector::Missing;
        }
        let chars: Vec<Array1<f32>> = tok
            .chars()
            .filter_map(|ch| self.vector(emb, ch.encode_utf8(&mut [0; 4])))
            .collect();
        if chars.is_empty() {
            return TokenVector::Missing;
        }
        let n = chars.len() as f32;
        TokenVector::Chars(
            chars
                .into_iter()
                .fold(Array1::zeros(emb.dims()), |a, b| a + b)
                / n,
        )
    }

    fn weight(&self, token: &str) -> f32 {
        match self.cfg.weighting {
            Weighting::Mean => 1.0,
            Weighting::Idf => {
                let df = self.stats.doc_freq.get(token).copied().unwrap_or(0) as f32;
                ((1.0 + self.stats.n_docs as f32) / (1.0 + df)).ln() + 1.0
            }
            Weighting::Sif => {
                let tf = self.stats.term_freq.get(token).copied().unwrap_or(0) as f32;
                let p = tf / (self.stats.total_tokens.max(1) as f32);
                self.cfg.sif_a / (self.cfg.sif_a + p)
            }
        }
    }

    fn vector(&self, emb: &Embeddings<SimpleVocab, NdArray>, word: &str) -> Option<Array1<f32>> {
        let e = emb.embedding_with_norm(word)?;
        let v = Array1::from(e.embedding.to_vec());
        Some(if self.cfg.unit_vectors { v } else { v * e.norm })
    }

    /// Encode captions; each row is the weighted mean of its tokens' vectors (zero if none known).
    pub fn encode(&self, captions: &[String]) -> (Array2<f32>, OovReport) {
        let tokens: Vec<Vec<String>> = captions.iter().map(|c| self.tokenize(c)).collect();
        self.encode_tokens(&tokens)
    }

    /// `encode` over captions already tokenized (so `features` cuts each caption once).
    fn encode_tokens(&self, tokens: &[Vec<String>]) -> (Array2<f32>, OovReport) {
        self.encode_tokens_with(&self.emb, tokens)
    }

    fn encode_tokens_with(
        &self,
        emb: &Embeddings<SimpleVocab, NdArray>,
        tokens: &[Vec<String>],
    ) -> (Array2<f32>, OovReport) {
        let d = emb.dims();
        let mut out = Array2::<f32>::zeros((tokens.len(), d));
        let mut rep = OovReport {
            captions: tokens.len(),
            ..Default::default()
        };
        let mut oov_counts: HashMap<String, usize> = HashMap::new();
        for (i, toks) in tokens.iter().enumerate() {
            let mut acc = Array1::<f32>::zeros(d);
            let mut wsum = 0.0f32;
            for tok in toks.iter().cloned() {
                rep.tokens += 1;
                let v = match self.token_vector(emb, &tok) {
                    TokenVector::Word(v) => {
                        rep.in_vocab += 1;
                        Some(v)
                    }
                    TokenVector::Chars(v) => {
                        rep.via_chars += 1;
                        Some(v)
                    }
                    TokenVector::Missing => None,
                };
                match v {
                    Some(v) => {
                        let w = self.weight(&tok);
                        acc.scaled_add(w, &v);
                        wsum += w;
                    }
                    None => {
                        rep.oov += 1;
                        *oov_counts.entry(tok).or_default() += 1;
                    }
                }
            }
            if wsum > 0.0 {
                out.row_mut(i).assign(&(acc / wsum));
            } else {
                rep.empty_captions += 1;
            }
        }
        let mut top: Vec<(String, usize)> = oov_counts.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        top.truncate(20);
        rep.top_oov = top;
        (out, rep)
    }

    /// Words nearest to `word` by cosine (for checks and exploration).
    pub fn nearest(&self, word: &str, k: usize) -> Vec<(String, f32)> {
        self.emb
            .word_similarity(word, k, None)
            .map(|v| {
                v.into_iter()
                    .map(|s| (s.word().to_string(), s.cosine_similarity()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Bag terms of a caption: `w:` its jieba tokens, `c:` characters, `b:` character bigrams.
fn bag_terms(caption: &str, tokens: &[String], bag: &BagConfig) -> Vec<String> {
    let mut out = Vec::new();
    if bag.words {
        out.extend(tokens.iter().map(|w| format!("w:{w}")));
    }
    let chars: Vec<char> = caption.chars().filter(|c| c.is_alphanumeric()).collect();
    if bag.chars {
        out.extend(chars.iter().map(|c| format!("c:{c}")));
    }
    if bag.bigrams {
        out.extend(chars.windows(2).map(|w| format!("b:{}{}", w[0], w[1])));
    }
    out
}

fn load_word2vec(path: &Path) -> Result<(Embeddings<SimpleVocab, NdArray>, String)> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::asset(path, format!("cannot open word vectors ({e})")))?;
    let sha = crate::assets::verified_sha256_of(path, &bytes)?;
    let mut r = BufReader::new(std::io::Cursor::new(bytes));
    // finalfusion panics on a vocabulary with a repeated word; a user's file gets an error instead.
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Embeddings::<SimpleVocab, NdArray>::read_word2vec_binary(&mut r)
    }))
    .map_err(|_| {
        Error::asset(
            path,
            "not a usable word2vec binary file (a word occurs twice, or the file is malformed)",
        )
    })?;
    let e =
        read.map_err(|e| Error::asset(path, format!("not a readable word2vec binary file ({e})")))?;
    Ok((e, sha))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_weights_and_empty_bags_are_refused_up_front() {
        TextFeatureConfig::default().check().unwrap();
        let with_w2v = |w: f32| TextFeatureConfig {
            bag: Some(BagConfig {
                w2v_weight: w,
                ..Default::default()
            }),
            ..Default::default()
        };
        with_w2v(0.0).check().unwrap();
        for w in [f32::NAN, f32::INFINITY, -1.0] {
            let e = with_w2v(w).check().unwrap_err().to_string();
            assert!(e.contains("--w2v-weight"), "{w}: {e}");
        }
        let second = |w: f32| TextFeatureConfig {
            second: Some(SecondVectors { weight: w }),
            ..Default::default()
        };
        second(0.5).check().unwrap();
        for w in [f32::NAN, f32::NEG_INFINITY, -0.5, 0.0] {
            assert!(second(w).check().is_err(), "{w}");
        }
        let bag = |b: BagConfig| TextFeatureConfig {
            bag: Some(b),
            ..Default::default()
        };
        assert!(bag(BagConfig {
            max_terms: 0,
            ..Default::default()
        })
        .check()
        .is_err());
        assert!(bag(BagConfig {
            words: false,
            chars: false,
            bigrams: false,
            ..Default::default()
        })
        .check()
        .is_err());
        // The check runs before any file is read: no vectors are needed to see the error.
        let e = TextEncoder::load(with_w2v(f32::NAN), Some(Path::new("/nonexistent.vector")))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("--w2v-weight"), "{e}");
    }
}

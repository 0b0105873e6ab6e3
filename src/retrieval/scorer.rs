//! The one scorer: which scoring, which banks, which direction — and the few operations every
//! command needs. `rank`, `report`, `eval`, `serve`, `explain` and `export` all go through a
//! [`Scorer`] and a prepared [`Gallery`], so one pair gets one score wherever it is computed.
//!
//! * [`Scorer::prepare`] puts a gallery in id order (the tie order of every ranking) and, with
//!   stored training banks, computes its penalties once;
//! * [`Scorer::rank`] ranks any number of queries against it (all of a Teddy file, or the one
//!   query of a search request: the same float path either way, see [`crate::kernel`]);
//! * [`Scorer::eval_matrices`] gives the full score matrices of held-out evaluation;
//! * [`Scorer::breakdown`] splits one pair's score into cosine and correction, for explanations.
pub use super::score::ScoreError;
use super::score::{self, Breakdown, Penalties, Ranking, Scoring};
use super::Direction;
use crate::kernel;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};

/// Which items the hubness correction compares each item with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bank {
    /// The sets being ranked: all queries and the whole gallery (Teddy gives both at once;
    /// evaluation: the held-out captions and images).
    #[default]
    Sets,
    /// The training images and captions stored in the model (for queries that arrive alone).
    Train,
}

/// How scores are computed: plain cosine or a hubness-corrected score, and its banks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreOptions {
    pub scoring: Scoring,
    pub bank: Bank,
}

impl Default for ScoreOptions {
    /// The CLI's default, the best on the development split (experiments/README.md).
    fn default() -> Self {
        ScoreOptions {
            scoring: Scoring::Csls { k: 10 },
            bank: Bank::Sets,
        }
    }
}

impl ScoreOptions {
    /// Plain cosine similarity, the design's baseline.
    pub fn cosine() -> Self {
        ScoreOptions {
            scoring: Scoring::Cosine,
            bank: Bank::Sets,
        }
    }

    /// For outputs and reports: `csls(k=10), banks: the ranked sets`.
    pub fn describe(&self) -> String {
        match self.scoring {
            Scoring::Cosine => "cosine".into(),
            s => format!(
                "{s}, banks: {}",
                match self.bank {
                    Bank::Sets => "the ranked sets",
                    Bank::Train => "training items in the model",
                }
            ),
        }
    }
}

/// Rows kept per side in a model's training banks.
pub const BANK_ROWS: usize = 5000;

/// Projected training items stored in a model: the banks of `--bank train`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainBanks {
    pub images: Array2<f32>,
    pub texts: Array2<f32>,
}

impl TrainBanks {
    /// Evenly spaced rows (at most [`BANK_ROWS`] per side) of already projected (unit-length)
    /// training images and captions.
    pub fn sample(images: Array2<f32>, texts: Array2<f32>) -> TrainBanks {
        let pick = |m: Array2<f32>| {
            if m.nrows() <= BANK_ROWS {
                return m;
            }
            let idx: Vec<usize> = (0..BANK_ROWS).map(|i| i * m.nrows() / BANK_ROWS).collect();
            m.select(Axis(0), &idx)
        };
        TrainBanks {
            images: pick(images),
            texts: pick(texts),
        }
    }

    /// The bank of one modality.
    fn of(&self, texts: bool) -> ArrayView2<'_, f32> {
        if texts {
            self.texts.view()
        } else {
            self.images.view()
        }
    }
}

/// Scoring, banks and the stored training banks they may need, checked once.
#[derive(Debug, Clone)]
pub struct Scorer {
    options: ScoreOptions,
    /// Present when `options` needs them (a hubness correction with `Bank::Train`).
    banks: Option<TrainBanks>,
}

/// A gallery prepared for ranking in one direction: items in id order, projected vectors, and
/// (with training banks) each item's penalty, computed once and shared by every query.
#[derive(Debug, Clone)]
pub struct Gallery {
    direction: Direction,
    ids: Vec<String>,
    vectors: Array2<f32>,
    /// Row of each item in the order the caller gave them.
    source_rows: Vec<usize>,
    /// Gallery-side penalties over the training bank of the query modality (empty otherwise).
    penalties: Array1<f32>,
}

impl Gallery {
    pub fn direction(&self) -> Direction {
        self.direction
    }
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    /// Ids in ranking order (ascending).
    pub fn ids(&self) -> &[String] {
        &self.ids
    }
    pub fn id(&self, j: usize) -> &str {
        &self.ids[j]
    }
    /// Projected rows, in id order.
    pub fn vectors(&self) -> ArrayView2<'_, f32> {
        self.vectors.view()
    }
    /// The caller's row of item `j` (the order of the list given to [`Scorer::prepare`]).
    pub fn source_row(&self, j: usize) -> usize {
        self.source_rows[j]
    }
    /// The index of an id, if it is in the gallery.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.ids.binary_search_by(|x| x.as_str().cmp(id)).ok()
    }
}

impl Scorer {
    /// Check the options against what they need: valid parameters, and training banks for
    /// `Bank::Train` (from the model, `banks`).
    pub fn new(options: ScoreOptions, banks: Option<&TrainBanks>) -> Result<Scorer, ScoreError> {
        options.scoring.validate()?;
        let needs_banks = options.scoring != Scoring::Cosine && options.bank == Bank::Train;
        let banks = match (needs_banks, banks) {
            (false, _) => None,
            (true, Some(b)) => Some(b.clone()),
            (true, None) => return Err(ScoreError::NoTrainBanks),
        };
        Ok(Scorer { options, banks })
    }

    /// Plain cosine (needs nothing).
    pub fn cosine() -> Scorer {
        Scorer {
            options: ScoreOptions::cosine(),
            banks: None,
        }
    }

    pub fn options(&self) -> ScoreOptions {
        self.options
    }

    pub fn scoring(&self) -> Scoring {
        self.options.scoring
    }

    pub fn describe(&self) -> String {
        self.options.describe()
    }

    /// True when queries may come alone (one search request, one explained pair): cosine, or a
    /// correction over stored banks.
    pub fn scores_single_queries(&self) -> bool {
        self.options.scoring == Scoring::Cosine || self.banks.is_some()
    }

    /// Put a gallery in id order (ties in every ranking break by id) and compute what depends on
    /// it alone. `ids` must be distinct; `vectors` has one projected row per id.
    pub fn prepare(
        &self,
        direction: Direction,
        ids: Vec<String>,
        vectors: Array2<f32>,
    ) -> Result<Gallery, ScoreError> {
        if ids.len() != vectors.nrows() {
            return Err(ScoreError::Gallery(format!(
                "{} ids for {} rows",
                ids.len(),
                vectors.nrows()
            )));
        }
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by(|&a, &b| ids[a].cmp(&ids[b]));
        if let Some(w) = order.windows(2).find(|w| ids[w[0]] == ids[w[1]]) {
            return Err(ScoreError::Gallery(format!(
                "`{}` appears twice",
                ids[w[0]]
            )));
        }
        let sorted = order.windows(2).all(|w| w[0] < w[1]);
        let vectors = if sorted {
            vectors
        } else {
            vectors.select(Axis(0), &order)
        };
        let mut ids = ids;
        if !sorted {
            let mut taken: Vec<Option<String>> = ids.into_iter().map(Some).collect();
            ids = order
                .iter()
                .map(|&i| taken[i].take().expect("a permutation"))
                .collect();
        }
        let penalties = match &self.banks {
            Some(b) => score::gallery_penalties(
                self.options.scoring,
                vectors.view(),
                b.of(direction.queries_are_texts()),
            )?,
            None => Array1::zeros(0),
        };
        Ok(Gallery {
            direction,
            ids,
            vectors,
            source_rows: order,
            penalties,
        })
    }

    /// The `k` best gallery items (index into the gallery, score) of every query row, best
    /// first, and the penalties used. With `Bank::Sets` the queries given are the query bank, so
    /// pass all of them at once.
    pub fn rank(
        &self,
        queries: ArrayView2<f32>,
        gallery: &Gallery,
        k: usize,
    ) -> Result<(Ranking, Penalties), ScoreError> {
        let s = self.options.scoring;
        let g = gallery.vectors.view();
        score::check_dims(&[("queries", queries.dim()), ("gallery", g.dim())])?;
        match (&self.banks, s) {
            (_, Scoring::Cosine) => {
                let p = Penalties::zeros(queries.nrows(), g.nrows());
                Ok((score::top_k_scored(queries, g, k, s, &p), p))
            }
            (Some(b), _) => {
                let p = Penalties {
                    query: score::query_penalties(
                        s,
                        queries,
                        b.of(!gallery.direction.queries_are_texts()),
                    )?,
                    gallery: gallery.penalties.clone(),
                };
                Ok((score::top_k_scored(queries, g, k, s, &p), p))
            }
            (None, _) => score::rank_sets(queries, g, k, s),
        }
    }

    /// [`Scorer::rank`] of one query that arrives alone (needs [`Scorer::scores_single_queries`]).
    pub fn rank_one(
        &self,
        query: ArrayView1<f32>,
        gallery: &Gallery,
        k: usize,
    ) -> Result<Vec<(usize, f32)>, ScoreError> {
        if !self.scores_single_queries() {
            return Err(ScoreError::NoSets(self.options.scoring));
        }
        let (top, _) = self.rank(query.insert_axis(Axis(0)), gallery, k)?;
        Ok(top.into_iter().next().unwrap_or_default())
    }

    /// One pair's score split into cosine and correction, as [`Scorer::rank`] computes it for a
    /// query that arrives alone (needs [`Scorer::scores_single_queries`]). `query` and `item`
    /// are projected rows; `direction` says which one is the caption.
    pub fn breakdown(
        &self,
        direction: Direction,
        query: ArrayView1<f32>,
        item: ArrayView1<f32>,
    ) -> Result<Breakdown, ScoreError> {
        let s = self.options.scoring;
        if query.len() != item.len() {
            return Err(ScoreError::Invalid(format!(
                "a query of {} dimensions and an item of {}",
                query.len(),
                item.len()
            )));
        }
        let cos = kernel::dot_view(query, item);
        let (qp, gp) = match (&self.banks, s) {
            (_, Scoring::Cosine) => (0.0, 0.0),
            (Some(b), _) => {
                let texts = direction.queries_are_texts();
                let q = query.insert_axis(Axis(0));
                let g = item.insert_axis(Axis(0));
                let qp = score::query_penalties(s, q, b.of(!texts))?;
                let gp = score::gallery_penalties(s, g, b.of(texts))?;
                (qp[0], gp[0])
            }
            (None, _) => return Err(ScoreError::NoSets(s)),
        };
        Ok(score::breakdown(cos, s, qp, gp))
    }

    /// Score matrices of held-out evaluation, both `texts × images`: the first is ranked along
    /// rows (text → image), the second along columns (image → text). With `Bank::Sets` the two
    /// sets are each other's banks.
    pub fn eval_matrices(
        &self,
        texts: ArrayView2<f32>,
        images: ArrayView2<f32>,
    ) -> Result<(Array2<f32>, Array2<f32>), ScoreError> {
        let s = self.options.scoring;
        score::check_dims(&[("texts", texts.dim()), ("images", images.dim())])?;
        let cos = kernel::dots(texts, images);
        match (&self.banks, s) {
            (_, Scoring::Cosine) => Ok((cos.clone(), cos)),
            (Some(b), _) => {
                let p = score::penalties(s, texts, images, b.texts.view(), b.images.view())?;
                let t2i = score::score_matrix(texts, images, s, &p);
                let p = score::penalties(s, images, texts, b.images.view(), b.texts.view())?;
                let i2t = score::score_matrix(images, texts, s, &p).reversed_axes();
                Ok((t2i, i2t))
            }
            (None, _) => {
                let b = score::both_ways(cos.view(), s)?;
                Ok((b.row_queries, b.col_queries))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(n: usize, d: usize, seed: u64) -> Array2<f32> {
        let mut s = seed | 1;
        let m = Array2::from_shape_fn((n, d), |_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        });
        kernel::normalize_rows(m)
    }

    fn banks() -> TrainBanks {
        TrainBanks {
            images: unit(40, 8, 11),
            texts: unit(60, 8, 12),
        }
    }

    #[test]
    fn gallery_is_put_in_id_order_and_ties_break_by_id() {
        let s = Scorer::cosine();
        // Three identical vectors: equal scores, so the order is the ids'.
        let v = Array2::from_shape_vec((3, 2), vec![1.0, 0.0, 1.0, 0.0, 1.0, 0.0]).unwrap();
        let ids = vec!["c".to_string(), "a".into(), "b".into()];
        let g = s.prepare(Direction::TextToImage, ids, v).unwrap();
        assert_eq!(g.ids(), ["a", "b", "c"]);
        assert_eq!(
            (0..3).map(|j| g.source_row(j)).collect::<Vec<_>>(),
            [1, 2, 0]
        );
        let q = ndarray::array![[1.0f32, 0.0]];
        let (top, _) = s.rank(q.view(), &g, 3).unwrap();
        let got: Vec<&str> = top[0].iter().map(|&(j, _)| g.id(j)).collect();
        assert_eq!(got, ["a", "b", "c"]);
        assert_eq!(g.position("b"), Some(1));
        assert!(s
            .prepare(
                Direction::TextToImage,
                vec!["x".into(), "x".into()],
                Array2::zeros((2, 2))
            )
            .is_err());
    }

    #[test]
    fn one_query_alone_scores_as_in_a_batch_and_as_its_breakdown() {
        let b = banks();
        let opts = ScoreOptions {
            scoring: Scoring::Csls { k: 5 },
            bank: Bank::Train,
        };
        let s = Scorer::new(opts, Some(&b)).unwrap();
        let q = unit(37, 8, 1);
        let ids: Vec<String> = (0..50).map(|i| format!("g{:03}", 49 - i)).collect();
        let g = s
            .prepare(Direction::ImageToText, ids, unit(50, 8, 2))
            .unwrap();
        let (all, _) = s.rank(q.view(), &g, 7).unwrap();
        for (i, want) in all.iter().enumerate() {
            let one = s.rank_one(q.row(i), &g, 7).unwrap();
            assert_eq!(&one, want, "query {i}: alone and in a batch differ");
            let (j, sc) = one[0];
            let br = s
                .breakdown(Direction::ImageToText, q.row(i), g.vectors().row(j))
                .unwrap();
            assert_eq!(br.score.to_bits(), sc.to_bits());
        }
    }

    #[test]
    fn options_are_checked_against_what_they_need() {
        let train = ScoreOptions {
            scoring: Scoring::Csls { k: 10 },
            bank: Bank::Train,
        };
        assert!(matches!(
            Scorer::new(train, None),
            Err(ScoreError::NoTrainBanks)
        ));
        let bad = ScoreOptions {
            scoring: Scoring::Csls { k: 0 },
            bank: Bank::Sets,
        };
        assert!(matches!(
            Scorer::new(bad, None),
            Err(ScoreError::Invalid(_))
        ));
        let sets = Scorer::new(ScoreOptions::default(), None).unwrap();
        assert!(!sets.scores_single_queries());
        let g = sets
            .prepare(Direction::TextToImage, vec!["a".into()], unit(1, 8, 3))
            .unwrap();
        assert!(matches!(
            sets.rank_one(unit(1, 8, 4).row(0), &g, 1),
            Err(ScoreError::NoSets(_))
        ));
        // Cosine needs no banks and takes single queries.
        let cos = Scorer::new(
            ScoreOptions {
                scoring: Scoring::Cosine,
                bank: Bank::Train,
            },
            None,
        )
        .unwrap();
        assert!(cos.scores_single_queries());
    }

    #[test]
    fn eval_matrices_match_ranking_with_the_same_banks() {
        let b = banks();
        for opts in [
            ScoreOptions::default(),
            ScoreOptions {
                scoring: Scoring::InvertedSoftmax { beta: 10.0 },
                bank: Bank::Train,
            },
        ] {
            let s = Scorer::new(opts, Some(&b)).unwrap();
            let (t, im) = (unit(30, 8, 5), unit(20, 8, 6));
            let (t2i, i2t) = s.eval_matrices(t.view(), im.view()).unwrap();
            let ids: Vec<String> = (0..20).map(|i| format!("i{i:02}")).collect();
            let g = s.prepare(Direction::TextToImage, ids, im.clone()).unwrap();
            let (top, _) = s.rank(t.view(), &g, 3).unwrap();
            for (r, hits) in top.iter().enumerate() {
                for &(j, sc) in hits {
                    assert!((t2i[[r, j]] - sc).abs() <= 1e-6, "{opts:?}");
                }
            }
            let tids: Vec<String> = (0..30).map(|i| format!("t{i:02}")).collect();
            let g = s.prepare(Direction::ImageToText, tids, t.clone()).unwrap();
            let (top, _) = s.rank(im.view(), &g, 3).unwrap();
            for (c, hits) in top.iter().enumerate() {
                for &(j, sc) in hits {
                    assert!((i2t[[j, c]] - sc).abs() <= 1e-6, "{opts:?}");
                }
            }
        }
    }
}

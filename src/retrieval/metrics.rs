//! Recall@K and median rank for both directions, with several captions per image.
use super::score::better;
use ndarray::ArrayView2;
use rayon::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Recall {
    pub r1: f64,
    pub r5: f64,
    pub r10: f64,
    pub medr: f64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvalReport {
    pub i2t: Recall,
    pub t2i: Recall,
    pub n_images: usize,
    pub n_texts: usize,
}

impl EvalReport {
    /// Mean of the six recalls (R@1/5/10 both ways), the usual single summary number.
    pub fn mean_recall(&self) -> f64 {
        (self.i2t.r1 + self.i2t.r5 + self.i2t.r10 + self.t2i.r1 + self.t2i.r5 + self.t2i.r10) / 6.0
    }
}

/// The rank of a true item that was not retrieved at all (scored NaN): beyond every K.
pub const NOT_RETRIEVED: usize = usize::MAX;

/// 1-based rank of the best of `truth` in a score row, under the same order as `top_k`
/// (higher score first, ties broken by lower index). A NaN score is never a match: a true item
/// scored NaN is [`NOT_RETRIEVED`] (even in a gallery of one), and a NaN score elsewhere in the
/// row ranks below every number (it never pushes the true item down).
pub fn rank_of(row: &[f32], truth: &[usize]) -> usize {
    truth
        .iter()
        .map(|&t| {
            if row[t].is_nan() {
                return NOT_RETRIEVED;
            }
            let tv = (t, row[t]);
            1 + row
                .iter()
                .enumerate()
                .filter(|&(j, &v)| j != t && better((j, v), tv))
                .count()
        })
        .min()
        .expect("at least one true item")
}

/// Recall (percent) and median rank from 1-based ranks ([`NOT_RETRIEVED`] counts as an
/// infinite rank: never a hit, and a median rank of infinity when it is the median).
pub fn recall(ranks: &[usize]) -> Recall {
    let n = ranks.len().max(1) as f64;
    let at = |k: usize| 100.0 * ranks.iter().filter(|&&r| r <= k).count() as f64 / n;
    let mut sorted: Vec<f64> = ranks
        .iter()
        .map(|&r| {
            if r == NOT_RETRIEVED {
                f64::INFINITY
            } else {
                r as f64
            }
        })
        .collect();
    sorted.sort_unstable_by(f64::total_cmp);
    let medr = if sorted.is_empty() {
        f64::NAN
    } else if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2]
    } else {
        (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2.0
    };
    Recall {
        r1: at(1),
        r5: at(5),
        r10: at(10),
        medr,
    }
}

/// Evaluate a text × image similarity matrix; `owner[t]` is the image of caption t.
/// Text→image: the rank of its image. Image→text: the best rank among its captions.
pub fn evaluate(sim: ArrayView2<f32>, owner: &[usize]) -> EvalReport {
    let (n_texts, n_images) = sim.dim();
    assert_eq!(owner.len(), n_texts);
    let t2i: Vec<usize> = (0..n_texts)
        .into_par_iter()
        .map(|t| rank_of(sim.row(t).to_vec().as_slice(), &[owner[t]]))
        .collect();
    let mut captions_of = vec![Vec::new(); n_images];
    for (t, &i) in owner.iter().enumerate() {
        captions_of[i].push(t);
    }
    let simt = sim.t();
    let i2t: Vec<usize> = (0..n_images)
        .into_par_iter()
        .filter(|&i| !captions_of[i].is_empty())
        .map(|i| rank_of(simt.row(i).to_vec().as_slice(), &captions_of[i]))
        .collect();
    EvalReport {
        i2t: recall(&i2t),
        t2i: recall(&t2i),
        n_images: i2t.len(),
        n_texts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn hand_made_matrix_with_ties_and_several_captions() {
        // 4 captions × 3 images; captions 0,1 belong to image 0, 2 to image 1, 3 to image 2.
        let sim = array![
            [0.9f32, 0.1, 0.2], // t0: image 0 first → rank 1
            [0.5, 0.5, 0.7], // t1: image 2 first, tie 0.5 between 0 and 1 → image 0 rank 2 (lower index wins)
            [0.3, 0.3, 0.3], // t2: all tied, image 1 loses to image 0 → rank 2
            [0.8, 0.1, 0.0], // t3: image 2 last → rank 3
        ];
        let owner = [0, 0, 1, 2];
        let r = evaluate(sim.view(), &owner);
        assert_eq!(r.n_texts, 4);
        assert_eq!(r.n_images, 3);
        // t2i ranks: [1, 2, 2, 3]
        assert_eq!(r.t2i.r1, 25.0);
        assert_eq!(r.t2i.r5, 100.0);
        assert_eq!(r.t2i.medr, 2.0);
        // i2t: image 0 column [0.9,0.5,0.3,0.8] → caption 0 rank 1 (best of its two captions).
        // image 1 column [0.1,0.5,0.3,0.1] → caption 2 (0.3) behind caption 1 (0.5) → rank 2.
        // image 2 column [0.2,0.7,0.3,0.0] → caption 3 (0.0) last → rank 4.
        assert_eq!(recall(&[1, 2, 4]), r.i2t);
        assert!((r.i2t.r1 - 100.0 / 3.0).abs() < 1e-9);
        assert_eq!(r.i2t.medr, 2.0);
    }

    #[test]
    fn recall_counts_and_median() {
        let r = recall(&[1, 5, 6, 10, 11, 100]);
        assert!((r.r1 - 100.0 / 6.0).abs() < 1e-9);
        assert!((r.r5 - 200.0 / 6.0).abs() < 1e-9);
        assert!((r.r10 - 400.0 / 6.0).abs() < 1e-9);
        assert_eq!(r.medr, 8.0);
    }

    #[test]
    fn nan_scores_are_never_hits() {
        // A NaN model scores every pair NaN: nothing is retrieved (it used to score 100 %).
        let sim = ndarray::Array2::<f32>::from_elem((4, 2), f32::NAN);
        let r = evaluate(sim.view(), &[0, 0, 1, 1]);
        for x in [r.i2t, r.t2i] {
            assert_eq!((x.r1, x.r5, x.r10), (0.0, 0.0, 0.0), "{x:?}");
        }
        assert_eq!(r.t2i.medr, f64::INFINITY);
        // A single item scored NaN is not a hit even when it is the only candidate.
        assert_eq!(rank_of(&[f32::NAN], &[0]), NOT_RETRIEVED);
        assert_eq!(recall(&[NOT_RETRIEVED]).r1, 0.0);
        // Half retrieved: the median is between a rank and infinity.
        let h = recall(&[1, NOT_RETRIEVED]);
        assert_eq!((h.r1, h.medr), (50.0, f64::INFINITY));
        // NaN elsewhere in the row does not displace a finite true score.
        assert_eq!(rank_of(&[f32::NAN, 0.2, f32::NAN], &[1]), 1);
        // +inf is a number: it ranks first, as the ranking's order does.
        assert_eq!(rank_of(&[0.5, f32::INFINITY], &[0]), 2);
    }

    #[test]
    fn rank_of_agrees_with_top_k_order() {
        let row = [0.2f32, 0.9, 0.9, 0.1, 0.5];
        let top = crate::retrieval::score::top_k_scored(
            ndarray::ArrayView2::from_shape((1, row.len()), &row).unwrap(),
            ndarray::Array2::<f32>::eye(row.len()).view(),
            5,
            crate::retrieval::score::Scoring::Cosine,
            &Default::default(),
        )[0]
        .clone();
        for (pos, &(j, _)) in top.iter().enumerate() {
            assert_eq!(rank_of(&row, &[j]), pos + 1);
        }
        assert_eq!(top[0].0, 1);
        assert_eq!(top[1].0, 2);
    }
}

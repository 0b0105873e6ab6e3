//! `--method contrastive`: the CCA maps refined with symmetric InfoNCE (issue #18 item 3), the
//! recipe of experiments/contrastive (`project.py --init cca --pull 1 --lr 2e-4 --early-stop 0.1
//! --refit`): both linear maps start at the CCA's and are pulled back towards them; the epoch
//! count is chosen on a held-out part of the training images, then the whole training set is
//! trained for that many epochs. The result is an ordinary [`Projection`].
use super::{Method, Projection, ProjectionParams};
use crate::error::{Error, Result};
use crate::retrieval::score::Scoring;
use crate::retrieval::scorer::{Bank, ScoreOptions, Scorer};
use crate::retrieval::{metrics, Direction};
use crate::sparse::SparseRows;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use ndarray_linalg::Inverse;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use tch::nn::OptimizerConfig;
use tch::{nn, Device, Kind, Tensor};

/// The training settings of `--method contrastive` (validated by [`ContrastiveParams::check`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ContrastiveParams {
    /// Most epochs of the early-stopping run.
    pub epochs_max: usize,
    /// Stop after this many epochs without a better stop-part recall.
    pub patience: usize,
    /// Part of the training images held out to choose the epoch count.
    pub early_stop_fraction: f64,
    /// AdamW learning rate (weight decay 0).
    pub lr: f64,
    /// Weight of ‖W − W_cca‖²/‖W_cca‖² per side.
    pub pull: f64,
    /// Seeds the image split, the epochs' permutations and torch.
    pub seed: u64,
    /// Pairs per InfoNCE batch.
    pub batch: usize,
    /// Initial temperature of the (learned) logit scale.
    pub temperature: f64,
}

impl Default for ContrastiveParams {
    fn default() -> Self {
        // The shipped recipe (experiments/contrastive/README.md).
        ContrastiveParams {
            epochs_max: 20,
            patience: 3,
            early_stop_fraction: 0.1,
            lr: 2e-4,
            pull: 1.0,
            seed: 0,
            batch: 500,
            temperature: 0.05,
        }
    }
}

/// The logit scale is clamped at ln 100 (temperature ≥ 0.01), as CLIP does.
const MAX_LOGIT_SCALE: f64 = 4.605_170_185_988_092;
/// CSLS neighbours of the stop-part recall: the product's default score.
const CSLS_K: usize = 10;
/// Caption rows densified at a time when projecting.
const CHUNK: usize = 2000;

impl ContrastiveParams {
    pub fn check(&self) -> Result<()> {
        let bad = |flag: &str, what: &str, v: String| {
            Err(Error::Param(format!("--{flag} must be {what}, got {v}")))
        };
        if self.epochs_max == 0 {
            return bad("epochs-max", ">= 1", "0".into());
        }
        if self.patience == 0 {
            return bad("patience", ">= 1", "0".into());
        }
        let f = self.early_stop_fraction;
        if !(f > 0.0 && f < 1.0) {
            return bad("early-stop-fraction", "in (0, 1)", f.to_string());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("lr", "finite and > 0", self.lr.to_string());
        }
        if !(self.pull >= 0.0 && self.pull.is_finite()) {
            return bad("pull", "finite and >= 0", self.pull.to_string());
        }
        if self.batch < 2 {
            return bad("batch", ">= 2", self.batch.to_string());
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return bad(
                "temperature",
                "finite and > 0",
                self.temperature.to_string(),
            );
        }
        Ok(())
    }
}

/// Pairs used only by the contrastive training: `owner[i]` is the image row of caption `i`.
#[derive(Debug, Clone)]
pub struct ExtraPairs {
    pub owner: Vec<usize>,
    pub texts: SparseRows,
}

/// One epoch of the early-stopping run (epoch 0: the CCA itself).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    /// Mean training loss (none for epoch 0).
    pub loss: Option<f64>,
    /// R@1+5+10 both ways (CSLS, k = 10) on the stop part.
    pub stop_recall_sum: f64,
}

/// What the contrastive fit did: the epoch kept, and the history that chose it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ContrastiveReport {
    /// Epochs trained on all pairs (0: the CCA maps are kept as they are).
    pub best_epoch: usize,
    pub history: Vec<EpochRecord>,
    /// Mean loss of each epoch of the final training on all pairs.
    pub refit_loss: Vec<f64>,
    pub stop_images: usize,
    /// Pairs of the final training: main pairs + extra pairs.
    pub train_pairs: usize,
    pub extra_pairs: usize,
    pub final_temperature: f64,
}

/// A caption row: of the main (dense) texts, or of the extra pairs.
#[derive(Clone, Copy)]
enum Row {
    Main(usize),
    Extra(usize),
}

struct Texts<'a, 'b> {
    main: &'a SparseRows,
    extra: Option<&'b SparseRows>,
}

impl Texts<'_, '_> {
    /// Dense rows as one [rows, q] tensor.
    fn batch(&self, rows: &[Row]) -> Tensor {
        let q = self.main.ncols();
        let mut buf = vec![0.0f32; rows.len() * q];
        for (r, row) in rows.iter().enumerate() {
            let out = &mut buf[r * q..(r + 1) * q];
            match *row {
                Row::Main(i) => self.main.write_row(i, out),
                Row::Extra(i) => self.extra.expect("extra rows given").write_row(i, out),
            }
        }
        Tensor::from_slice(&buf).view([rows.len() as i64, q as i64])
    }
}

fn tensor2(a: ArrayView2<f32>) -> Tensor {
    let a = a.as_standard_layout();
    Tensor::from_slice(a.as_slice().expect("standard layout"))
        .view([a.nrows() as i64, a.ncols() as i64])
}

fn array2(t: &Tensor) -> Result<Array2<f32>> {
    let (r, c) = t.size2()?;
    let v = Vec::<f32>::try_from(t.contiguous().view(-1))?;
    Array2::from_shape_vec((r as usize, c as usize), v).map_err(|e| Error::Model(e.to_string()))
}

/// The two linear maps z = x·W + b and the logit scale, as torch variables.
struct Maps {
    vs: nn::VarStore,
    wi: Tensor,
    bi: Tensor,
    wt: Tensor,
    bt: Tensor,
    logit_scale: Tensor,
    /// The CCA maps the pull is towards, and their squared norms.
    anchor: (Tensor, Tensor, f64, f64),
}

impl Maps {
    fn new(init: &Projection, temperature: f64) -> Maps {
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let wi0 = tensor2(init.image_proj.view());
        let wt0 = tensor2(init.text_proj.view());
        // (x − m)·W = x·W + b with b = −m·W.
        let bias = |m: &Array1<f32>, w: &Array2<f32>| {
            let b = m.dot(w).mapv(|v| -v);
            Tensor::from_slice(b.as_slice().expect("contiguous"))
        };
        let wi = root.var_copy("w_img", &wi0);
        let bi = root.var_copy("b_img", &bias(&init.image_mean, &init.image_proj));
        let wt = root.var_copy("w_txt", &wt0);
        let bt = root.var_copy("b_txt", &bias(&init.text_mean, &init.text_proj));
        let logit_scale = root.var_copy(
            "logit_scale",
            &Tensor::from_slice(&[(1.0 / temperature).ln() as f32]),
        );
        let ni = wi0.square().sum(Kind::Double).double_value(&[]);
        let nt = wt0.square().sum(Kind::Double).double_value(&[]);
        Maps {
            vs,
            wi,
            bi,
            wt,
            bt,
            logit_scale,
            anchor: (wi0, wt0, ni, nt),
        }
    }

    fn scale(&self) -> Tensor {
        self.logit_scale.clamp_max(MAX_LOGIT_SCALE).exp()
    }

    fn pull(&self) -> Tensor {
        let (wi0, wt0, ni, nt) = &self.anchor;
        (&self.wi - wi0).square().sum(Kind::Float) / *ni
            + (&self.wt - wt0).square().sum(Kind::Float) / *nt
    }

    /// Deep copies of the current maps (W_i, b_i, W_t, b_t).
    fn snapshot(&self) -> [Tensor; 4] {
        tch::no_grad(|| [&self.wi, &self.bi, &self.wt, &self.bt].map(|t| t.detach().copy()))
    }
}

/// InfoNCE both ways over a batch: pair r's image against every caption of the batch and back;
/// other captions of the same image are not negatives (they are masked out).
fn infonce(zi: &Tensor, zt: &Tensor, own: &[usize], scale: &Tensor) -> Tensor {
    let unit = |z: &Tensor| {
        z / z
            .square()
            .sum_dim_intlist([1i64].as_slice(), true, Kind::Float)
            .sqrt()
            .clamp_min(1e-12)
    };
    let n = own.len();
    let logits = unit(zi).matmul(&unit(zt).tr()) * scale;
    let mask: Vec<bool> = (0..n * n)
        .map(|k| {
            let (a, b) = (k / n, k % n);
            a != b && own[a] == own[b]
        })
        .collect();
    let mask = Tensor::from_slice(&mask).view([n as i64, n as i64]);
    let logits = logits.masked_fill(&mask, f64::NEG_INFINITY);
    let target = Tensor::arange(n as i64, (Kind::Int64, Device::Cpu));
    (logits.cross_entropy_for_logits(&target) + logits.tr().cross_entropy_for_logits(&target)) * 0.5
}

/// Everything one training run sees.
struct Data<'a, 'b> {
    /// Normalised image features, one row per image.
    images: Tensor,
    texts: Texts<'a, 'b>,
    /// (image row, caption row) of each training pair.
    pairs: Vec<(usize, Row)>,
}

/// The stop part: its images' normalised features and its main captions.
struct Stop {
    images: Array2<f32>,
    texts: SparseRows,
    owner: Vec<usize>,
}

/// Unit rows of the shared space under maps (W, b): as [`Projection`] would project them.
fn embed(w: &Tensor, b: &Tensor, x: ArrayView2<f32>) -> Result<Array2<f32>> {
    embed_blocks(w, b, x.nrows(), |r| x.slice(ndarray::s![r, ..]).to_owned())
}

/// [`embed`] of `n` rows given a block of rows at a time (sparse captions are densified so).
fn embed_blocks(
    w: &Tensor,
    b: &Tensor,
    n: usize,
    rows: impl Fn(std::ops::Range<usize>) -> Array2<f32>,
) -> Result<Array2<f32>> {
    let mut parts = Vec::new();
    for s in (0..n).step_by(CHUNK) {
        let e = n.min(s + CHUNK);
        let z = tch::no_grad(|| tensor2(rows(s..e).view()).matmul(w) + b);
        parts.push(array2(&z)?);
    }
    let views: Vec<_> = parts.iter().map(|a| a.view()).collect();
    let z = ndarray::concatenate(Axis(0), &views).map_err(|e| Error::Model(e.to_string()))?;
    Ok(super::normalize_rows(z))
}

/// R@1+5+10 both ways on the stop part, through the product's scorer and metrics.
fn stop_recall_sum(maps: &Maps, stop: &Stop) -> Result<f64> {
    let images = embed(&maps.wi, &maps.bi, stop.images.view())?;
    let texts = embed_blocks(&maps.wt, &maps.bt, stop.texts.nrows(), |r| {
        stop.texts.dense_rows(r)
    })?;
    let scorer = Scorer::new(
        ScoreOptions {
            scoring: Scoring::Csls { k: CSLS_K },
            bank: Bank::Sets,
        },
        None,
    )?;
    // Zero-padded ids keep the gallery in row order.
    let ids: Vec<String> = (0..images.nrows()).map(|i| format!("{i:09}")).collect();
    let g = scorer.prepare(Direction::TextToImage, ids, images)?;
    let (t2i, i2t) = scorer.eval_matrices(texts.view(), g.vectors())?;
    let a = metrics::evaluate(t2i.view(), &stop.owner);
    let b = metrics::evaluate(i2t.view(), &stop.owner);
    Ok(a.t2i.r1 + a.t2i.r5 + a.t2i.r10 + b.i2t.r1 + b.i2t.r5 + b.i2t.r10)
}

/// Train `maps` for at most `epochs` epochs; with a stop part, keep the best epoch (0: the
/// initial maps) and stop after `patience` epochs without improvement. Returns the maps of the
/// epoch kept, that epoch, and the history.
fn train(
    p: &ContrastiveParams,
    mut maps: Maps,
    data: &Data,
    epochs: usize,
    stop: Option<&Stop>,
    progress: bool,
    label: &str,
) -> Result<(Maps, usize, Vec<EpochRecord>)> {
    let mut opt = nn::AdamW {
        wd: 0.0,
        ..Default::default()
    }
    .build(&maps.vs, p.lr)?;
    // Each run restarts the permutations from the seed, as the study's refit did.
    let mut rng = StdRng::seed_from_u64(p.seed);
    let mut history = Vec::new();
    let mut best = (f64::NEG_INFINITY, 0, None);
    if let Some(stop) = stop {
        let r = stop_recall_sum(&maps, stop)?;
        history.push(EpochRecord {
            epoch: 0,
            loss: None,
            stop_recall_sum: r,
        });
        best = (r, 0, None);
    }
    let batches = data.pairs.len().div_ceil(p.batch);
    let mut order: Vec<usize> = (0..data.pairs.len()).collect();
    for epoch in 1..=epochs {
        let bar = crate::features::image::progress_bar(
            batches as u64,
            progress,
            &format!("{label} epoch {epoch}/{epochs}"),
        );
        order.shuffle(&mut rng);
        let mut total = 0.0;
        for chunk in order.chunks(p.batch) {
            // Sorted: the batch's rows are read in memory order (the loss does not care).
            let mut idx = chunk.to_vec();
            idx.sort_unstable();
            let own: Vec<usize> = idx.iter().map(|&k| data.pairs[k].0).collect();
            let rows: Vec<Row> = idx.iter().map(|&k| data.pairs[k].1).collect();
            let own_t = Tensor::from_slice(&own.iter().map(|&o| o as i64).collect::<Vec<_>>());
            let zi = data.images.index_select(0, &own_t).matmul(&maps.wi) + &maps.bi;
            let zt = data.texts.batch(&rows).matmul(&maps.wt) + &maps.bt;
            let mut loss = infonce(&zi, &zt, &own, &maps.scale());
            if p.pull > 0.0 {
                loss += maps.pull() * p.pull;
            }
            opt.backward_step(&loss);
            total += loss.double_value(&[]) * idx.len() as f64;
            bar.inc(1);
        }
        let loss = total / data.pairs.len() as f64;
        if !loss.is_finite() {
            return Err(Error::Linalg(format!(
                "contrastive training diverged (loss {loss} in epoch {epoch}): lower --lr"
            )));
        }
        let mut rec = EpochRecord {
            epoch,
            loss: Some(loss),
            stop_recall_sum: f64::NAN,
        };
        match stop {
            Some(stop) => {
                let r = stop_recall_sum(&maps, stop)?;
                rec.stop_recall_sum = r;
                if r > best.0 {
                    best = (r, epoch, Some(maps.snapshot()));
                }
                bar.finish_with_message(format!(
                    "{label} epoch {epoch}/{epochs}: loss {loss:.4}, stop R@1+5+10 {r:.1} (best: epoch {})",
                    best.1
                ));
            }
            None => {
                bar.finish_with_message(format!("{label} epoch {epoch}/{epochs}: loss {loss:.4}"))
            }
        }
        history.push(rec);
        if stop.is_some() && epoch - best.1 >= p.patience {
            break;
        }
    }
    let kept = match stop {
        None => epochs,
        Some(_) => {
            // None: epoch 0 was best, and the caller keeps plain CCA.
            if let Some(s) = best.2 {
                tch::no_grad(|| {
                    for (v, t) in [&mut maps.wi, &mut maps.bi, &mut maps.wt, &mut maps.bt]
                        .into_iter()
                        .zip(&s)
                    {
                        v.copy_(t);
                    }
                });
            }
            best.1
        }
    };
    Ok((maps, kept, history))
}

/// Maps (W, b) as the ordinary projection x ↦ (x − m)·W: m = −b·(WᵀW)⁻¹Wᵀ gives m·W = −b
/// exactly, as WᵀW (components × components) is invertible for a full-rank W.
fn as_mean(w: &Tensor, b: &Tensor) -> Result<(Array1<f32>, Array2<f32>)> {
    let w = array2(w)?;
    let b = Vec::<f32>::try_from(b.contiguous().view(-1))?;
    let w64 = w.mapv(f64::from);
    let b64 = Array1::from(b).mapv(f64::from);
    let inv = w64.t().dot(&w64).inv()?;
    let mean = -(b64.dot(&inv).dot(&w64.t()));
    Ok((mean.mapv(|v| v as f32), w))
}

impl ProjectionParams {
    /// `--method contrastive`: see the module documentation. `texts` are the main captions
    /// (one row per caption, `owner` their image rows), `extra` the pairs used only here.
    pub(super) fn fit_contrastive(
        &self,
        images: ArrayView2<f32>,
        owner: &[usize],
        texts: &SparseRows,
        extra: Option<&ExtraPairs>,
        progress: bool,
    ) -> Result<(Projection, ContrastiveReport)> {
        let p = self
            .contrastive
            .as_ref()
            .ok_or_else(|| Error::Param("--method contrastive needs its parameters".into()))?;
        if let Some(e) = extra {
            if e.texts.ncols() != texts.ncols() || e.owner.len() != e.texts.nrows() {
                return Err(Error::Param(
                    "extra pairs have other caption features than the training pairs".into(),
                ));
            }
            if let Some(&bad) = e.owner.iter().find(|&&o| o >= images.nrows()) {
                return Err(Error::Param(format!("extra pair image {bad} out of range")));
            }
        }
        // The checks the closed form makes, before any indexing by owner (empty data, owners
        // out of range, degenerate features).
        super::check_fit_data(
            self.image_norm
                .apply_blocks(images, &self.image_blocks)
                .view(),
            owner,
            Some(texts),
        )?;
        tch::manual_seed(p.seed as i64);
        let cca = ProjectionParams {
            method: Method::Cca,
            contrastive: None,
            ..self.clone()
        };
        // (a) The training images that have captions, split seeded into fit and stop parts.
        let mut used: Vec<usize> = owner.to_vec();
        used.sort_unstable();
        used.dedup();
        let n_stop = ((p.early_stop_fraction * used.len() as f64).round() as usize)
            .clamp(1, used.len().saturating_sub(2).max(1));
        let mut shuffled = used.clone();
        shuffled.shuffle(&mut StdRng::seed_from_u64(p.seed));
        let mut in_stop = vec![false; images.nrows()];
        for &i in &shuffled[..n_stop] {
            in_stop[i] = true;
        }
        let fit_rows: Vec<usize> = (0..owner.len()).filter(|&t| !in_stop[owner[t]]).collect();
        let stop_rows: Vec<usize> = (0..owner.len()).filter(|&t| in_stop[owner[t]]).collect();
        let mut stop_images: Vec<usize> = shuffled[..n_stop].to_vec();
        stop_images.sort_unstable();
        let mut stop_pos = vec![usize::MAX; images.nrows()];
        for (k, &i) in stop_images.iter().enumerate() {
            stop_pos[i] = k;
        }
        let normed = self.image_norm.apply_blocks(images, &self.image_blocks);
        let stop = Stop {
            images: normed.select(Axis(0), &stop_images),
            texts: texts.select(&stop_rows),
            owner: stop_rows.iter().map(|&t| stop_pos[owner[t]]).collect(),
        };
        let extra_rows = |keep: &dyn Fn(usize) -> bool| -> Vec<(usize, Row)> {
            extra.map_or_else(Vec::new, |e| {
                (0..e.owner.len())
                    .filter(|&i| keep(e.owner[i]))
                    .map(|i| (e.owner[i], Row::Extra(i)))
                    .collect()
            })
        };
        let images_t = tensor2(normed.view());

        // (b) CCA on the fit part's main pairs: the starting maps.
        let fit_owner: Vec<usize> = fit_rows.iter().map(|&t| owner[t]).collect();
        let fit_texts = texts.select(&fit_rows);
        let init = cca.fit(images, &fit_owner, &fit_texts)?;
        // (c) Train on them (+ the extra pairs of fit-part images), choosing the epoch count.
        let mut pairs: Vec<(usize, Row)> = fit_owner
            .iter()
            .enumerate()
            .map(|(t, &o)| (o, Row::Main(t)))
            .collect();
        pairs.extend(extra_rows(&|i| !in_stop[i]));
        let data = Data {
            images: images_t.shallow_clone(),
            texts: Texts {
                main: &fit_texts,
                extra: extra.map(|e| &e.texts),
            },
            pairs,
        };
        let maps = Maps::new(&init, p.temperature);
        let (_, best_epoch, history) = train(
            p,
            maps,
            &data,
            p.epochs_max,
            Some(&stop),
            progress,
            "early stop",
        )?;
        // Free the early-stopping run's copies before the full CCA.
        drop(data);
        drop(fit_texts);
        drop(stop);

        // (d) CCA on all main pairs, trained on all pairs for the chosen number of epochs.
        let full = cca.fit(images, owner, texts)?;
        let mut pairs: Vec<(usize, Row)> = owner
            .iter()
            .enumerate()
            .map(|(t, &o)| (o, Row::Main(t)))
            .collect();
        pairs.extend(extra_rows(&|_| true));
        let mut report = ContrastiveReport {
            best_epoch,
            history,
            stop_images: n_stop,
            train_pairs: pairs.len(),
            extra_pairs: pairs.len() - owner.len(),
            final_temperature: p.temperature,
            ..Default::default()
        };
        if best_epoch == 0 {
            return Ok((full, report));
        }
        let data = Data {
            images: images_t,
            texts: Texts {
                main: texts,
                extra: extra.map(|e| &e.texts),
            },
            pairs,
        };
        let (maps, _, refit) = train(
            p,
            Maps::new(&full, p.temperature),
            &data,
            best_epoch,
            None,
            progress,
            "refit",
        )?;
        report.refit_loss = refit.iter().filter_map(|r| r.loss).collect();
        report.final_temperature = 1.0 / maps.scale().double_value(&[]);
        // (e) The ordinary projection.
        let (image_mean, image_proj) = as_mean(&maps.wi, &maps.bi)?;
        let (text_mean, text_proj) = as_mean(&maps.wt, &maps.bt)?;
        let out = Projection {
            image_mean,
            image_proj,
            text_mean,
            text_proj,
            ..full
        };
        let finite = out
            .image_mean
            .iter()
            .chain(&out.image_proj)
            .chain(&out.text_mean);
        if !finite.chain(&out.text_proj).all(|v| v.is_finite()) {
            return Err(Error::Linalg(
                "the contrastive fit produced non-finite values: lower --lr".into(),
            ));
        }
        Ok((out, report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked() {
        ContrastiveParams::default().check().unwrap();
        let bad = [
            ContrastiveParams {
                lr: 0.0,
                ..Default::default()
            },
            ContrastiveParams {
                lr: f64::NAN,
                ..Default::default()
            },
            ContrastiveParams {
                early_stop_fraction: 1.0,
                ..Default::default()
            },
            ContrastiveParams {
                early_stop_fraction: 0.0,
                ..Default::default()
            },
            ContrastiveParams {
                pull: -1.0,
                ..Default::default()
            },
            ContrastiveParams {
                epochs_max: 0,
                ..Default::default()
            },
            ContrastiveParams {
                patience: 0,
                ..Default::default()
            },
        ];
        for p in bad {
            assert!(p.check().is_err(), "{p:?}");
        }
    }

    #[test]
    fn maps_convert_to_a_centred_projection_exactly() {
        let w = Tensor::from_slice(&[1.0f32, 0.5, -0.2, 2.0, 0.3, 0.1]).view([3, 2]);
        let b = Tensor::from_slice(&[0.7f32, -1.1]);
        let (m, w2) = as_mean(&w, &b).unwrap();
        // (x − m)·W must equal x·W + b.
        let x = ndarray::array![[0.3f32, -0.4, 1.2]];
        let want = array2(&(tensor2(x.view()).matmul(&w) + &b)).unwrap();
        let got = (&x - &m).dot(&w2);
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
}

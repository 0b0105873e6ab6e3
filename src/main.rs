//! tuwen command line: a thin clap shell over the library.
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use tuwen::features::image::{self, BackboneKind, ExtractOptions, ImageFeatureConfig, Pooling};
use tuwen::features::text::{TextFeatureConfig, Weighting};
use tuwen::model::Model;
use tuwen::outputs::csv as out_csv;
use tuwen::pipeline;
use tuwen::projection::{CcaParams, Method, ProjectionParams};

#[derive(Parser)]
#[command(
    name = "tuwen",
    version,
    about = "图文: Chinese image-text retrieval (Teddy Cup 2024 B) with CNN + word2vec features and a PCA + CCA shared space"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Compute (and cache) image features for the images of a pairs or id CSV.
    Extract(ExtractCmd),
    /// Learn the shared space from training pairs and save the model.
    Fit(FitCmd),
    /// Recall@1/5/10 and median rank in both directions on held-out pairs.
    Eval(EvalCmd),
    /// Answer the Teddy tasks: result1.csv (text→image) and/or result2.csv (image→text).
    Rank(RankCmd),
    /// Generate a small synthetic data set and run fit → rank → eval on it (no data needed).
    Demo(DemoCmd),
    /// Rank Teddy folders and write an HTML result sheet (thumbnails embedded) beside the result files.
    Report(ReportCmd),
    /// Split a pairs CSV by image into train/held-out files (seeded), optionally laid out as 附件2/附件3.
    Split(SplitCmd),
}

#[derive(Args, Clone)]
struct ImageArgs {
    /// CNN backbone.
    #[arg(long, value_enum, default_value = "efficientnet-lite2")]
    backbone: BackboneKind,
    /// How the last conv map becomes a vector (grid = VGG pool5, 25,088-d).
    #[arg(long, value_enum, default_value = "avg")]
    pooling: Pooling,
    /// Average features of the image and its mirror image (default on; 2× the extraction time).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    flip: bool,
    /// Weights file (default: models/<backbone>.safetensors from scripts/setup.sh).
    #[arg(long)]
    weights: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct RunArgs {
    /// Feature cache folder (default: $TUWEN_CACHE or ./tuwen-cache).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Do not read or write the feature cache.
    #[arg(long)]
    no_cache: bool,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Images per cache shard (a killed run loses at most one shard of work).
    #[arg(long, default_value_t = 256)]
    shard_size: usize,
    /// Hide progress bars.
    #[arg(long)]
    quiet: bool,
    /// Write rows that were skipped (file,row,id,reason) to this CSV.
    #[arg(long)]
    skip_list: Option<PathBuf>,
}

impl RunArgs {
    fn extract_options(&self, weights: Option<PathBuf>) -> ExtractOptions {
        ExtractOptions {
            batch_size: self.batch_size,
            shard_size: self.shard_size,
            cache_dir: if self.no_cache {
                None
            } else {
                Some(self.cache.clone().unwrap_or_else(image::default_cache_dir))
            },
            weights,
            progress: !self.quiet,
            ..Default::default()
        }
    }
}

#[derive(Args)]
struct ExtractCmd {
    /// Pairs CSV (image_id,caption) or id list (image_id).
    #[arg(long)]
    pairs: PathBuf,
    /// Image folder.
    #[arg(long)]
    images: PathBuf,
    #[command(flatten)]
    image: ImageArgs,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args)]
struct TextArgs {
    /// Token weighting in the caption mean.
    #[arg(long, value_enum, default_value = "mean")]
    weighting: Weighting,
    /// Use word2vec's raw vectors (with their norms) instead of unit vectors.
    #[arg(long)]
    raw_norm: bool,
    /// Keep stop words and punctuation.
    #[arg(long)]
    keep_stopwords: bool,
    /// No character fallback for out-of-vocabulary words.
    #[arg(long)]
    no_char_fallback: bool,
    /// Extra words for jieba's dictionary (repeatable).
    #[arg(long = "user-word")]
    user_words: Vec<String>,
    /// Word vectors (word2vec binary; default models/words.vector).
    #[arg(long)]
    vectors: Option<PathBuf>,
    /// Append a TF-IDF bag of words, characters and character bigrams to the word2vec mean
    /// (default on; `--bag false` keeps word2vec only).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    bag: bool,
    /// Bag: minimum number of training captions a term must occur in.
    #[arg(long, default_value_t = 2)]
    bag_min_df: u64,
    /// Bag: most terms kept (by document frequency).
    #[arg(long, default_value_t = 8000)]
    bag_max_terms: usize,
    /// Bag: weight of the word2vec mean beside the unit-length bag.
    #[arg(long, default_value_t = 1.0)]
    w2v_weight: f32,
    /// Bag: leave out jieba words / characters / character bigrams.
    #[arg(long)]
    bag_no_words: bool,
    #[arg(long)]
    bag_no_chars: bool,
    #[arg(long)]
    bag_no_bigrams: bool,
}

#[derive(Args)]
struct FitCmd {
    /// Training pairs CSV (image_id,caption); repeat to combine sets.
    #[arg(long, required = true)]
    pairs: Vec<PathBuf>,
    /// Image folder; give one for all --pairs, or one per --pairs in the same order.
    #[arg(long, required = true)]
    images: Vec<PathBuf>,
    /// Model folder to write.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    image: ImageArgs,
    #[command(flatten)]
    text: TextArgs,
    /// Normalise image features before the learned map.
    #[arg(long, value_enum, default_value = "sqrt-l2")]
    image_norm: tuwen::projection::ImageNorm,
    /// pca-cca: PCA per side then CCA; cca: CCA on the raw features.
    #[arg(long, value_enum, default_value = "cca")]
    method: Method,
    /// PCA dimensions of the image side (0: none).
    #[arg(long, default_value_t = 512)]
    pca_image: usize,
    /// PCA dimensions of the text side (0: none).
    #[arg(long, default_value_t = 0)]
    pca_text: usize,
    /// Whiten the PCA outputs.
    #[arg(long)]
    whiten: bool,
    /// PCA solver: eigh (exact, LAPACK) or linfa (linfa-reduction's LOBPCG; slow on wide data).
    #[arg(long, value_enum, default_value = "eigh")]
    pca_solver: tuwen::projection::pca::PcaSolver,
    /// Number of canonical components kept.
    #[arg(long, default_value_t = 256)]
    components: usize,
    /// Ridge on the image covariance, relative to its mean variance.
    #[arg(long, default_value_t = 0.3)]
    reg_image: f64,
    /// Ridge on the text covariance, relative to its mean variance.
    #[arg(long, default_value_t = 1.0)]
    reg_text: f64,
    /// Scale component k by its canonical correlation to this power.
    #[arg(long, default_value_t = 1.0)]
    power: f64,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args)]
struct EvalCmd {
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    pairs: PathBuf,
    #[arg(long)]
    images: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Word vectors, if not the default file.
    #[arg(long)]
    vectors: Option<PathBuf>,
    /// Model weights for the backbone, if not the default file.
    #[arg(long)]
    weights: Option<PathBuf>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args)]
struct RankCmd {
    #[arg(long)]
    model: PathBuf,
    /// A Teddy folder: 附件2 (word_test.csv + image_data.csv + ImageData/) gives result1.csv,
    /// 附件3 (image_test.csv + word_data.csv + ImageData/) gives result2.csv. Repeatable.
    #[arg(long = "teddy-dir")]
    teddy_dirs: Vec<PathBuf>,
    /// Task 1 files given one by one: word_test.csv.
    #[arg(long, requires_all = ["image_data", "images"])]
    word_test: Option<PathBuf>,
    /// Task 1: image_data.csv.
    #[arg(long)]
    image_data: Option<PathBuf>,
    /// Task 2: image_test.csv.
    #[arg(long, requires_all = ["word_data", "images"])]
    image_test: Option<PathBuf>,
    /// Task 2: word_data.csv.
    #[arg(long)]
    word_data: Option<PathBuf>,
    /// Image folder for files given one by one.
    #[arg(long)]
    images: Option<PathBuf>,
    /// Folder for result1.csv / result2.csv.
    #[arg(long, default_value = ".")]
    out_dir: PathBuf,
    #[arg(long)]
    vectors: Option<PathBuf>,
    #[arg(long)]
    weights: Option<PathBuf>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args)]
struct DemoCmd {
    /// Where the generated data, model and results go.
    #[arg(long, default_value = "data/generated/demo")]
    dir: PathBuf,
    /// Backbone for the demo (lite0 is the quickest).
    #[arg(long, value_enum, default_value = "efficientnet-lite0")]
    backbone: BackboneKind,
    #[arg(long, default_value_t = 240)]
    train_images: usize,
    #[arg(long, default_value_t = 60)]
    val_images: usize,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args)]
struct ReportCmd {
    #[arg(long)]
    model: PathBuf,
    /// Teddy folders (附件2 and/or 附件3 layout); a truth.csv beside them marks true matches.
    #[arg(long = "teddy-dir", required = true)]
    teddy_dirs: Vec<PathBuf>,
    /// The HTML file to write (result1.csv / result2.csv go beside it).
    #[arg(long, default_value = "report.html")]
    out: PathBuf,
    /// Queries shown per task.
    #[arg(long, default_value_t = 12)]
    n: usize,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args)]
struct SplitCmd {
    #[arg(long)]
    pairs: PathBuf,
    /// Image folder (needed with --teddy-layout).
    #[arg(long)]
    images: Option<PathBuf>,
    /// Number of images held out.
    #[arg(long)]
    held_out: usize,
    #[arg(long, default_value_t = 2024)]
    seed: u64,
    /// Output folder: train.csv, heldout.csv (and 附件2/, 附件3/ with --teddy-layout).
    #[arg(long)]
    out: PathBuf,
    /// Also lay the held-out pairs out as Teddy 附件2 and 附件3 folders with truth.csv.
    #[arg(long)]
    teddy_layout: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // After parsing, so `--help` and argument errors don't pay for a restart.
    tuwen::blas::reexec_with_fast_kernels();
    match cli.cmd {
        Cmd::Extract(c) => extract(c),
        Cmd::Fit(c) => fit(c),
        Cmd::Eval(c) => eval(c),
        Cmd::Rank(c) => rank(c),
        Cmd::Demo(c) => demo(c),
        Cmd::Split(c) => split(c),
        Cmd::Report(c) => report(c),
    }
}

fn image_config(a: &ImageArgs) -> ImageFeatureConfig {
    ImageFeatureConfig {
        backbone: a.backbone,
        pooling: a.pooling,
        flip: a.flip,
    }
}

fn report_skips(skips: &[tuwen::data::Skip], list: Option<&Path>) -> Result<()> {
    if skips.is_empty() {
        return Ok(());
    }
    let mut reasons: std::collections::BTreeMap<String, usize> = Default::default();
    for s in skips {
        let key = s.reason.split(':').next().unwrap_or("").to_string();
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

fn extract(c: ExtractCmd) -> Result<()> {
    let t = tuwen::data::read_table(&c.pairs)?;
    let col = t.column("image_id")?;
    let mut seen = std::collections::HashSet::new();
    let ids: Vec<String> = t
        .rows
        .iter()
        .map(|r| r[col].trim().to_string())
        .filter(|id| seen.insert(id.clone()))
        .collect();
    let cfg = image_config(&c.image);
    let f = image::extract(
        &ids,
        &c.images,
        &cfg,
        &c.run.extract_options(c.image.weights.clone()),
    )?;
    let s = &f.stats;
    println!(
        "{} images: {} computed ({:.2} images/s), {} from cache, {} skipped; {:.1} s; features {}-d ({})",
        s.requested, s.computed, s.images_per_second, s.from_cache, s.skipped, s.seconds, cfg.dim(), cfg.cache_key()
    );
    report_skips(&f.skipped, c.run.skip_list.as_deref())
}

fn fit(c: FitCmd) -> Result<()> {
    let sets: Vec<(PathBuf, PathBuf)> = match c.images.len() {
        1 => c
            .pairs
            .iter()
            .map(|p| (p.clone(), c.images[0].clone()))
            .collect(),
        n if n == c.pairs.len() => c
            .pairs
            .iter()
            .cloned()
            .zip(c.images.iter().cloned())
            .collect(),
        n => bail!(
            "{n} --images for {} --pairs: give one, or one per --pairs",
            c.pairs.len()
        ),
    };
    let opts = pipeline::FitOptions {
        sets,
        image: image_config(&c.image),
        text: TextFeatureConfig {
            weighting: c.text.weighting,
            unit_vectors: !c.text.raw_norm,
            remove_stopwords: !c.text.keep_stopwords,
            char_fallback: !c.text.no_char_fallback,
            user_words: c.text.user_words.clone(),
            bag: c.text.bag.then_some(tuwen::features::text::BagConfig {
                words: !c.text.bag_no_words,
                chars: !c.text.bag_no_chars,
                bigrams: !c.text.bag_no_bigrams,
                min_df: c.text.bag_min_df,
                max_terms: c.text.bag_max_terms,
                w2v_weight: c.text.w2v_weight,
            }),
            ..Default::default()
        },
        projection: ProjectionParams {
            image_norm: c.image_norm,
            method: c.method,
            pca_image: c.pca_image,
            pca_text: c.pca_text,
            whiten: c.whiten,
            pca_solver: c.pca_solver,
            cca: CcaParams::new(c.components).reg(c.reg_image, c.reg_text),
            power: c.power,
        },
        extract: c.run.extract_options(c.image.weights.clone()),
        vectors: c.text.vectors.clone(),
    };
    let (model, rep) = pipeline::fit(&opts)?;
    model
        .save(&c.out)
        .with_context(|| format!("saving the model to {}", c.out.display()))?;
    for e in &rep.extract {
        eprintln!(
            "images: {} computed ({:.2}/s), {} from cache, {} skipped",
            e.computed, e.images_per_second, e.from_cache, e.skipped
        );
    }
    eprintln!("captions: {}", rep.oov.summary());
    let top: Vec<String> = rep
        .correlations
        .iter()
        .take(5)
        .map(|c| format!("{c:.3}"))
        .collect();
    println!(
        "fitted on {} pairs / {} images in {:.1} s; canonical correlations {} …; model in {}",
        rep.pairs_used,
        rep.images_used,
        rep.fit_seconds,
        top.join(" "),
        c.out.display()
    );
    report_skips(&rep.skipped, c.run.skip_list.as_deref())
}

fn eval(c: EvalCmd) -> Result<()> {
    let model = Model::load(&c.model, None)?;
    let ex = c.run.extract_options(c.weights.clone());
    let out = pipeline::evaluate(&model, &c.pairs, &c.images, &ex, c.vectors.as_deref())?;
    let r = &out.report;
    if c.json {
        println!("{}", serde_json::to_string(r)?);
    } else {
        println!(
            "{} images × {} captions ({:.1} s)",
            r.n_images, r.n_texts, out.seconds
        );
        println!("              R@1    R@5   R@10   medr");
        for (name, x) in [("image→text", &r.i2t), ("text→image", &r.t2i)] {
            println!(
                "{name:<11} {:6.1} {:6.1} {:6.1} {:6.1}",
                x.r1, x.r5, x.r10, x.medr
            );
        }
        println!("mean recall {:.1}", r.mean_recall());
    }
    report_skips(&out.skipped, c.run.skip_list.as_deref())
}

fn rank(c: RankCmd) -> Result<()> {
    let model = Model::load(&c.model, None)?;
    let ex = c.run.extract_options(c.weights.clone());
    let mut jobs: Vec<(u8, PathBuf, PathBuf, PathBuf)> = Vec::new();
    for d in &c.teddy_dirs {
        let (wt, id) = (d.join("word_test.csv"), d.join("image_data.csv"));
        let (it, wd) = (d.join("image_test.csv"), d.join("word_data.csv"));
        let before = jobs.len();
        if wt.is_file() && id.is_file() {
            jobs.push((1, wt, id, d.join("ImageData")));
        }
        if it.is_file() && wd.is_file() {
            jobs.push((2, it, wd, d.join("ImageData")));
        }
        if jobs.len() == before {
            bail!("{}: holds neither word_test.csv + image_data.csv (附件2) nor image_test.csv + word_data.csv (附件3)", d.display());
        }
    }
    if let (Some(w), Some(i), Some(dir)) = (&c.word_test, &c.image_data, &c.images) {
        jobs.push((1, w.clone(), i.clone(), dir.clone()));
    }
    if let (Some(i), Some(w), Some(dir)) = (&c.image_test, &c.word_data, &c.images) {
        jobs.push((2, i.clone(), w.clone(), dir.clone()));
    }
    if jobs.is_empty() {
        bail!("nothing to rank: give --teddy-dir, or --word-test/--image-data/--images, or --image-test/--word-data/--images");
    }
    let mut skips = Vec::new();
    for (task, q, g, dir) in jobs {
        let out = c.out_dir.join(format!("result{task}.csv"));
        let r = if task == 1 {
            pipeline::rank_task1(&model, &q, &g, &dir, &out, &ex, c.vectors.as_deref())?
        } else {
            pipeline::rank_task2(&model, &q, &g, &dir, &out, &ex, c.vectors.as_deref())?
        };
        println!(
            "task {task}: {} queries × {} gallery items → {} ({:.1} s)",
            r.queries,
            r.gallery,
            r.path.display(),
            r.seconds
        );
        if !r.failed_queries.is_empty() {
            eprintln!(
                "task {task}: {} query images could not be read and have no results:",
                r.failed_queries.len()
            );
            for s in &r.failed_queries {
                eprintln!("  {}: {}", s.id, s.reason);
            }
        }
        if !r.failed_gallery.is_empty() {
            eprintln!(
                "task {task}: {} gallery images could not be read and are never returned",
                r.failed_gallery.len()
            );
        }
        skips.extend(r.failed_queries);
        skips.extend(r.failed_gallery);
    }
    report_skips(&skips, c.run.skip_list.as_deref())
}

fn demo(c: DemoCmd) -> Result<()> {
    let data =
        tuwen::data::synthetic::generate(&c.dir.join("data"), c.train_images, c.val_images, 7)?;
    println!(
        "generated {} + {} images under {}",
        c.train_images,
        c.val_images,
        data.root.display()
    );
    let ex = c.run.extract_options(None);
    let opts = pipeline::FitOptions {
        sets: vec![(data.train_pairs.clone(), data.images.clone())],
        image: ImageFeatureConfig {
            backbone: c.backbone,
            pooling: Pooling::Avg,
            flip: false,
        },
        text: TextFeatureConfig::default(),
        projection: ProjectionParams {
            pca_image: 64,
            cca: CcaParams::new(16).reg(0.3, 0.1),
            ..Default::default()
        },
        extract: ex.clone(),
        vectors: None,
    };
    let (model, rep) = pipeline::fit(&opts)?;
    let model_dir = c.dir.join("model");
    model.save(&model_dir)?;
    println!(
        "fit: {} pairs, model in {}",
        rep.pairs_used,
        model_dir.display()
    );
    let val = tuwen::data::read_pairs(&data.val_pairs)?;
    let (d2, d3) = (c.dir.join("附件2"), c.dir.join("附件3"));
    pipeline::layout_teddy(&val.pairs, &data.images, &d2, &d3)?;
    let r1 = pipeline::rank_task1(
        &model,
        &d2.join("word_test.csv"),
        &d2.join("image_data.csv"),
        &d2.join("ImageData"),
        &c.dir.join("result1.csv"),
        &ex,
        None,
    )?;
    let r2 = pipeline::rank_task2(
        &model,
        &d3.join("image_test.csv"),
        &d3.join("word_data.csv"),
        &d3.join("ImageData"),
        &c.dir.join("result2.csv"),
        &ex,
        None,
    )?;
    println!("rank: {} and {}", r1.path.display(), r2.path.display());
    let e = pipeline::evaluate(&model, &data.val_pairs, &data.images, &ex, None)?;
    let r = &e.report;
    println!(
        "eval on {} held-out images × {} captions: R@5 image→text {:.1}, text→image {:.1} (chance {:.1})",
        r.n_images,
        r.n_texts,
        r.i2t.r5,
        r.t2i.r5,
        500.0 / r.n_images as f64
    );
    Ok(())
}

fn report(c: ReportCmd) -> Result<()> {
    let model = Model::load(&c.model, None)?;
    let ex = c.run.extract_options(None);
    let outs = pipeline::teddy_report(&model, &c.teddy_dirs, &c.out, c.n, &ex, None)?;
    for r in &outs {
        println!(
            "task {}: {} queries → {}",
            r.task,
            r.queries,
            r.path.display()
        );
    }
    println!("report: {}", c.out.display());
    Ok(())
}

fn split(c: SplitCmd) -> Result<()> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let p = tuwen::data::read_pairs(&c.pairs)?;
    let (ids, owner) = tuwen::data::group_images(&p.pairs);
    if c.held_out >= ids.len() {
        bail!(
            "--held-out {} must be below the {} images of {}",
            c.held_out,
            ids.len(),
            c.pairs.display()
        );
    }
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(c.seed));
    let held: std::collections::HashSet<usize> = order[..c.held_out].iter().copied().collect();
    std::fs::create_dir_all(&c.out)?;
    let mut tr = csv::Writer::from_path(c.out.join("train.csv"))?;
    let mut ho = csv::Writer::from_path(c.out.join("heldout.csv"))?;
    tr.write_record(["image_id", "caption"])?;
    ho.write_record(["image_id", "caption"])?;
    let mut held_pairs = Vec::new();
    for (pair, &o) in p.pairs.iter().zip(&owner) {
        if held.contains(&o) {
            ho.write_record([&pair.image_id, &pair.caption])?;
            held_pairs.push(pair.clone());
        } else {
            tr.write_record([&pair.image_id, &pair.caption])?;
        }
    }
    tr.flush()?;
    ho.flush()?;
    println!(
        "{} images held out (seed {}), {} kept for training → {}",
        c.held_out,
        c.seed,
        ids.len() - c.held_out,
        c.out.display()
    );
    if c.teddy_layout {
        let images = c.images.context("--teddy-layout needs --images")?;
        pipeline::layout_teddy(
            &held_pairs,
            &images,
            &c.out.join("附件2"),
            &c.out.join("附件3"),
        )?;
        println!(
            "laid out as {} and {}",
            c.out.join("附件2").display(),
            c.out.join("附件3").display()
        );
    }
    Ok(())
}

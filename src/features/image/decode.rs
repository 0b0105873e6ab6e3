//! Decode by content (not by extension), apply EXIF orientation, take the first frame of animated
//! GIFs, refuse decompression bombs, and produce the backbone's square RGB input.
//!
//! Memory: every decode first reserves its peak size (the decoder's output in its own colour
//! type, the 8-bit RGB copy made from it, the decoder's own buffers, a rotated copy) from one
//! process-wide budget of [`MAX_ALLOC`] bytes and waits while other decodes hold it, so the
//! decoded images of all threads together (extraction workers, server uploads) stay within it.
//! An image whose peak alone exceeds the budget is refused before anything is allocated.
use fast_image_resize as fir;
use image::{
    metadata::Orientation, ColorType, DynamicImage, ImageDecoder, ImageFormat, ImageReader,
    RgbImage,
};
use std::io::{Cursor, Read};
use std::path::Path;
use std::sync::{Condvar, Mutex};

/// Largest side accepted; larger images are refused before allocation.
pub const MAX_SIDE: u32 = 20_000;
/// Decode budget of the whole process (bytes), shared by all concurrent decodes.
pub const MAX_ALLOC: u64 = 512 * 1024 * 1024;

/// Why an image could not be used. Shown to the user in skip lists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("file not found")]
    Missing,
    #[error("cannot read file: {0}")]
    Io(String),
    #[error("not a regular file ({0}): skipped without opening it")]
    NotAFile(&'static str),
    #[error("empty file (0 bytes)")]
    Empty,
    #[error("unrecognised image format")]
    UnknownFormat,
    #[error("unsupported format {0} (tuwen reads JPEG, PNG, GIF and WebP)")]
    Unsupported(String),
    #[error("image too large ({0}): refused as a possible decompression bomb")]
    TooLarge(String),
    #[error("corrupt or truncated image: {0}")]
    Corrupt(String),
}

/// Read an image file whole, refusing anything that is not a regular file (after following
/// links): opening a FIFO for reading blocks until a writer comes, so it is never opened plainly.
pub fn read_image_file(path: &Path) -> Result<Vec<u8>, DecodeError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => DecodeError::Missing,
        _ => DecodeError::Io(e.to_string()),
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(DecodeError::NotAFile(file_kind(&meta.file_type())));
    }
    // O_NONBLOCK: should the path become a FIFO between the check and the open, the open still
    // returns at once and the check on the opened handle refuses it.
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    let meta = f.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(DecodeError::NotAFile(file_kind(&meta.file_type())));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.read_to_end(&mut bytes).map_err(io)?;
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    Ok(bytes)
}

fn file_kind(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a plain file"
    }
}

/// A byte budget that decodes reserve from before allocating, waiting while it is in use.
pub struct DecodeBudget {
    total: u64,
    used: Mutex<u64>,
    freed: Condvar,
}

/// Bytes held from a [`DecodeBudget`] until dropped.
pub struct Reservation<'a> {
    budget: &'a DecodeBudget,
    bytes: u64,
}

impl DecodeBudget {
    pub const fn new(total: u64) -> DecodeBudget {
        DecodeBudget {
            total,
            used: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// Bytes reserved now.
    pub fn used(&self) -> u64 {
        *self.used.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserve `bytes` (at most the total), waiting until they are free.
    pub fn reserve(&self, bytes: u64) -> Reservation<'_> {
        let bytes = bytes.min(self.total);
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        while *used + bytes > self.total {
            used = self.freed.wait(used).unwrap_or_else(|e| e.into_inner());
        }
        *used += bytes;
        Reservation {
            budget: self,
            bytes,
        }
    }
}

impl Reservation<'_> {
    /// Give back all but `bytes` (what is still held after the decoder's buffers are freed).
    pub fn shrink_to(&mut self, bytes: u64) {
        if bytes < self.bytes {
            let mut used = self.budget.used.lock().unwrap_or_else(|e| e.into_inner());
            *used -= self.bytes - bytes;
            self.bytes = bytes;
            self.budget.freed.notify_all();
        }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.shrink_to(0);
    }
}

/// The process's decode budget.
pub static BUDGET: DecodeBudget = DecodeBudget::new(MAX_ALLOC);

/// A decoded RGB image; its memory stays counted in [`BUDGET`] until it is dropped, so keep it
/// only as long as needed (resize or thumbnail it, then let it go).
pub struct Decoded {
    image: RgbImage,
    _held: Reservation<'static>,
}

impl std::ops::Deref for Decoded {
    type Target = RgbImage;
    fn deref(&self) -> &RgbImage {
        &self.image
    }
}

impl std::fmt::Debug for Decoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Decoded({}x{})", self.image.width(), self.image.height())
    }
}

/// Decode an image file's bytes into an RGB image, oriented as its EXIF tag says.
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| DecodeError::Io(e.to_string()))?;
    let format = match reader.format() {
        None => return Err(DecodeError::UnknownFormat),
        Some(ImageFormat::Jpeg) if !jpeg_has_end(bytes) => {
            return Err(DecodeError::Corrupt(
                "JPEG data ends before its end-of-image marker".into(),
            ))
        }
        Some(f @ (ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::Gif | ImageFormat::WebP)) => {
            f
        }
        // Recognised by its signature but not built in: say so, rather than "corrupt".
        Some(other) => {
            return Err(DecodeError::Unsupported(
                format!("{other:?}").to_uppercase(),
            ))
        }
    };
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let classify = |e: image::ImageError| match e {
        image::ImageError::Limits(l) => DecodeError::TooLarge(l.to_string()),
        other => DecodeError::Corrupt(other.to_string()),
    };
    let mut decoder = reader.into_decoder().map_err(classify)?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(DecodeError::Corrupt("zero-sized image".into()));
    }
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(DecodeError::TooLarge(format!("{w}x{h}")));
    }
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let color = decoder.color_type();
    let cost = decode_cost(format, color, w, h, orientation, bytes);
    if cost > BUDGET.total() {
        return Err(DecodeError::TooLarge(format!(
            "{w}x{h} {} needs {} MiB to decode, over the {} MiB limit",
            color_name(color),
            cost.div_ceil(1 << 20),
            BUDGET.total() >> 20
        )));
    }
    let mut held = BUDGET.reserve(cost);
    // For GIF (animated or not) the plain decoder yields the first frame.
    let img = DynamicImage::from_decoder(decoder).map_err(classify)?;
    let mut rgb = DynamicImage::ImageRgb8(flatten_to_rgb(img));
    // Oriented after the conversion, so a rotation copies the 8-bit image, not a 16-bit one.
    rgb.apply_orientation(orientation);
    let image = rgb.into_rgb8();
    held.shrink_to(image.as_raw().len() as u64);
    Ok(Decoded { image, _held: held })
}

/// How a network's square input is cut from an image: part of the feature spec.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Crop {
    /// The centre square, resized to the input size (the longer side's ends are cut off).
    #[default]
    Centre,
    /// The whole image resized to the input square, its aspect ratio not kept: nothing is cut.
    Whole,
    /// The standard multi-crop: the shorter side scaled to round(size·256/224), then
    /// size×size crops at the 4 corners and the centre; their pooled features are averaged.
    Five,
}

impl Crop {
    pub fn name(&self) -> &'static str {
        match self {
            Crop::Centre => "centre",
            Crop::Whole => "whole",
            Crop::Five => "five",
        }
    }

    /// Views cut per image (before flip doubles them).
    pub fn views(&self) -> usize {
        match self {
            Crop::Centre | Crop::Whole => 1,
            Crop::Five => 5,
        }
    }

    /// The default: absent from older caches' keys and models' configs, which it therefore
    /// still matches.
    pub fn is_centre(&self) -> bool {
        *self == Crop::Centre
    }

    /// The shorter side a decode must keep for an input of `size`.
    fn decode_side(&self, size: u32) -> u32 {
        match self {
            Crop::Centre | Crop::Whole => size,
            Crop::Five => five_crop_scale(size),
        }
    }
}

impl std::str::FromStr for Crop {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "centre" | "center" => Ok(Crop::Centre),
            "whole" => Ok(Crop::Whole),
            "five" => Ok(Crop::Five),
            _ => Err(format!("unknown crop `{s}` (centre, whole or five)")),
        }
    }
}

/// The shorter side the five crops of an input of `size` are taken from: round(size·256/224)
/// (256 for 224, 297 for 260), as torchvision's Resize(256) + FiveCrop(224).
pub fn five_crop_scale(size: u32) -> u32 {
    (size as f64 * 256.0 / 224.0).round() as u32
}

/// The pixels a network of input `size` sees with `crop`: the image decoded (a large JPEG at
/// reduced scale, see [`decode_at_least`]), oriented, cut into [`Crop::views`] views of
/// `size`×`size`. The one way from file bytes to network input, for extraction, `serve` uploads
/// and `explain` alike; the decoded image (and its share of the decode budget) is let go here.
pub fn network_views(bytes: &[u8], size: u32, crop: Crop) -> Result<Vec<RgbImage>, DecodeError> {
    let img = decode_at_least(bytes, crop.decode_side(size))?;
    Ok(cut_views(&img, size, crop))
}

/// [`network_views`] for several networks at once (`wants`: input size and crop of each): the
/// file is decoded once for all sides that [`decode_at_least`] would decode alike, so each
/// network gets exactly the views [`network_views`] gives it alone.
pub fn network_views_many(
    bytes: &[u8],
    wants: &[(u32, Crop)],
) -> Vec<Result<Vec<RgbImage>, DecodeError>> {
    let sides: Vec<u32> = wants.iter().map(|(s, c)| c.decode_side(*s)).collect();
    if wants.len() == 1 {
        return vec![network_views(bytes, wants[0].0, wants[0].1)];
    }
    let plans: Vec<Option<(u32, u32)>> = sides.iter().map(|&s| decode_plan(bytes, s)).collect();
    let mut out: Vec<Option<Result<Vec<RgbImage>, DecodeError>>> = vec![None; wants.len()];
    for i in 0..wants.len() {
        if out[i].is_some() {
            continue;
        }
        let img = decode_at_least(bytes, sides[i]);
        for j in i..wants.len() {
            if out[j].is_none() && plans[j] == plans[i] {
                out[j] = Some(match &img {
                    Ok(d) => Ok(cut_views(d, wants[j].0, wants[j].1)),
                    Err(e) => Err(e.clone()),
                });
            }
        }
    }
    out.into_iter().flatten().collect()
}

/// [`network_views`] of the default crop (the centre square): one view.
pub fn network_input(bytes: &[u8], size: u32) -> Result<RgbImage, DecodeError> {
    let mut v = network_views(bytes, size, Crop::Centre)?;
    Ok(v.swap_remove(0))
}

/// The views of a decoded image ([`network_views`]). Every view is cut in source coordinates
/// before it is resized, so an elongated image (20000×1) costs no more than its views.
pub fn cut_views(img: &RgbImage, size: u32, crop: Crop) -> Vec<RgbImage> {
    match crop {
        Crop::Centre => vec![resize_center_crop(img, size)],
        Crop::Whole => vec![resize_whole(img, size)],
        Crop::Five => five_crops(img, size),
    }
}

/// The whole image resized to `size`×`size` (aspect not kept).
pub fn resize_whole(img: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    resample(img, (0, 0, w, h), size, size)
}

/// The five crops (top-left, top-right, bottom-left, bottom-right, centre), each resized to
/// `size`×`size`. Scaling the shorter side to s' = [`five_crop_scale`] and cutting `size`
/// squares is done the other way round: squares of side shorter·size/s' are cut from the
/// source and each resized, which never makes the (possibly huge) scaled image.
pub fn five_crops(img: &RgbImage, size: u32) -> Vec<RgbImage> {
    let (w, h) = img.dimensions();
    let short = w.min(h).max(1);
    let side = ((short as u64 * size as u64) as f64 / five_crop_scale(size).max(1) as f64).round();
    let c = (side as u32).clamp(1, short).min(w).min(h);
    let (r, b) = (w - c, h - c);
    [(0, 0), (r, 0), (0, b), (r, b), (r / 2, b / 2)]
        .into_iter()
        .map(|(x, y)| resample(img, (x, y, c, c), size, size))
        .collect()
}

/// Decode with the shorter side at least `min_side` pixels, or whole: a JPEG whose shorter side
/// is at least twice `min_side` is decoded at 1/2, 1/4 or 1/8 scale in the DCT domain (the
/// largest reduction that keeps `min_side`), which skips most of the inverse DCT, the colour
/// conversion and the resize work of a photo far larger than the network's input (Teddy images
/// reach 4720×3785; 1/8 is then still 590×473). Anything else, or a JPEG that decoder cannot
/// read (CMYK, 16-bit, damaged), goes through [`decode`] unchanged.
pub fn decode_at_least(bytes: &[u8], min_side: u32) -> Result<Decoded, DecodeError> {
    match decode_jpeg_scaled(bytes, min_side) {
        Some(d) => Ok(d),
        None => decode(bytes),
    }
}

/// The DCT scale denominator (2, 4 or 8) for a JPEG of `w`×`h` that must keep a shorter side of
/// at least `min_side`, or `None` when it must be decoded whole.
pub fn jpeg_scale_denominator(w: u32, h: u32, min_side: u32) -> Option<u32> {
    let side = w.min(h);
    [8u32, 4, 2]
        .into_iter()
        .find(|&d| min_side > 0 && side.div_ceil(d) >= min_side)
}

/// Peak bytes of decoding a `w`×`h` JPEG at `sw`×`sh`: the file, a progressive image's
/// coefficients (full size, 2 bytes per component and pixel), the decoder's scaled component
/// planes and output, the RGB copy, a rotated copy, and per-row buffers of the full width.
pub fn scaled_jpeg_cost(bytes: &[u8], w: u32, h: u32, sw: u32, sh: u32, channels: u64) -> u64 {
    let (progressive, components) = jpeg_frame(bytes).unwrap_or((true, 4));
    let full = w as u64 * h as u64;
    let px = sw as u64 * sh as u64;
    let coefficients = if progressive {
        full * components * 2
    } else {
        0
    };
    bytes.len() as u64 + coefficients + px * (components + channels + 3 + 6) + full / 16 + (4 << 20)
}

/// A JPEG ready to be decoded at reduced scale for `min_side`: the decoder (header read, scale
/// set), its pixel format, full and scaled sizes, channels. `None`: [`decode_at_least`] takes
/// the full decoder for this side.
type ScaledJpeg<'a> = (
    jpeg_decoder::Decoder<Cursor<&'a [u8]>>,
    jpeg_decoder::PixelFormat,
    (u32, u32),
    (u32, u32),
    u64,
);

fn scaled_jpeg_plan(bytes: &[u8], min_side: u32) -> Option<ScaledJpeg<'_>> {
    if !bytes.starts_with(&[0xFF, 0xD8, 0xFF]) || !jpeg_has_end(bytes) {
        return None;
    }
    let mut dec = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    dec.read_info().ok()?;
    let info = dec.info()?;
    let (w, h) = (info.width as u32, info.height as u32);
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
        return None;
    }
    let channels: u64 = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => 1,
        jpeg_decoder::PixelFormat::RGB24 => 3,
        // CMYK/YCCK and 16-bit: the full decoder's colour handling.
        _ => return None,
    };
    let d = jpeg_scale_denominator(w, h, min_side)?;
    let (sw, sh) = dec.scale(w.div_ceil(d) as u16, h.div_ceil(d) as u16).ok()?;
    let (sw, sh) = (sw as u32, sh as u32);
    if sw.min(sh) < min_side {
        return None;
    }
    if scaled_jpeg_cost(bytes, w, h, sw, sh, channels) > BUDGET.total() {
        return None; // let the full path refuse it with its message
    }
    Some((dec, info.pixel_format, (w, h), (sw, sh), channels))
}

/// How [`decode_at_least`] decodes `bytes` for `min_side`: at this reduced size, or whole
/// (`None`). Two sides with the same plan get the same image (the decode is deterministic).
pub fn decode_plan(bytes: &[u8], min_side: u32) -> Option<(u32, u32)> {
    scaled_jpeg_plan(bytes, min_side).map(|p| p.3)
}

fn decode_jpeg_scaled(bytes: &[u8], min_side: u32) -> Option<Decoded> {
    let (mut dec, pixel_format, (w, h), (sw, sh), channels) = scaled_jpeg_plan(bytes, min_side)?;
    let orientation = dec
        .exif_data()
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    let mut held = BUDGET.reserve(scaled_jpeg_cost(bytes, w, h, sw, sh, channels));
    let raw = dec.decode().ok()?;
    let rgb = match pixel_format {
        jpeg_decoder::PixelFormat::L8 => {
            let grey = image::GrayImage::from_raw(sw, sh, raw)?;
            DynamicImage::ImageLuma8(grey).into_rgb8()
        }
        _ => RgbImage::from_raw(sw, sh, raw)?,
    };
    let mut rgb = DynamicImage::ImageRgb8(rgb);
    rgb.apply_orientation(orientation);
    let image = rgb.into_rgb8();
    held.shrink_to(image.as_raw().len() as u64);
    Some(Decoded { image, _held: held })
}

/// Peak bytes of decoding one image: the larger of (decoder output + its own buffers),
/// (decoder output + the 8-bit copy made from it) and (RGB image + a rotated copy).
/// The decoders' own buffers were measured (tests/bounded_memory.rs checks the total).
pub fn decode_cost(
    format: ImageFormat,
    color: ColorType,
    w: u32,
    h: u32,
    orientation: Orientation,
    bytes: &[u8],
) -> u64 {
    let px = w as u64 * h as u64;
    let native = px * color.bytes_per_pixel() as u64;
    let scratch = match format {
        // The JPEG decoder copies the file; a progressive one keeps every DCT coefficient
        // (2 bytes per component and pixel); both keep component planes and a row buffer.
        ImageFormat::Jpeg => {
            let (progressive, components) = jpeg_frame(bytes).unwrap_or((true, 4));
            bytes.len() as u64 + px * (components * if progressive { 2 } else { 1 } + 1)
        }
        // Lossless WebP decodes into RGBA and copies out; lossy into YUV planes.
        ImageFormat::WebP => px * 4,
        // The first frame's palette indices.
        ImageFormat::Gif => px,
        _ => 0,
    };
    // Allocator rounding and small buffers (rows, tables): measured under 0.2 bytes per pixel.
    let slack = px / 4 + (4 << 20);
    let converted = match color {
        ColorType::Rgb8 | ColorType::Rgba8 => 0,
        c if c.has_alpha() => px * 4,
        _ => px * 3,
    };
    let rotated = match orientation {
        Orientation::Rotate90
        | Orientation::Rotate270
        | Orientation::Rotate90FlipH
        | Orientation::Rotate270FlipH => px * 6,
        _ => 0,
    };
    (native + scratch).max(native + converted).max(rotated) + slack
}

fn color_name(c: ColorType) -> &'static str {
    match c {
        ColorType::L8 => "grey",
        ColorType::La8 => "grey+alpha",
        ColorType::Rgb8 => "RGB",
        ColorType::Rgba8 => "RGBA",
        ColorType::L16 => "16-bit grey",
        ColorType::La16 => "16-bit grey+alpha",
        ColorType::Rgb16 => "16-bit RGB",
        ColorType::Rgba16 => "16-bit RGBA",
        ColorType::Rgb32F => "float RGB",
        ColorType::Rgba32F => "float RGBA",
        _ => "image",
    }
}

/// (progressive, number of components) from a JPEG's frame header, if one is found.
fn jpeg_frame(bytes: &[u8]) -> Option<(bool, u64)> {
    let mut i = 2; // after SOI
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return None;
        }
        let marker = bytes[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
        if (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            let nf = *bytes.get(i + 9)? as u64;
            return Some((matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE), nf.max(1)));
        }
        if marker == 0xDA {
            return None; // scan before frame header: malformed
        }
        i += 2 + len;
    }
    None
}

/// The JPEG decoder fills a cut-off scan with grey instead of failing; a whole file has an EOI
/// marker (FF D9) after its first scan (FF DA), which cannot occur inside entropy-coded data.
fn jpeg_has_end(bytes: &[u8]) -> bool {
    let Some(sos) = bytes.windows(2).position(|w| w == [0xFF, 0xDA]) else {
        return false;
    };
    bytes[sos..].windows(2).any(|w| w == [0xFF, 0xD9])
}

/// Transparent pixels are composited on white: a logo on a transparent background looks like it
/// does in a browser, not like it sits on black. The RGBA buffer is turned into RGB in place (each
/// pixel is read before its bytes are overwritten), so no third copy is made.
fn flatten_to_rgb(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.into_rgb8();
    }
    let (w, h) = (img.width(), img.height());
    let mut buf = img.into_rgba8().into_raw();
    let n = buf.len() / 4;
    for i in 0..n {
        let p = [buf[4 * i], buf[4 * i + 1], buf[4 * i + 2], buf[4 * i + 3]];
        let a = p[3] as f32 / 255.0;
        for c in 0..3 {
            buf[3 * i + c] = (p[c] as f32 * a + 255.0 * (1.0 - a)).round() as u8;
        }
    }
    buf.truncate(n * 3);
    buf.shrink_to_fit();
    RgbImage::from_raw(w, h, buf).expect("3 bytes per pixel")
}

/// Cut the centre square of the image and resize it to `size`×`size` (the shorter side is
/// scaled to `size`, the longer one cropped). The square is cut in source coordinates, so a
/// very elongated image (say 20000×1) costs no more than its square.
pub fn resize_center_crop(img: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let side = w.min(h).max(1);
    let (cw, ch) = (side.min(w), side.min(h));
    resample(img, ((w - cw) / 2, (h - ch) / 2, cw, ch), size, size)
}

/// The region `(x, y, w, h)` of `img` resampled to `out_w`×`out_h`: a convolution with the
/// triangle (bilinear) kernel widened by the scale factor, as Pillow's BILINEAR, in 8-bit fixed
/// point (`fast_image_resize`, SIMD). Integer arithmetic: every CPU extension gives the same
/// pixels (a test checks), so features do not depend on the machine's vector unit.
pub fn resample(img: &RgbImage, region: (u32, u32, u32, u32), out_w: u32, out_h: u32) -> RgbImage {
    thread_local! {
        // Reused across calls: its buffers are the intermediate rows of the two passes.
        static RESIZER: std::cell::RefCell<fir::Resizer> =
            std::cell::RefCell::new(fir::Resizer::new());
    }
    RESIZER.with(|r| {
        let mut r = r.borrow_mut();
        let out = resample_with(&mut r, img, region, out_w, out_h);
        // A huge source (a 20000-pixel strip) leaves large buffers behind: let them go.
        if r.size_of_internal_buffers() > 16 << 20 {
            r.reset_internal_buffers();
        }
        out
    })
}

fn resample_with(
    resizer: &mut fir::Resizer,
    img: &RgbImage,
    (x, y, w, h): (u32, u32, u32, u32),
    out_w: u32,
    out_h: u32,
) -> RgbImage {
    let src = fir::images::ImageRef::new(
        img.width(),
        img.height(),
        img.as_raw(),
        fir::PixelType::U8x3,
    )
    .expect("an RGB image's buffer holds its pixels");
    let mut dst = fir::images::Image::new(out_w.max(1), out_h.max(1), fir::PixelType::U8x3);
    let opts = fir::ResizeOptions::new()
        .resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::Bilinear))
        .crop(x as f64, y as f64, w.max(1) as f64, h.max(1) as f64);
    resizer
        .resize(&src, &mut dst, &opts)
        .expect("the region lies inside the image and both are RGB");
    RgbImage::from_raw(out_w.max(1), out_h.max(1), dst.into_vec())
        .expect("an RGB image of the output size")
}

/// A thumbnail at most `max_w` wide for display. Aspect ratios beyond 4:1 are cut to 4:1 around
/// the centre in source coordinates first, so no side rounds to zero and memory stays bounded.
pub fn thumbnail(img: &RgbImage, max_w: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let (cw, ch) = (
        w.min(h.saturating_mul(4)).max(1),
        h.min(w.saturating_mul(4)).max(1),
    );
    let (cw, ch) = (cw.min(w), ch.min(h));
    let view = image::imageops::crop_imm(img, (w - cw) / 2, (h - ch) / 2, cw, ch);
    let tw = max_w.min(cw).max(1);
    let th = ((ch as u64 * tw as u64 / cw.max(1) as u64) as u32).max(1);
    image::imageops::thumbnail(&*view, tw, th)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elongated_images_are_cropped_before_resizing() {
        for (w, h) in [(20_000, 1), (1, 20_000), (3, 7), (300, 200)] {
            let img = RgbImage::from_fn(w, h, |x, y| {
                image::Rgb([(x % 256) as u8, (y % 256) as u8, 7])
            });
            let out = resize_center_crop(&img, 224);
            assert_eq!(out.dimensions(), (224, 224));
            let t = thumbnail(&img, 160);
            assert!(t.width() >= 1 && t.height() >= 1 && t.width() <= 160);
            assert!(t.width() <= 4 * t.height() + 4 && t.height() <= 4 * t.width() + 4);
        }
        // A 1-pixel-high strip: the output is the centre pixel's colour (x = 9999) everywhere.
        let img = RgbImage::from_fn(20_000, 1, |x, _| image::Rgb([(x / 100) as u8, 0, 0]));
        let out = resize_center_crop(&img, 8);
        assert!(out.pixels().all(|p| p.0 == [99, 0, 0]));
    }

    #[test]
    fn a_reservation_waits_until_the_budget_is_free() {
        let b = DecodeBudget::new(100);
        let first = b.reserve(60);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| {
                let second = b.reserve(60);
                tx.send(b.used()).unwrap();
                drop(second);
            });
            // 60 + 60 > 100: the second cannot have its bytes while the first holds them.
            assert!(rx
                .recv_timeout(std::time::Duration::from_millis(200))
                .is_err());
            assert_eq!(b.used(), 60);
            drop(first);
            assert_eq!(
                rx.recv().unwrap(),
                60,
                "the second got its bytes once freed"
            );
        });
        assert_eq!(b.used(), 0);
        let mut r = b.reserve(1_000);
        assert_eq!(
            b.used(),
            100,
            "an oversized reservation is capped at the total"
        );
        r.shrink_to(30);
        assert_eq!(b.used(), 30);
    }

    #[test]
    fn grey_alpha_is_flattened_on_white_in_place() {
        let mut png = Vec::new();
        DynamicImage::ImageLumaA8(image::GrayAlphaImage::from_fn(5, 3, |x, _| {
            image::LumaA([100, if x == 0 { 0 } else { 255 }])
        }))
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .unwrap();
        let img = decode(&png).unwrap();
        assert_eq!(img.dimensions(), (5, 3));
        assert_eq!(
            img.get_pixel(0, 0).0,
            [255, 255, 255],
            "transparent is white"
        );
        assert_eq!(img.get_pixel(1, 0).0, [100, 100, 100]);
        assert_eq!(img.as_raw().len(), 5 * 3 * 3);
        drop(img);
        let jpeg_like = [0xFF, 0xD8, 0xFF, 0xC2, 0, 11, 8, 0, 1, 0, 1, 3];
        assert_eq!(jpeg_frame(&jpeg_like), Some((true, 3)));
    }

    #[test]
    fn square_images_are_resized_whole() {
        let img = RgbImage::from_fn(10, 10, |x, y| {
            image::Rgb([(x * 20) as u8, (y * 20) as u8, 0])
        });
        let out = resize_center_crop(&img, 20);
        assert_eq!(out, resize_whole(&img, 20));
        // A side equal to the input is the image itself.
        assert_eq!(resize_center_crop(&img, 10), img);
    }

    /// The resampler's integer kernels give the same pixels on every vector unit (so features
    /// do not depend on whether the machine has AVX2), and close to image's own Triangle filter
    /// (the resampler of preprocessing version 3).
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn resampling_is_the_same_on_every_cpu_extension() {
        let mut seed = 7u64;
        let img = RgbImage::from_fn(541, 719, |x, y| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = (seed >> 59) as u32;
            image::Rgb([
                ((x * 3 + noise) % 256) as u8,
                ((y / 2 + x / 5) % 256) as u8,
                (((x ^ y) + noise) % 256) as u8,
            ])
        });
        let region = (0, 89, 541, 541);
        let mut outs = Vec::new();
        for ext in [
            fir::CpuExtensions::None,
            fir::CpuExtensions::Sse4_1,
            fir::CpuExtensions::Avx2,
        ] {
            if !ext.is_supported() {
                continue;
            }
            for (w, h) in [(260, 260), (224, 224), (600, 600), (97, 13)] {
                let mut r = fir::Resizer::new();
                // SAFETY: only extensions this CPU supports.
                unsafe { r.set_cpu_extensions(ext) };
                outs.push(((w, h), ext, resample_with(&mut r, &img, region, w, h)));
            }
        }
        assert!(outs.len() >= 8, "at least the plain and SSE4.1 kernels ran");
        for (size, ext, out) in &outs {
            let plain = &outs.iter().find(|o| o.0 == *size).unwrap().2;
            assert_eq!(out, plain, "{ext:?} at {size:?}");
        }
        let sq = image::imageops::crop_imm(&img, 0, 89, 541, 541).to_image();
        let old = image::imageops::resize(&sq, 260, 260, image::imageops::FilterType::Triangle);
        let new = resample(&img, region, 260, 260);
        let mean = old
            .as_raw()
            .iter()
            .zip(new.as_raw())
            .map(|(a, b)| (*a as f64 - *b as f64).abs())
            .sum::<f64>()
            / old.as_raw().len() as f64;
        assert!(
            mean < 1.0,
            "mean difference {mean} levels from the Triangle filter"
        );
        assert_ne!(old, new, "a different resampler");
    }
}

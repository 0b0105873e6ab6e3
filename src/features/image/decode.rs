//! Decode by content (not by extension), apply EXIF orientation, take the first frame of animated
//! GIFs, refuse decompression bombs, and produce the backbone's square RGB input.
use image::{imageops::FilterType, DynamicImage, ImageDecoder, ImageReader, RgbImage};
use std::io::Cursor;

/// Largest side and decoded size accepted; larger images are refused before allocation.
pub const MAX_SIDE: u32 = 20_000;
pub const MAX_ALLOC: u64 = 512 * 1024 * 1024;

/// Why an image could not be used. Shown to the user in skip lists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("file not found")]
    Missing,
    #[error("cannot read file: {0}")]
    Io(String),
    #[error("empty file (0 bytes)")]
    Empty,
    #[error("unrecognised image format")]
    UnknownFormat,
    #[error("image too large ({0}): refused as a possible decompression bomb")]
    TooLarge(String),
    #[error("corrupt or truncated image: {0}")]
    Corrupt(String),
}

/// Decode an image file's bytes into an RGB image, oriented as its EXIF tag says.
pub fn decode(bytes: &[u8]) -> Result<RgbImage, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| DecodeError::Io(e.to_string()))?;
    match reader.format() {
        None => return Err(DecodeError::UnknownFormat),
        Some(image::ImageFormat::Jpeg) if !jpeg_has_end(bytes) => {
            return Err(DecodeError::Corrupt(
                "JPEG data ends before its end-of-image marker".into(),
            ))
        }
        _ => {}
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let classify = |e: image::ImageError| match e {
        image::ImageError::Limits(l) => DecodeError::TooLarge(l.to_string()),
        image::ImageError::Unsupported(u) => DecodeError::Corrupt(u.to_string()),
        other => DecodeError::Corrupt(other.to_string()),
    };
    let mut decoder = reader.into_decoder().map_err(classify)?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(DecodeError::Corrupt("zero-sized image".into()));
    }
    if w > MAX_SIDE || h > MAX_SIDE || decoder.total_bytes() > MAX_ALLOC {
        return Err(DecodeError::TooLarge(format!("{w}x{h}")));
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    // For GIF (animated or not) the plain decoder yields the first frame.
    let mut img = DynamicImage::from_decoder(decoder).map_err(classify)?;
    img.apply_orientation(orientation);
    Ok(flatten_to_rgb(img))
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
/// does in a browser, not like it sits on black.
fn flatten_to_rgb(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.to_rgb8();
    }
    let rgba = img.to_rgba8();
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let p = rgba.get_pixel(x, y).0;
        let a = p[3] as f32 / 255.0;
        image::Rgb([0, 1, 2].map(|c| (p[c] as f32 * a + 255.0 * (1.0 - a)).round() as u8))
    })
}

/// Cut the centre square of the image and resize it to `size`×`size` (the shorter side is
/// scaled to `size`, the longer one cropped). The square is cut in source coordinates first, so
/// a very elongated image (say 20000×1) costs no more than its square: resizing the whole image
/// first would allocate gigabytes for it.
pub fn resize_center_crop(img: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let side = w.min(h).max(1);
    let (x, y) = ((w - side.min(w)) / 2, (h - side.min(h)) / 2);
    let square = image::imageops::crop_imm(img, x, y, side.min(w), side.min(h));
    // Large photos: a cheap box-filter pre-shrink keeps Triangle resampling from dominating.
    if side > 4 * size {
        let pre = image::imageops::thumbnail(&*square, size * 2, size * 2);
        image::imageops::resize(&pre, size, size, FilterType::Triangle)
    } else {
        image::imageops::resize(&*square, size, size, FilterType::Triangle)
    }
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
    fn square_images_are_resized_whole() {
        let img = RgbImage::from_fn(10, 10, |x, y| {
            image::Rgb([(x * 20) as u8, (y * 20) as u8, 0])
        });
        let out = resize_center_crop(&img, 20);
        let direct = image::imageops::resize(&img, 20, 20, FilterType::Triangle);
        assert_eq!(out, direct);
    }
}

//! A small generated data set (coloured shapes with Chinese captions) laid out like the Teddy Cup
//! attachments, so the whole pipeline runs and is tested without ../shared or any download.
use crate::error::{Error, Result};
use image::{ImageFormat, Rgb, RgbImage};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::io::Write;
use std::path::{Path, PathBuf};

const COLORS: [(&str, [u8; 3]); 6] = [
    ("红色", [220, 30, 30]),
    ("绿色", [30, 170, 40]),
    ("蓝色", [30, 60, 220]),
    ("黄色", [240, 220, 20]),
    ("黑色", [15, 15, 15]),
    ("白色", [245, 245, 245]),
];
const SHAPES: [&str; 4] = ["圆形", "方形", "三角形", "条纹"];
const TEMPLATES: [&str; 4] = [
    "一个{c}的{s}",
    "画面中间有{c}{s}",
    "{c}的{s}图案",
    "这是一个{c}{s}",
];

/// Where `generate` put things.
#[derive(Debug, Clone)]
pub struct Synthetic {
    pub root: PathBuf,
    pub images: PathBuf,
    pub train_pairs: PathBuf,
    pub val_pairs: PathBuf,
}

/// Generate `n_train` + `n_val` images (two captions each) under `root`: `ImageData/`,
/// `train.csv`, `val.csv`. Deterministic for a given seed.
pub fn generate(root: &Path, n_train: usize, n_val: usize, seed: u64) -> Result<Synthetic> {
    let images = root.join("ImageData");
    std::fs::create_dir_all(&images).map_err(|e| Error::io(&images, e))?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut rows = Vec::new();
    for i in 0..n_train + n_val {
        let (ci, si) = (
            rng.gen_range(0..COLORS.len()),
            rng.gen_range(0..SHAPES.len()),
        );
        let bg_ci = loop {
            let b = rng.gen_range(0..COLORS.len());
            if b != ci {
                break b;
            }
        };
        let img = draw(&mut rng, COLORS[ci].1, COLORS[bg_ci].1, si);
        let id = format!("Image{:08}-{:04}.jpg", 14000000 + i / 100, i);
        let path = images.join(&id);
        // A few PNGs named .jpg, as in the real data: decoding must go by content.
        let fmt = if i % 7 == 3 {
            ImageFormat::Png
        } else {
            ImageFormat::Jpeg
        };
        img.save_with_format(&path, fmt)
            .map_err(|e| Error::file(&path, e.to_string()))?;
        let mut t: Vec<usize> = (0..TEMPLATES.len()).collect();
        for k in 0..2 {
            let j = rng.gen_range(k..t.len());
            t.swap(k, j);
            let cap = TEMPLATES[t[k]]
                .replace("{c}", COLORS[ci].0)
                .replace("{s}", SHAPES[si]);
            rows.push((i < n_train, id.clone(), cap));
        }
    }
    let write = |name: &str, train: bool| -> Result<PathBuf> {
        let p = root.join(name);
        let mut f = std::fs::File::create(&p).map_err(|e| Error::io(&p, e))?;
        let mut s = String::from("image_id,caption\n");
        for (_, id, cap) in rows.iter().filter(|r| r.0 == train) {
            s.push_str(&format!("{id},{cap}\n"));
        }
        f.write_all(s.as_bytes()).map_err(|e| Error::io(&p, e))?;
        Ok(p)
    };
    Ok(Synthetic {
        root: root.to_path_buf(),
        images,
        train_pairs: write("train.csv", true)?,
        val_pairs: write("val.csv", false)?,
    })
}

fn draw(rng: &mut StdRng, fg: [u8; 3], bg: [u8; 3], shape: usize) -> RgbImage {
    let (w, h) = (rng.gen_range(180..300), rng.gen_range(180..300));
    let mut img = RgbImage::from_fn(w, h, |_, _| {
        let n: i16 = rng.gen_range(-12..12);
        Rgb(bg.map(|c| (c as i16 + n).clamp(0, 255) as u8))
    });
    let (cx, cy) = (
        w as f32 * rng.gen_range(0.4..0.6),
        h as f32 * rng.gen_range(0.4..0.6),
    );
    let r = w.min(h) as f32 * rng.gen_range(0.25..0.4);
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = (x as f32 - cx, y as f32 - cy);
            let inside = match shape {
                0 => dx * dx + dy * dy <= r * r,
                1 => dx.abs() <= r && dy.abs() <= r,
                2 => dy <= r && dy >= -r && dx.abs() <= (dy + r) * 0.5,
                _ => ((x / 12) % 2 == 0) && dy.abs() <= r * 1.5,
            };
            if inside {
                img.put_pixel(x, y, Rgb(fg));
            }
        }
    }
    img
}

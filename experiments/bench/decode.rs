//! Where the decode side of extraction spends its time (issue #19), one thread, per stage:
//! read, hash, decode (whole or at reduced JPEG scale) and cut/resize for each network of the
//! default spec (EfficientNet-Lite2 at 260, Lite0 at 224), as `tuwen extract` does them.
//!   cargo run --release --example bench_decode -- --images DIR [--limit N] [--rounds R]
use std::path::PathBuf;
use std::time::Instant;
use tuwen::features::image::decode::{self, Crop};

#[path = "common.rs"]
mod common;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(common::opt(&args, "--images").expect("--images DIR"));
    let limit: usize = common::opt(&args, "--limit").map_or(usize::MAX, |v| v.parse().unwrap());
    let rounds: usize = common::opt(&args, "--rounds").map_or(1, |v| v.parse().unwrap());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.truncate(limit);
    let wants = [(260u32, Crop::Centre), (224u32, Crop::Centre)];
    let names = ["read", "hash", "plan", "decode", "cut+resize", "views_many"];
    let mut t = [0f64; 6];
    let (mut shared, mut scaled, mut n) = (0usize, 0usize, 0usize);
    for _ in 0..rounds {
        for f in &files {
            let t0 = Instant::now();
            let Ok(bytes) = decode::read_image_file(f) else {
                continue;
            };
            let t1 = Instant::now();
            let _h = blake3::hash(&bytes);
            let t2 = Instant::now();
            let plans: Vec<_> = wants
                .iter()
                .map(|w| decode::decode_plan(&bytes, w.0))
                .collect();
            let t3 = Instant::now();
            n += 1;
            shared += (plans[0] == plans[1]) as usize;
            scaled += plans.iter().filter(|p| p.is_some()).count();
            let mut imgs = Vec::new();
            for (i, w) in wants.iter().enumerate() {
                if i == 1 && plans[0] == plans[1] {
                    continue;
                }
                if let Ok(d) = decode::decode_at_least(&bytes, w.0) {
                    imgs.push((i, d));
                }
            }
            let t4 = Instant::now();
            for (i, d) in &imgs {
                let _ = decode::cut_views(d, wants[*i].0, wants[*i].1);
                if *i == 0 && plans[0] == plans[1] {
                    let _ = decode::cut_views(d, wants[1].0, wants[1].1);
                }
            }
            drop(imgs);
            let t5 = Instant::now();
            let _ = decode::network_views_many(&bytes, &wants);
            let t6 = Instant::now();
            for (k, (a, b)) in [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5), (t5, t6)]
                .into_iter()
                .enumerate()
            {
                t[k] += (b - a).as_secs_f64();
            }
        }
    }
    println!("{n} decodes ({} files × {rounds}); one decode shared by both networks: {shared}; scaled decodes: {scaled}", files.len());
    for (name, s) in names.iter().zip(t) {
        println!("{name:>11}: {:7.2} ms/image", 1e3 * s / n as f64);
    }
}

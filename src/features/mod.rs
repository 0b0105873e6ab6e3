//! Feature extraction for both modalities.
pub mod image;
pub mod text;

// Kept here rather than in image/mod.rs (extraction itself): only the up-front validation.
impl image::ExtractOptions {
    /// Validate the run options before any work: `--batch-size` and `--shard-size` must be at
    /// least 1 (0 used to be taken as 1 without a word).
    pub fn check(&self) -> crate::Result<()> {
        for (flag, v) in [
            ("--batch-size", self.batch_size),
            ("--shard-size", self.shard_size),
        ] {
            if v == 0 {
                return Err(crate::Error::Param(format!(
                    "{flag} must be at least 1, got 0"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn zero_batch_or_shard_size_is_refused() {
        let ok = super::image::ExtractOptions {
            cache_dir: None,
            ..Default::default()
        };
        ok.check().unwrap();
        for (b, s, flag) in [(0, 256, "--batch-size"), (16, 0, "--shard-size")] {
            let o = super::image::ExtractOptions {
                batch_size: b,
                shard_size: s,
                ..ok.clone()
            };
            let e = o.check().unwrap_err().to_string();
            assert!(e.contains(flag), "{e}");
        }
    }
}

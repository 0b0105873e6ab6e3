//! Feature cache: one folder per feature configuration, holding shards written atomically
//! (temp file + rename, `fsutil::write_atomic`), each a safetensors file with the rows and the
//! blake3 content hashes of their images. A run killed at any point leaves only whole shards behind.
//!
//! Every shard records the identity of the features it holds ([`FeatureSpec::identity`]) and a
//! blake3 checksum over that identity, the image hashes and the values. A shard is served only
//! when both check out: one edited after writing, or copied into the folder of another spec, is
//! reported by name and its images are recomputed. Shards of older versions (no checksum) cannot
//! be verified and are recomputed too, with one note.
//!
//! A cache that cannot be written (read-only disk, no permission) is reported once; extraction
//! goes on without saving.
use super::FeatureSpec;
use crate::error::{Error, Result};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// At most this many problem shards are named one by one; the rest are counted.
const NAMED_PROBLEMS: usize = 5;

pub struct FeatureCache {
    dir: PathBuf,
    dim: usize,
    identity: String,
    rows: HashMap<[u8; 32], Vec<f32>>,
    writable: bool,
    warnings: Vec<String>,
}

/// Why a shard is not served.
enum Refused {
    /// Written before shards carried a checksum.
    Unverifiable,
    /// Damaged, edited or of another spec: the message says which.
    Bad(String),
}

impl FeatureCache {
    /// Open (creating if needed) the cache folder `dir` of the features `spec`. Problems with
    /// the folder or its shards are not errors: they are collected as warnings
    /// ([`FeatureCache::take_warnings`]) and the affected images are recomputed.
    pub fn open(dir: &Path, spec: &FeatureSpec) -> Result<FeatureCache> {
        let mut cache = FeatureCache {
            dir: dir.to_path_buf(),
            dim: spec.dim(),
            identity: spec.identity(),
            rows: HashMap::new(),
            writable: true,
            warnings: Vec::new(),
        };
        if let Err(e) = std::fs::create_dir_all(dir) {
            cache.not_writable(&e.to_string());
            return Ok(cache);
        }
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) => {
                cache.writable = false;
                cache.warnings.push(format!(
                    "cannot read the feature cache {} ({e}): continuing without caching",
                    dir.display()
                ));
                return Ok(cache);
            }
        };
        let mut shards: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("shard-") && n.ends_with(".safetensors"))
            })
            .collect();
        shards.sort();
        let (mut old, mut bad) = (0usize, Vec::new());
        for path in shards {
            // Never opened unless a regular file (a FIFO under a shard's name would block).
            let read = super::decode::read_image_file(&path).map_err(|e| e.to_string());
            match read
                .map_err(Refused::Bad)
                .and_then(|b| read_shard(&b, &cache.identity, cache.dim))
            {
                Ok(rows) => cache.rows.extend(rows),
                Err(Refused::Unverifiable) => old += 1,
                Err(Refused::Bad(why)) => bad.push(format!(
                    "feature-cache shard {} {why}: not used, its images are recomputed",
                    path.display()
                )),
            }
        }
        let more = bad.len().saturating_sub(NAMED_PROBLEMS);
        cache.warnings.extend(bad.into_iter().take(NAMED_PROBLEMS));
        if more > 0 {
            cache.warnings.push(format!(
                "{more} more feature-cache shards in {} were not used for the same reasons",
                dir.display()
            ));
        }
        if old > 0 {
            cache.warnings.push(format!(
                "{old} feature-cache shard(s) in {} were written by an older tuwen without a \
                 checksum and cannot be verified: not used, their images are recomputed \
                 (delete those older shards to silence this)",
                dir.display()
            ));
        }
        Ok(cache)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// False once the folder turned out not to be writable: shards are no longer saved.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// Warnings gathered since the last call (each to be shown once).
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    pub fn get(&self, h: &blake3::Hash) -> Option<&[f32]> {
        self.rows.get(h.as_bytes()).map(Vec::as_slice)
    }

    fn not_writable(&mut self, why: &str) {
        if self.writable {
            self.writable = false;
            self.warnings.push(format!(
                "cannot write to the feature cache {} ({why}): continuing without caching \
                 (features are computed but not saved; --cache DIR picks a writable folder)",
                self.dir.display()
            ));
        }
    }

    /// Save rows as one shard. A cache that cannot be written is not an error: the first failure
    /// becomes a warning and later shards are not attempted.
    pub fn write_shard(&mut self, entries: &[(blake3::Hash, &[f32])]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        for (h, r) in entries {
            self.rows.insert(*h.as_bytes(), r.to_vec());
        }
        if !self.writable {
            return Ok(());
        }
        let mut data = Vec::with_capacity(entries.len() * self.dim * 4);
        for (_, r) in entries {
            debug_assert_eq!(r.len(), self.dim);
            for v in r.iter() {
                data.extend_from_slice(&v.to_le_bytes());
            }
        }
        let hashes: String = entries
            .iter()
            .map(|(h, _)| h.to_hex().to_string())
            .collect::<Vec<_>>()
            .join(",");
        let view = TensorView::new(Dtype::F32, vec![entries.len(), self.dim], &data)
            .map_err(|e| Error::Model(format!("cache shard: {e}")))?;
        let sum = checksum(&self.identity, &hashes, &data);
        let meta = Some(HashMap::from([
            ("hashes".to_string(), hashes),
            ("spec".to_string(), self.identity.clone()),
            ("blake3".to_string(), sum),
        ]));
        let bytes = safetensors::serialize([("features", view)], &meta)
            .map_err(|e| Error::Model(format!("cache shard: {e}")))?;
        // Named by content, not by a counter: two processes extracting into one cache at once
        // never pick the same name for different work (identical work may share a name, harmlessly).
        let name = blake3::hash(&bytes).to_hex();
        let path = self.dir.join(format!("shard-{}.safetensors", &name[..32]));
        if let Err(e) = crate::fsutil::write_atomic(&path, &bytes) {
            let why = match &e {
                Error::Io { source, .. } => source.to_string(),
                other => other.to_string(),
            };
            self.not_writable(&why);
        }
        Ok(())
    }
}

/// blake3 over the spec identity, the image hashes and the little-endian values.
fn checksum(identity: &str, hashes: &str, data: &[u8]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(identity.as_bytes());
    h.update(&[0]);
    h.update(hashes.as_bytes());
    h.update(&[0]);
    h.update(data);
    h.finalize().to_hex().to_string()
}

type Rows = Vec<([u8; 32], Vec<f32>)>;

fn read_shard(bytes: &[u8], identity: &str, dim: usize) -> std::result::Result<Rows, Refused> {
    let bad = |m: String| Refused::Bad(format!("is damaged ({m})"));
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let (spec, sum) = match (meta.get("spec"), meta.get("blake3")) {
        (None, None) => return Err(Refused::Unverifiable),
        (Some(s), Some(c)) => (s, c),
        _ => return Err(bad("spec or checksum missing".into())),
    };
    let hashes = meta
        .get("hashes")
        .ok_or_else(|| bad("no image hashes".into()))?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
    let t = st.tensor("features").map_err(|e| bad(e.to_string()))?;
    if checksum(spec, hashes, t.data()) != *sum {
        return Err(Refused::Bad(
            "fails its checksum (its values or image hashes changed after it was written)".into(),
        ));
    }
    if spec != identity {
        return Err(Refused::Bad(format!(
            "holds features of `{spec}`, not of this folder's `{identity}` (copied into the \
             wrong folder?)"
        )));
    }
    let hashes: Vec<&str> = hashes.split(',').collect();
    if t.dtype() != Dtype::F32 || t.shape() != [hashes.len(), dim] {
        return Err(bad(format!(
            "shape {:?}, expected [{}, {dim}]",
            t.shape(),
            hashes.len()
        )));
    }
    hashes
        .iter()
        .zip(t.data().chunks(dim * 4))
        .map(|(h, chunk)| {
            let h = blake3::Hash::from_hex(h).map_err(|e| bad(e.to_string()))?;
            let v = chunk
                .chunks(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            Ok((*h.as_bytes(), v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::image::{BackboneKind, Pooling, PREPROCESS_VERSION};

    /// A spec with a made-up weights hash: only its identity and dimension matter here.
    fn spec(flip: bool) -> FeatureSpec {
        FeatureSpec {
            backbone: BackboneKind::EfficientNetLite0,
            weights_sha256: "ab".repeat(32),
            weights_file: String::new(),
            pooling: Pooling::Avg,
            flip,
            crop: Default::default(),
            input_size: 224,
            preprocess_version: PREPROCESS_VERSION,
            second: None,
        }
    }

    fn row(spec: &FeatureSpec, x: f32) -> Vec<f32> {
        vec![x; spec.dim()]
    }

    fn only_shard(dir: &Path) -> PathBuf {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(v.len(), 1, "{v:?}");
        v.pop().unwrap()
    }

    #[test]
    fn two_writers_on_one_cache_keep_both_shards() {
        let d = tempfile::tempdir().unwrap();
        let s = spec(false);
        // Both open before either writes, as two processes started together would.
        let mut a = FeatureCache::open(d.path(), &s).unwrap();
        let mut b = FeatureCache::open(d.path(), &s).unwrap();
        let (ha, hb) = (blake3::hash(b"image a"), blake3::hash(b"image b"));
        let (ra, rb) = (row(&s, 1.0), row(&s, 3.0));
        a.write_shard(&[(ha, &ra[..])]).unwrap();
        b.write_shard(&[(hb, &rb[..])]).unwrap();
        let mut c = FeatureCache::open(d.path(), &s).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&ha), Some(&ra[..]));
        assert_eq!(c.get(&hb), Some(&rb[..]));
        assert!(c.take_warnings().is_empty());
    }

    #[test]
    fn shards_of_an_older_numbering_are_still_read() {
        let d = tempfile::tempdir().unwrap();
        let s = spec(false);
        let mut a = FeatureCache::open(d.path(), &s).unwrap();
        let h = blake3::hash(b"x");
        let r = row(&s, 5.0);
        a.write_shard(&[(h, &r[..])]).unwrap();
        let f = only_shard(d.path());
        std::fs::rename(&f, d.path().join("shard-000000.safetensors")).unwrap();
        let c = FeatureCache::open(d.path(), &s).unwrap();
        assert_eq!(c.get(&h), Some(&r[..]));
    }

    /// Rewrites the shard's values (a valid safetensors file, same metadata).
    fn tamper_values(path: &Path, dim: usize) {
        let bytes = std::fs::read(path).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let meta = meta.metadata().clone();
        let data: Vec<u8> = (0..dim).flat_map(|_| 9.0f32.to_le_bytes()).collect();
        let view = TensorView::new(Dtype::F32, vec![1, dim], &data).unwrap();
        std::fs::write(
            path,
            safetensors::serialize([("features", view)], &meta).unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn an_edited_shard_is_named_and_not_served() {
        let d = tempfile::tempdir().unwrap();
        let s = spec(false);
        let h = blake3::hash(b"x");
        let r = row(&s, 5.0);
        FeatureCache::open(d.path(), &s)
            .unwrap()
            .write_shard(&[(h, &r[..])])
            .unwrap();
        let f = only_shard(d.path());
        tamper_values(&f, s.dim());
        let mut c = FeatureCache::open(d.path(), &s).unwrap();
        assert_eq!(c.get(&h), None, "tampered values must not be served");
        let w = c.take_warnings().join("\n");
        assert!(
            w.contains(&f.display().to_string()) && w.contains("checksum"),
            "{w}"
        );
    }

    #[test]
    fn a_shard_of_another_spec_is_named_and_not_served() {
        let d = tempfile::tempdir().unwrap();
        let (noflip, flip) = (spec(false), spec(true));
        let other = d.path().join("noflip");
        let h = blake3::hash(b"x");
        let r = row(&noflip, 5.0);
        FeatureCache::open(&other, &noflip)
            .unwrap()
            .write_shard(&[(h, &r[..])])
            .unwrap();
        // Merged "by copying" into the flip folder.
        let src = only_shard(&other);
        let dst_dir = d.path().join("flip");
        std::fs::create_dir_all(&dst_dir).unwrap();
        let dst = dst_dir.join(src.file_name().unwrap());
        std::fs::copy(&src, &dst).unwrap();
        let mut c = FeatureCache::open(&dst_dir, &flip).unwrap();
        assert_eq!(c.get(&h), None, "no-flip rows must not be served as flip");
        let w = c.take_warnings().join("\n");
        assert!(
            w.contains(&dst.display().to_string()) && w.contains("noflip"),
            "{w}"
        );
        // In its own folder it is still good.
        assert_eq!(
            FeatureCache::open(&other, &noflip).unwrap().get(&h),
            Some(&r[..])
        );
    }

    #[test]
    fn shards_without_a_checksum_are_recomputed_with_one_note() {
        let d = tempfile::tempdir().unwrap();
        let s = spec(false);
        // The format of earlier versions: only the image hashes in the metadata.
        for k in 0..3u8 {
            let h = blake3::hash(&[k]);
            let data: Vec<u8> = (0..s.dim()).flat_map(|_| 1.0f32.to_le_bytes()).collect();
            let view = TensorView::new(Dtype::F32, vec![1, s.dim()], &data).unwrap();
            let meta = Some(HashMap::from([(
                "hashes".to_string(),
                h.to_hex().to_string(),
            )]));
            std::fs::write(
                d.path().join(format!("shard-{k:06}.safetensors")),
                safetensors::serialize([("features", view)], &meta).unwrap(),
            )
            .unwrap();
        }
        let mut c = FeatureCache::open(d.path(), &s).unwrap();
        assert!(c.is_empty());
        let w = c.take_warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("3 feature-cache shard(s)"), "{w:?}");
    }

    #[test]
    fn an_unwritable_cache_warns_once_and_keeps_going() {
        let d = tempfile::tempdir().unwrap();
        let s = spec(false);
        // A file where the cache folder's parent should be: nothing can be created below it,
        // for any user (root ignores permission bits, not this).
        let blocker = d.path().join("blocker");
        std::fs::write(&blocker, b"x").unwrap();
        let mut c = FeatureCache::open(&blocker.join("cache"), &s).unwrap();
        assert!(!c.is_writable());
        let r = row(&s, 2.0);
        for k in 0..3u8 {
            c.write_shard(&[(blake3::hash(&[k]), &r[..])]).unwrap();
        }
        assert_eq!(c.take_warnings().len(), 1);
        assert_eq!(c.get(&blake3::hash(&[1])), Some(&r[..]));

        // A folder that opens but then cannot be written (as on a read-only disk): the first
        // failed shard is one warning, the run goes on.
        let dir = d.path().join("cache");
        let mut c = FeatureCache::open(&dir, &s).unwrap();
        assert!(c.is_writable() && c.take_warnings().is_empty());
        std::fs::remove_dir(&dir).unwrap();
        std::fs::write(&dir, b"now a file").unwrap();
        for k in 0..3u8 {
            c.write_shard(&[(blake3::hash(&[k]), &r[..])]).unwrap();
        }
        let w = c.take_warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("continuing without caching"), "{w:?}");
        assert!(!c.is_writable());
    }
}

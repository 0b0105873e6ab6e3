//! Feature cache: one folder per feature configuration, holding shards written atomically
//! (temp file + rename, `fsutil::write_atomic`), each a safetensors file with the rows and the blake3 content hashes of
//! their images. A run killed at any point leaves only whole shards behind.
use crate::error::{Error, Result};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub struct FeatureCache {
    dir: PathBuf,
    dim: usize,
    rows: HashMap<[u8; 32], Vec<f32>>,
}

impl FeatureCache {
    pub fn open(dir: &Path, dim: usize) -> Result<FeatureCache> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut rows = HashMap::new();
        let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        for entry in rd {
            let path = entry.map_err(|e| Error::io(dir, e))?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            if !(name.starts_with("shard-") && name.ends_with(".safetensors")) {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            read_shard(&path, &bytes, dim, &mut rows)?;
        }
        Ok(FeatureCache {
            dir: dir.to_path_buf(),
            dim,
            rows,
        })
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn get(&self, h: &blake3::Hash) -> Option<&[f32]> {
        self.rows.get(h.as_bytes()).map(Vec::as_slice)
    }

    pub fn write_shard(&mut self, entries: &[(blake3::Hash, &[f32])]) -> Result<()> {
        if entries.is_empty() {
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
        let meta = Some(HashMap::from([("hashes".to_string(), hashes)]));
        let bytes = safetensors::serialize([("features", view)], &meta)
            .map_err(|e| Error::Model(format!("cache shard: {e}")))?;
        // Named by content, not by a counter: two processes extracting into one cache at once
        // never pick the same name for different work (identical work may share a name, harmlessly).
        let name = blake3::hash(&bytes).to_hex();
        let path = self.dir.join(format!("shard-{}.safetensors", &name[..32]));
        crate::fsutil::write_atomic(&path, &bytes)?;
        for (h, r) in entries {
            self.rows.insert(*h.as_bytes(), r.to_vec());
        }
        Ok(())
    }
}

fn read_shard(
    path: &Path,
    bytes: &[u8],
    dim: usize,
    rows: &mut HashMap<[u8; 32], Vec<f32>>,
) -> Result<()> {
    let bad = |m: String| {
        Error::file(
            path,
            format!("corrupt feature-cache shard ({m}); delete it"),
        )
    };
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
    let hashes = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("hashes").cloned())
        .ok_or_else(|| bad("no hashes".into()))?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
    let t = st.tensor("features").map_err(|e| bad(e.to_string()))?;
    let hashes: Vec<&str> = hashes.split(',').collect();
    if t.dtype() != Dtype::F32 || t.shape() != [hashes.len(), dim] {
        return Err(bad(format!(
            "shape {:?}, expected [{}, {dim}]",
            t.shape(),
            hashes.len()
        )));
    }
    for (h, chunk) in hashes.iter().zip(t.data().chunks(dim * 4)) {
        let h = blake3::Hash::from_hex(h).map_err(|e| bad(e.to_string()))?;
        let v = chunk
            .chunks(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        rows.insert(*h.as_bytes(), v);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_writers_on_one_cache_keep_both_shards() {
        let d = tempfile::tempdir().unwrap();
        // Both open before either writes, as two processes started together would.
        let mut a = FeatureCache::open(d.path(), 2).unwrap();
        let mut b = FeatureCache::open(d.path(), 2).unwrap();
        let (ha, hb) = (blake3::hash(b"image a"), blake3::hash(b"image b"));
        a.write_shard(&[(ha, &[1.0, 2.0][..])]).unwrap();
        b.write_shard(&[(hb, &[3.0, 4.0][..])]).unwrap();
        let c = FeatureCache::open(d.path(), 2).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&ha), Some(&[1.0, 2.0][..]));
        assert_eq!(c.get(&hb), Some(&[3.0, 4.0][..]));
    }

    #[test]
    fn shards_of_an_older_numbering_are_still_read() {
        let d = tempfile::tempdir().unwrap();
        let mut a = FeatureCache::open(d.path(), 1).unwrap();
        let h = blake3::hash(b"x");
        a.write_shard(&[(h, &[5.0][..])]).unwrap();
        let f = std::fs::read_dir(d.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::rename(&f, d.path().join("shard-000000.safetensors")).unwrap();
        let c = FeatureCache::open(d.path(), 1).unwrap();
        assert_eq!(c.get(&h), Some(&[5.0][..]));
    }
}

//! Splitting extraction work over machines: `--shard K/N` keeps a deterministic 1/N of the ids,
//! chosen by a stable hash of each id, so N runs (one per K = 1..N) cover every id exactly once.
//! Their caches merge by copying the shard files of each run's cache folder into one: files are
//! named by their content and rows are keyed by image content.
use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// Part `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u64,
    count: u64,
}

impl Shard {
    /// Part `index` of `count`, 1 ≤ index ≤ count.
    pub fn new(index: u64, count: u64) -> Result<Shard> {
        if count == 0 || index == 0 || index > count {
            return Err(Error::Param(format!(
                "shard {index}/{count}: need 1 <= K <= N (K is 1-based: --shard 1/{n} … {n}/{n})",
                n = count.max(1)
            )));
        }
        Ok(Shard { index, count })
    }

    /// K (1-based).
    pub fn index(&self) -> u64 {
        self.index
    }

    /// N.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Which part (1-based, of `count`) an id belongs to: blake3 of its UTF-8 bytes, the first
    /// 8 bytes as a little-endian u64, mod `count`, plus 1. Stable across machines and versions.
    pub fn part_of(id: &str, count: u64) -> u64 {
        let h = blake3::hash(id.as_bytes());
        let mut b = [0u8; 8];
        b.copy_from_slice(&h.as_bytes()[..8]);
        u64::from_le_bytes(b) % count.max(1) + 1
    }

    pub fn contains(&self, id: &str) -> bool {
        Shard::part_of(id, self.count) == self.index
    }

    /// The ids of this part, in their order.
    pub fn select<S: AsRef<str> + Clone>(&self, ids: &[S]) -> Vec<S> {
        ids.iter()
            .filter(|id| self.contains(id.as_ref()))
            .cloned()
            .collect()
    }
}

impl FromStr for Shard {
    type Err = Error;

    /// `K/N`, e.g. `2/3`.
    fn from_str(s: &str) -> Result<Shard> {
        let bad = || {
            Error::Param(format!(
                "shard `{s}`: expected K/N with 1 <= K <= N, e.g. 2/3 (K is 1-based)"
            ))
        };
        let (k, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let k: u64 = k.trim().parse().map_err(|_| bad())?;
        let n: u64 = n.trim().parse().map_err(|_| bad())?;
        Shard::new(k, n).map_err(|_| bad())
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_k_of_n_and_refuses_the_rest() {
        assert_eq!("2/3".parse::<Shard>().unwrap(), Shard::new(2, 3).unwrap());
        assert_eq!(" 1 / 1 ".parse::<Shard>().unwrap().to_string(), "1/1");
        for bad in [
            "0/3", "4/3", "1/0", "0/0", "3", "a/b", "1/2/3", "-1/2", "", "/",
        ] {
            let e = bad.parse::<Shard>().expect_err(bad).to_string();
            assert!(e.contains("K/N"), "{bad}: {e}");
        }
    }

    #[test]
    fn parts_partition_the_ids_and_are_stable() {
        let ids: Vec<String> = (0..300).map(|i| format!("img{i}.jpg")).collect();
        let parts: Vec<Vec<String>> = (1..=3)
            .map(|k| Shard::new(k, 3).unwrap().select(&ids))
            .collect();
        assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), ids.len());
        for id in &ids {
            assert_eq!(parts.iter().filter(|p| p.contains(id)).count(), 1);
        }
        assert!(parts.iter().all(|p| p.len() > 50), "roughly even");
        // Pinned: the assignment must never change between versions or machines.
        let pinned: Vec<u64> = ["a.jpg", "Image14000000-0000.jpg", "图片.png"]
            .iter()
            .map(|id| Shard::part_of(id, 1000))
            .collect();
        assert_eq!(pinned, [755, 557, 901]);
    }
}

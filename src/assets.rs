//! Pretrained files fetched by scripts/setup.sh, checked against the SHA256SUMS it writes.
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// If `path`'s folder has a SHA256SUMS that lists the file, its content must match.
pub fn verify_checksum(path: &Path) -> Result<()> {
    verified_sha256(path).map(|_| ())
}

/// The file's sha256, checked against its folder's SHA256SUMS when that lists it.
pub fn verified_sha256(path: &Path) -> Result<String> {
    let actual = sha256_file(path)?;
    check_listed(path, &actual)?;
    Ok(actual)
}

/// The sha256 of bytes already read from `path`, checked like [`verified_sha256`].
pub fn verified_sha256_of(path: &Path, bytes: &[u8]) -> Result<String> {
    let actual = format!("{:x}", Sha256::digest(bytes));
    check_listed(path, &actual)?;
    Ok(actual)
}

fn check_listed(path: &Path, actual: &str) -> Result<()> {
    let Some(expected) = listed_checksum(path) else {
        return Ok(());
    };
    if actual != expected {
        return Err(Error::asset(
            path,
            format!("corrupted (sha256 {actual}, expected {expected})"),
        ));
    }
    Ok(())
}

fn listed_checksum(path: &Path) -> Option<String> {
    let sums = path.parent()?.join("SHA256SUMS");
    let name = path.file_name()?.to_str()?;
    let text = std::fs::read_to_string(sums).ok()?;
    text.lines().find_map(|l| {
        let (sum, file) = l.split_once(char::is_whitespace)?;
        (file.trim_start_matches([' ', '*']) == name).then(|| sum.to_string())
    })
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}

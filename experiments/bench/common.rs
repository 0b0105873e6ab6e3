//! Helpers shared by the benchmark examples: peak memory, and matrices in and out of
//! safetensors files (the format the Python side reads and writes too).
#![allow(dead_code)]
use ndarray::{Array2, ArrayView2};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::Path;

/// The value after `--name` on the command line, if any.
pub fn opt(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Peak resident memory of this process so far (VmHWM), MiB.
pub fn peak_rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Every 2-D f32 tensor of a safetensors file (both sides of the benchmarks write f32).
pub fn read_matrices(path: &Path) -> HashMap<String, Array2<f32>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    st.tensors()
        .into_iter()
        .map(|(name, t)| {
            let shape = t.shape().to_vec();
            assert_eq!(shape.len(), 2, "{name}: expected a matrix");
            assert_eq!(t.dtype(), Dtype::F32, "{name}: expected f32");
            let data: Vec<f32> = t
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            (
                name,
                Array2::from_shape_vec((shape[0], shape[1]), data).unwrap(),
            )
        })
        .collect()
}

/// Write f32 matrices to a safetensors file.
pub fn write_matrices(path: &Path, mats: &[(&str, ArrayView2<f32>)]) {
    let bufs: Vec<(String, Vec<u8>, Vec<usize>)> = mats
        .iter()
        .map(|(n, m)| {
            let bytes: Vec<u8> = m.iter().flat_map(|v| v.to_le_bytes()).collect();
            (n.to_string(), bytes, vec![m.nrows(), m.ncols()])
        })
        .collect();
    let views: Vec<(String, TensorView)> = bufs
        .iter()
        .map(|(n, b, s)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let st = safetensors::serialize(views, &None).unwrap();
    std::fs::write(path, st).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

//! Batch-invariant dot products: the one float path of every score and every projection.
//!
//! BLAS picks its kernels by matrix shape and by CPU (a 1-row product goes through gemv, a block
//! through gemm with AVX-512 or AVX2 tiles), so the same cosine computed for one query in `serve`
//! and for a block of queries in `rank` used to differ in the last bits, and near-ties reordered
//! between commands and between machines. Here every dot product `a·b` is one fixed sequence of
//! IEEE f32 fused multiply-adds — [`LANES`] interleaved partial sums over the coordinates, then a
//! fixed pairwise reduction — whatever the batch, the block, the thread count, the caller or the
//! CPU. A fused multiply-add is exactly rounded by definition, so the CPU's FMA instruction
//! (every x86-64 CPU since 2013, AMD and Intel) and the C library's `fmaf` (the fallback
//! elsewhere, slower) give the same bits.
use ndarray::{Array2, ArrayView1, ArrayView2};
use rayon::prelude::*;

/// Partial sums per dot product (two SSE or one AVX register).
pub const LANES: usize = 8;

/// Query rows per register tile.
const TILE_Q: usize = 3;
/// Other rows per register tile.
const TILE_G: usize = 4;
/// Rows of `b` per cache block (a few hundred KiB at 256 dimensions).
const B_BLOCK: usize = 256;

/// `a · b` in the fixed order (the reference every tiled path reproduces bit for bit).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot of vectors of different lengths");
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports FMA (checked just above).
            return unsafe { dot_fma(a, b) };
        }
    }
    dot_inline(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
unsafe fn dot_fma(a: &[f32], b: &[f32]) -> f32 {
    dot_inline(a, b)
}

/// [`dot`]'s body, inlined into each CPU-specific build.
#[inline(always)]
fn dot_inline(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let full = a.len() / LANES * LANES;
    for (x, y) in a[..full]
        .chunks_exact(LANES)
        .zip(b[..full].chunks_exact(LANES))
    {
        for l in 0..LANES {
            acc[l] = x[l].mul_add(y[l], acc[l]);
        }
    }
    for (l, (x, y)) in a[full..].iter().zip(&b[full..]).enumerate() {
        acc[l] = x.mul_add(*y, acc[l]);
    }
    reduce(&acc)
}

/// The fixed reduction of the partial sums.
#[inline(always)]
fn reduce(acc: &[f32; LANES]) -> f32 {
    let h = [
        acc[0] + acc[4],
        acc[1] + acc[5],
        acc[2] + acc[6],
        acc[3] + acc[7],
    ];
    (h[0] + h[2]) + (h[1] + h[3])
}

/// [`dot`] of two ndarray vectors (copied to contiguous memory only when they are not).
pub fn dot_view(a: ArrayView1<f32>, b: ArrayView1<f32>) -> f32 {
    let (a, b) = (a.as_standard_layout(), b.as_standard_layout());
    dot(
        a.as_slice().expect("standard layout"),
        b.as_slice().expect("standard layout"),
    )
}

/// `a · bᵀ` (rows of `a` against rows of `b`), row-major, every entry exactly [`dot`] of its two
/// rows. Parallel over row groups of `a`.
///
/// # Panics
/// If the rows differ in length (a caller bug).
pub fn dots(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    let (n, m) = (a.nrows(), b.nrows());
    assert!(
        n == 0 || m == 0 || a.ncols() == b.ncols(),
        "rows of {} and {} dimensions",
        a.ncols(),
        b.ncols()
    );
    let mut out = vec![0f32; n * m];
    // No rows, or rows of no dimension (all dot products 0).
    if n == 0 || m == 0 || a.ncols() == 0 {
        return Array2::from_shape_vec((n, m), out).expect("shape");
    }
    let a = a.as_standard_layout();
    let b = b.as_standard_layout();
    let (a, b) = (
        a.as_slice().expect("standard layout"),
        b.as_slice().expect("standard layout"),
    );
    let d = a.len() / n;
    // Row groups small enough that both cores stay busy on a 512-row block.
    let group = TILE_Q * 4;
    out.par_chunks_mut(group * m)
        .enumerate()
        .for_each(|(t, o)| {
            let rows = &a[t * group * d..((t * group + o.len() / m) * d)];
            tile_rows(rows, b, d, o);
        });
    Array2::from_shape_vec((n, m), out).expect("shape")
}

/// One group of `a` rows against all of `b`, into `out` (rows × m).
fn tile_rows(a: &[f32], b: &[f32], d: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            unsafe { tile_rows_avx2(a, b, d, out) };
            return;
        }
    }
    tile_rows_generic(a, b, d, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_rows_avx2(a: &[f32], b: &[f32], d: usize, out: &mut [f32]) {
    tile_rows_generic(a, b, d, out)
}

#[inline(always)]
fn tile_rows_generic(a: &[f32], b: &[f32], d: usize, out: &mut [f32]) {
    let (n, m) = (a.len() / d, b.len() / d);
    for b0 in (0..m).step_by(B_BLOCK) {
        let b1 = (b0 + B_BLOCK).min(m);
        let mut i = 0;
        while i < n {
            let qi = (n - i).min(TILE_Q);
            let mut j = b0;
            while j < b1 {
                let gj = (b1 - j).min(TILE_G);
                if qi == TILE_Q && gj == TILE_G {
                    let t = tile::<TILE_Q, TILE_G>(&a[i * d..], &b[j * d..], d);
                    for (r, row) in t.iter().enumerate() {
                        out[(i + r) * m + j..(i + r) * m + j + TILE_G].copy_from_slice(row);
                    }
                } else {
                    for r in 0..qi {
                        for c in 0..gj {
                            out[(i + r) * m + j + c] = dot_inline(
                                &a[(i + r) * d..(i + r + 1) * d],
                                &b[(j + c) * d..(j + c + 1) * d],
                            );
                        }
                    }
                }
                j += gj;
            }
            i += qi;
        }
    }
}

/// A `Q × G` register tile: the same per-pair sequence of operations as [`dot`].
#[inline(always)]
fn tile<const Q: usize, const G: usize>(a: &[f32], b: &[f32], d: usize) -> [[f32; G]; Q] {
    let mut acc = [[[0f32; LANES]; G]; Q];
    let full = d / LANES * LANES;
    let mut k = 0;
    while k < full {
        for q in 0..Q {
            let x = &a[q * d + k..q * d + k + LANES];
            for g in 0..G {
                let y = &b[g * d + k..g * d + k + LANES];
                for l in 0..LANES {
                    acc[q][g][l] = x[l].mul_add(y[l], acc[q][g][l]);
                }
            }
        }
        k += LANES;
    }
    let mut out = [[0f32; G]; Q];
    for q in 0..Q {
        for g in 0..G {
            for (l, kk) in (full..d).enumerate() {
                acc[q][g][l] = a[q * d + kk].mul_add(b[g * d + kk], acc[q][g][l]);
            }
            out[q][g] = reduce(&acc[q][g]);
        }
    }
    out
}

/// `x · w` for a map stored transposed (`w_t` = wᵀ, one row per output dimension): every output
/// entry is [`dot`] of an input row and a column of `w`, so projecting one row or a batch gives the
/// same bits.
pub fn project(x: ArrayView2<f32>, w_t: ArrayView2<f32>) -> Array2<f32> {
    dots(x, w_t)
}

/// Rows scaled to unit length (zero rows stay zero), the norm through [`dot`].
pub fn normalize_rows(mut m: Array2<f32>) -> Array2<f32> {
    for mut r in m.rows_mut() {
        let n = dot_view(r.view(), r.view()).sqrt();
        if n > 0.0 {
            r.mapv_inplace(|v| v / n);
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize, d: usize, seed: u64) -> Array2<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        Array2::from_shape_fn((n, d), |_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
    }

    #[test]
    fn every_entry_is_the_reference_dot_whatever_the_batch() {
        // Dimensions that exercise the lane tail and the tile edges.
        for &(n, m, d) in &[
            (1, 1, 1),
            (5, 3, 7),
            (17, 9, 33),
            (40, 300, 256),
            (3, 513, 100),
        ] {
            let (a, b) = (rows(n, d, 1), rows(m, d, 2));
            let full = dots(a.view(), b.view());
            for i in 0..n {
                for j in 0..m {
                    let r = dot(a.row(i).as_slice().unwrap(), b.row(j).as_slice().unwrap());
                    assert_eq!(
                        full[[i, j]].to_bits(),
                        r.to_bits(),
                        "({i},{j}) of {n}×{m}×{d}"
                    );
                }
                // One row alone, as a single query is ranked.
                let one = dots(a.slice(ndarray::s![i..i + 1, ..]), b.view());
                assert_eq!(one.row(0), full.row(i));
            }
        }
    }

    #[test]
    fn generic_and_dispatched_paths_agree_bit_for_bit() {
        let (a, b) = (rows(13, 77, 3), rows(11, 77, 4));
        let mut generic = vec![0f32; 13 * 11];
        tile_rows_generic(
            a.as_slice().unwrap(),
            b.as_slice().unwrap(),
            77,
            &mut generic,
        );
        let mut dispatched = vec![0f32; 13 * 11];
        tile_rows(
            a.as_slice().unwrap(),
            b.as_slice().unwrap(),
            77,
            &mut dispatched,
        );
        assert_eq!(
            generic.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            dispatched.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn fused_and_library_multiply_adds_agree() {
        // The fallback (the C library's fmaf) and the CPU's FMA are both exactly rounded.
        let (a, b) = (rows(1, 301, 8), rows(1, 301, 9));
        let (x, y) = (a.as_slice().unwrap(), b.as_slice().unwrap());
        assert_eq!(dot(x, y).to_bits(), dot_inline(x, y).to_bits());
    }

    #[test]
    fn close_to_a_double_precision_dot() {
        let (a, b) = (rows(4, 1000, 5), rows(4, 1000, 6));
        let m = dots(a.view(), b.view());
        for i in 0..4 {
            for j in 0..4 {
                let exact: f64 = a
                    .row(i)
                    .iter()
                    .zip(b.row(j))
                    .map(|(&x, &y)| f64::from(x) * f64::from(y))
                    .sum();
                assert!(
                    (f64::from(m[[i, j]]) - exact).abs() < 1e-4,
                    "{} vs {exact}",
                    m[[i, j]]
                );
            }
        }
    }

    #[test]
    fn normalised_rows_have_unit_length_and_zero_rows_stay_zero() {
        let mut a = rows(3, 10, 7);
        a.row_mut(1).fill(0.0);
        let n = normalize_rows(a);
        assert!((dot_view(n.row(0), n.row(0)) - 1.0).abs() < 1e-6);
        assert!(n.row(1).iter().all(|&v| v == 0.0));
    }
}

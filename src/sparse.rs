//! Rows of a mostly-zero matrix (compressed sparse rows): the caption features. A caption's
//! feature is a ~100-d word-vector mean followed by a TF-IDF bag of ~8,000 terms of which it
//! holds ~12, so 30,000 training captions take 30 MB here instead of 1 GB dense (2 GB as f64).
use ndarray::{Array1, Array2, ArrayView2};
use std::ops::Range;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparseRows {
    ncols: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
}

impl SparseRows {
    pub fn new(ncols: usize) -> Self {
        SparseRows {
            ncols,
            indptr: vec![0],
            ..Default::default()
        }
    }
    /// The non-zeros of a dense matrix.
    pub fn from_dense(a: ArrayView2<f32>) -> Self {
        let mut s = SparseRows::new(a.ncols());
        for r in a.rows() {
            s.push(r.iter().copied());
        }
        s
    }
    pub fn nrows(&self) -> usize {
        self.indptr.len() - 1
    }
    pub fn ncols(&self) -> usize {
        self.ncols
    }
    /// Stored entries (all non-zero).
    pub fn nnz(&self) -> usize {
        self.values.len()
    }
    /// Append one dense row (its width must be `ncols`); zeros are not stored.
    pub fn push(&mut self, row: impl IntoIterator<Item = f32>) {
        let mut n = 0;
        for (j, v) in row.into_iter().enumerate() {
            if v != 0.0 {
                self.indices.push(j as u32);
                self.values.push(v);
            }
            n = j + 1;
        }
        assert!(
            n <= self.ncols,
            "row of {n} values pushed into {} columns",
            self.ncols
        );
        self.indptr.push(self.indices.len());
    }
    /// Append one row given as (column, value) in increasing column order; zeros are not stored.
    pub fn push_entries(&mut self, entries: impl IntoIterator<Item = (usize, f32)>) {
        let mut last = None;
        for (j, v) in entries {
            assert!(
                j < self.ncols && last.is_none_or(|l| l < j),
                "column {j} out of order or range"
            );
            last = Some(j);
            if v != 0.0 {
                self.indices.push(j as u32);
                self.values.push(v);
            }
        }
        self.indptr.push(self.indices.len());
    }
    /// Row `r`'s columns (increasing) and values.
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let span = self.indptr[r]..self.indptr[r + 1];
        (&self.indices[span.clone()], &self.values[span])
    }
    /// Every value of row `r` is zero.
    pub fn is_zero_row(&self, r: usize) -> bool {
        self.indptr[r] == self.indptr[r + 1]
    }
    /// All stored values (for checks such as finiteness).
    pub fn values(&self) -> &[f32] {
        &self.values
    }
    /// Write row `r` into `out` (zeroed by the caller, `ncols` long).
    pub fn write_row(&self, r: usize, out: &mut [f32]) {
        let (cols, vals) = self.row(r);
        for (&j, &v) in cols.iter().zip(vals) {
            out[j as usize] = v;
        }
    }
    /// Rows `range` as a dense matrix.
    pub fn dense_rows(&self, range: Range<usize>) -> Array2<f32> {
        let mut out = Array2::<f32>::zeros((range.len(), self.ncols));
        for (k, r) in range.enumerate() {
            let row = out.row_mut(k).into_slice().expect("standard layout");
            self.write_row(r, row);
        }
        out
    }
    pub fn to_dense(&self) -> Array2<f32> {
        self.dense_rows(0..self.nrows())
    }
    /// The whole matrix as dense f64 (no f32 copy on the way).
    pub fn to_dense_f64(&self) -> Array2<f64> {
        let mut out = Array2::<f64>::zeros((self.nrows(), self.ncols));
        for (r, mut row) in out.rows_mut().into_iter().enumerate() {
            let (cols, vals) = self.row(r);
            for (&j, &v) in cols.iter().zip(vals) {
                row[j as usize] = f64::from(v);
            }
        }
        out
    }
    /// The rows `rows`, in that order.
    pub fn select(&self, rows: &[usize]) -> SparseRows {
        let mut s = SparseRows::new(self.ncols);
        s.append_rows(self, rows);
        s
    }
    /// Append the rows `rows` of `other` (of the same width), in that order.
    pub fn append_rows(&mut self, other: &SparseRows, rows: &[usize]) {
        assert_eq!(self.ncols, other.ncols, "rows of another width appended");
        for &r in rows {
            let (cols, vals) = other.row(r);
            self.indices.extend_from_slice(cols);
            self.values.extend_from_slice(vals);
            self.indptr.push(self.indices.len());
        }
    }
    /// Column means, accumulated in f64.
    pub fn mean(&self) -> Array1<f64> {
        let mut m = Array1::<f64>::zeros(self.ncols);
        for (&j, &v) in self.indices.iter().zip(&self.values) {
            m[j as usize] += f64::from(v);
        }
        m / self.nrows().max(1) as f64
    }
    /// Stored fraction of the entries.
    pub fn density(&self) -> f64 {
        self.nnz() as f64 / (self.nrows() * self.ncols).max(1) as f64
    }
    /// Apply `f` to dense blocks of at most `chunk` rows, concatenating the results: bounded
    /// memory for any number of rows.
    pub fn map_dense_chunks(
        &self,
        chunk: usize,
        out_cols: usize,
        f: impl Fn(ArrayView2<f32>) -> Array2<f32>,
    ) -> Array2<f32> {
        let mut out = Array2::<f32>::zeros((self.nrows(), out_cols));
        let mut at = 0;
        while at < self.nrows() {
            let end = (at + chunk.max(1)).min(self.nrows());
            let block = f(self.dense_rows(at..end).view());
            out.slice_mut(ndarray::s![at..end, ..]).assign(&block);
            at = end;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_round_trip_select_and_mean() {
        let a = ndarray::array![[0.0f32, 1.5, 0.0], [0.0, 0.0, 0.0], [2.0, 0.0, -1.0]];
        let s = SparseRows::from_dense(a.view());
        assert_eq!((s.nrows(), s.ncols(), s.nnz()), (3, 3, 3));
        assert_eq!(s.to_dense(), a);
        assert!(s.is_zero_row(1) && !s.is_zero_row(0));
        let sel = s.select(&[2, 0]);
        assert_eq!(
            sel.to_dense(),
            ndarray::array![[2.0f32, 0.0, -1.0], [0.0, 1.5, 0.0]]
        );
        let m = s.mean();
        assert!((m[0] - 2.0 / 3.0).abs() < 1e-12 && (m[2] + 1.0 / 3.0).abs() < 1e-12);
        let mut e = SparseRows::new(3);
        e.push_entries([(0, 2.0), (2, -1.0)]);
        assert_eq!(e.row(0), s.row(2));
        let doubled = s.map_dense_chunks(2, 3, |b| b.mapv(|v| 2.0 * v));
        assert_eq!(doubled, a.mapv(|v| 2.0 * v));
    }

    #[test]
    #[should_panic(expected = "out of order")]
    fn entries_out_of_order_are_refused() {
        SparseRows::new(3).push_entries([(2, 1.0), (1, 1.0)]);
    }
}

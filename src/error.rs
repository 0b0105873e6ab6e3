//! Library error type: every variant names the file (and row) a user has to look at.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: row {row}: {msg}")]
    Row {
        path: PathBuf,
        row: usize,
        msg: String,
    },
    #[error("{path}: {msg}")]
    File { path: PathBuf, msg: String },
    #[error("{path}: {msg}; run `bash scripts/setup.sh` to (re)fetch the pretrained assets")]
    Asset { path: PathBuf, msg: String },
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("linear algebra: {0}")]
    Linalg(String),
    #[error("invalid parameter: {0}")]
    Param(String),
    #[error("model: {0}")]
    Model(String),
    #[error(transparent)]
    Score(#[from] crate::retrieval::ScoreError),
    /// Training data that admits no fit (one image, identical captions, …).
    #[error("training data: {0}")]
    Data(String),
    #[error("result file {path}: {msg}")]
    Validation { path: PathBuf, msg: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    pub fn file(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::File {
            path: path.into(),
            msg: msg.into(),
        }
    }
    pub fn row(path: impl Into<PathBuf>, row: usize, msg: impl Into<String>) -> Self {
        Error::Row {
            path: path.into(),
            row,
            msg: msg.into(),
        }
    }
    pub fn asset(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Asset {
            path: path.into(),
            msg: msg.into(),
        }
    }
}

impl From<linfa::Error> for Error {
    fn from(e: linfa::Error) -> Self {
        Error::Param(e.to_string())
    }
}

impl From<ndarray_linalg::error::LinalgError> for Error {
    fn from(e: ndarray_linalg::error::LinalgError) -> Self {
        Error::Linalg(e.to_string())
    }
}

//! Ranking: hubness-aware scores ([`score`]), one scorer every
//! command goes through ([`scorer`]), and recall metrics.
//!
//! **The order of every ranking**: higher score first; equal scores by the gallery item's id
//! (byte order of the UTF-8 string, ascending); NaN scores last. A gallery is put in id order
//! once, when it is prepared ([`scorer::Scorer::prepare`]), so this holds whether it came from a
//! CSV file (`rank`, `report`, `eval`), a folder (`serve`) or a pairs file (`export`).
pub mod metrics;
pub mod score;
pub mod scorer;

pub use scorer::{Bank, Gallery, ScoreError, ScoreOptions, Scorer, TrainBanks};

/// Which way a ranking goes: the one encoding of "is the query a caption or an image".
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Captions are the queries, images the gallery (Teddy task 1, `result1.csv`).
    #[default]
    TextToImage,
    /// Images are the queries, captions the gallery (Teddy task 2, `result2.csv`).
    ImageToText,
}

impl Direction {
    /// The Teddy task number: 1 (text → image) or 2 (image → text).
    pub fn task(self) -> u8 {
        match self {
            Direction::TextToImage => 1,
            Direction::ImageToText => 2,
        }
    }

    /// True when the queries are captions.
    pub fn queries_are_texts(self) -> bool {
        self == Direction::TextToImage
    }

    /// The other way round.
    pub fn reverse(self) -> Direction {
        match self {
            Direction::TextToImage => Direction::ImageToText,
            Direction::ImageToText => Direction::TextToImage,
        }
    }

    /// The result file's header.
    pub fn header(self) -> [&'static str; 3] {
        match self {
            Direction::TextToImage => ["text_id", "similarity_ranking", "result_image_id"],
            Direction::ImageToText => ["image_id", "similarity_ranking", "result_text_id"],
        }
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Direction::TextToImage => "text → image",
            Direction::ImageToText => "image → text",
        })
    }
}

//! Caption features (src/features/text.rs) against hand-computed values, on a tiny generated
//! word2vec file: no models/ and no ../shared needed.
//!
//! The vectors (4-d) are chosen so that unit vectors are simple:
//!   一只 (1,2,2,0) |3|   小狗 (3,4,0,0) |5|   草地 (0,0,2,0) |2|   奔跑 (0,0,0,3) |3|
//!   在 (0,0,0,-7) |7| (also a stop word)   红 (2,0,0,0) |2|   色 (0,0,3,4) |5|
//! Stop words: 的, 在, 上. jieba-rs (the dictionary it ships) cuts the captions used here as the
//! `tokenize` test asserts.
use std::path::PathBuf;
use tuwen::features::text::{BagConfig, TextEncoder, TextFeatureConfig, Weighting};

const EPS: f32 = 1e-5;

const VECTORS: &[(&str, [f32; 4])] = &[
    ("一只", [1.0, 2.0, 2.0, 0.0]),
    ("小狗", [3.0, 4.0, 0.0, 0.0]),
    ("草地", [0.0, 0.0, 2.0, 0.0]),
    ("奔跑", [0.0, 0.0, 0.0, 3.0]),
    ("在", [0.0, 0.0, 0.0, -7.0]),
    ("红", [2.0, 0.0, 0.0, 0.0]),
    ("色", [0.0, 0.0, 3.0, 4.0]),
];

/// The word2vec binary format finalfusion 0.18's `read_word2vec_binary` reads: a "N D\n" header,
/// then per word its UTF-8 bytes, a space, D little-endian f32 and a newline.
fn word2vec_bytes(words: &[(&str, [f32; 4])]) -> Vec<u8> {
    let mut b = format!("{} 4\n", words.len()).into_bytes();
    for (w, v) in words {
        b.extend_from_slice(w.as_bytes());
        b.push(b' ');
        for x in v {
            b.extend_from_slice(&x.to_le_bytes());
        }
        b.push(b'\n');
    }
    b
}

/// A folder with `words.vector` and, if given, `stopwords.txt` beside it.
fn vectors_dir(stopwords: Option<&str>) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("words.vector");
    std::fs::write(&p, word2vec_bytes(VECTORS)).unwrap();
    if let Some(s) = stopwords {
        std::fs::write(d.path().join("stopwords.txt"), s).unwrap();
    }
    (d, p)
}

fn encoder(cfg: TextFeatureConfig) -> (tempfile::TempDir, TextEncoder) {
    // Blank lines and surrounding blanks in the list are ignored.
    let (d, p) = vectors_dir(Some("的\n 在 \n\n上\n"));
    let enc = TextEncoder::load(cfg, Some(&p)).unwrap();
    (d, enc)
}

/// word2vec only (no bag), plain mean, unit vectors, stop words removed, character fallback.
fn w2v_only() -> TextFeatureConfig {
    TextFeatureConfig {
        weighting: Weighting::Mean,
        unit_vectors: true,
        remove_stopwords: true,
        char_fallback: true,
        bag: None,
        ..Default::default()
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn assert_row(what: &str, got: ndarray::ArrayView1<f32>, want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (*g as f64 - w).abs() <= EPS as f64,
            "{what}[{i}]: got {g}, want {w} (row {got:?})"
        );
    }
}

const THIRD: f64 = 1.0 / 3.0;

#[test]
fn reads_the_generated_word2vec_file() {
    let (_d, enc) = encoder(w2v_only());
    assert_eq!(enc.vocab_len(), 7);
    assert_eq!(enc.dim(), 4);
    assert_eq!(enc.feature_dim(), 4, "no bag: the word2vec mean only");
}

#[test]
fn tokenize_drops_blanks_punctuation_and_stop_words() {
    let (_d, enc) = encoder(w2v_only());
    let cases: &[(&str, &[&str])] = &[
        ("一只小狗在草地上奔跑。", &["一只", "小狗", "草地", "奔跑"]),
        ("红色的小狗", &["红色", "小狗"]),
        ("一只红球", &["一只", "红球"]),
        ("天空，蓝蓝的！", &["天空", "蓝蓝的"]),
        ("小狗 在 奔跑 ", &["小狗", "奔跑"]),
        ("小狗小狗奔跑", &["小狗", "小狗", "奔跑"]),
        ("，。！", &[]),
    ];
    for (caption, want) in cases {
        assert_eq!(enc.tokenize(caption), strings(want), "caption {caption:?}");
    }

    // Without stop-word removal the list is not even read, and 在/上 stay.
    let (d, p) = vectors_dir(None);
    let keep = TextEncoder::load(
        TextFeatureConfig {
            remove_stopwords: false,
            ..w2v_only()
        },
        Some(&p),
    )
    .unwrap();
    assert_eq!(
        keep.tokenize("一只小狗在草地上奔跑。"),
        strings(&["一只", "小狗", "在", "草地", "上", "奔跑"])
    );
    // With removal, a missing list is an error that names the file.
    let e = TextEncoder::load(w2v_only(), Some(&p))
        .err()
        .expect("stopwords.txt is missing")
        .to_string();
    assert!(e.contains("stopwords.txt"), "{e}");
    drop(d);
}

/// The captions of the mean tests and their expected rows (unit vectors, fallback on).
fn mean_captions() -> Vec<String> {
    strings(&[
        "一只小狗在草地上奔跑。", // 一只 小狗 草地 奔跑
        "红色的小狗",             // 红色 (OOV → mean of 红, 色) 小狗
        "一只红球",               // 一只 红球 (OOV → 红 only: 球 is unknown)
        "天空，蓝蓝的！",         // 天空 蓝蓝的: nothing known → zero row
        "天空",                   // again nothing known
    ])
}

#[test]
fn plain_mean_of_unit_vectors_with_character_fallback() {
    let (_d, enc) = encoder(w2v_only());
    let (x, rep) = enc.encode(&mean_captions());
    assert_eq!(x.dim(), (5, 4));
    // (一只 + 小狗 + 草地 + 奔跑) / 4 with unit vectors (1/3,2/3,2/3,0) (.6,.8,0,0) (0,0,1,0) (0,0,0,1).
    assert_row(
        "row 0",
        x.row(0),
        &[
            (THIRD + 0.6) / 4.0,
            (2.0 * THIRD + 0.8) / 4.0,
            (2.0 * THIRD + 1.0) / 4.0,
            0.25,
        ],
    );
    // 红色 = (红 (1,0,0,0) + 色 (0,0,.6,.8)) / 2 = (.5,0,.3,.4); with 小狗: ((.5,0,.3,.4) + (.6,.8,0,0)) / 2.
    assert_row("row 1", x.row(1), &[0.55, 0.4, 0.15, 0.2]);
    // 红球 = 红 = (1,0,0,0); with 一只: ((1,0,0,0) + (1/3,2/3,2/3,0)) / 2.
    assert_row("row 2", x.row(2), &[(1.0 + THIRD) / 2.0, THIRD, THIRD, 0.0]);
    assert_row("row 3 (no known token)", x.row(3), &[0.0; 4]);
    assert_row("row 4 (no known token)", x.row(4), &[0.0; 4]);

    assert_eq!(rep.captions, 5);
    assert_eq!(rep.tokens, 11, "4 + 2 + 2 + 2 + 1 tokens");
    assert_eq!(rep.in_vocab, 6, "一只 小狗 草地 奔跑 | 小狗 | 一只");
    assert_eq!(rep.via_chars, 2, "红色, 红球");
    assert_eq!(rep.oov, 3, "天空 ×2, 蓝蓝的");
    assert_eq!(rep.empty_captions, 2);
    assert_eq!(
        rep.top_oov,
        vec![("天空".to_string(), 2), ("蓝蓝的".to_string(), 1)]
    );
    assert!((rep.oov_rate() - 3.0 / 11.0).abs() < 1e-12);
}

#[test]
fn without_character_fallback_oov_words_are_dropped() {
    let (_d, enc) = encoder(TextFeatureConfig {
        char_fallback: false,
        ..w2v_only()
    });
    let (x, rep) = enc.encode(&mean_captions());
    assert_row("row 1 (小狗 alone)", x.row(1), &[0.6, 0.8, 0.0, 0.0]);
    assert_row(
        "row 2 (一只 alone)",
        x.row(2),
        &[THIRD, 2.0 * THIRD, 2.0 * THIRD, 0.0],
    );
    assert_eq!(rep.via_chars, 0);
    assert_eq!(rep.in_vocab, 6);
    assert_eq!(rep.oov, 5, "红色 and 红球 join 天空 ×2, 蓝蓝的");
    assert_eq!(rep.empty_captions, 2);
    assert_eq!(rep.top_oov[0], ("天空".to_string(), 2));
    assert_eq!(rep.top_oov.len(), 4);
}

#[test]
fn raw_vectors_keep_their_norms() {
    let (_d, enc) = encoder(TextFeatureConfig {
        unit_vectors: false,
        ..w2v_only()
    });
    let (x, _) = enc.encode(&mean_captions()[..2]);
    // ((1,2,2,0) + (3,4,0,0) + (0,0,2,0) + (0,0,0,3)) / 4
    assert_row("row 0", x.row(0), &[1.0, 1.5, 1.0, 0.75]);
    // 红色 = ((2,0,0,0) + (0,0,3,4)) / 2 = (1,0,1.5,2); with 小狗 (3,4,0,0): / 2
    assert_row("row 1", x.row(1), &[2.0, 2.0, 0.75, 1.0]);
}

#[test]
fn stop_words_change_the_mean_when_kept() {
    let (_d, enc) = encoder(TextFeatureConfig {
        remove_stopwords: false,
        ..w2v_only()
    });
    let (x, rep) = enc.encode(&strings(&["一只小狗在草地上奔跑。"]));
    // 在 (unit (0,0,0,-1)) now counts and cancels 奔跑; 上 is unknown (no vector, no character).
    assert_row(
        "row 0",
        x.row(0),
        &[
            (THIRD + 0.6) / 5.0,
            (2.0 * THIRD + 0.8) / 5.0,
            (2.0 * THIRD + 1.0) / 5.0,
            0.0,
        ],
    );
    assert_eq!((rep.tokens, rep.in_vocab, rep.oov), (6, 5, 1));
    assert_eq!(rep.top_oov, vec![("上".to_string(), 1)]);
}

/// Training captions of the statistics and bag tests; jieba cuts each into the two words it is
/// made of (小狗 alone for the last).
fn training() -> Vec<String> {
    strings(&["小狗奔跑", "小狗草地", "草地奔跑", "小狗"])
}

#[test]
fn word_statistics_and_idf_sif_weights() {
    let (_d, mut enc) = encoder(TextFeatureConfig {
        weighting: Weighting::Idf,
        ..w2v_only()
    });
    enc.fit_stats(&training());
    let s = enc.stats();
    assert_eq!((s.n_docs, s.total_tokens), (4, 7));
    assert_eq!(s.doc_freq.len(), 3);
    assert_eq!(
        (s.doc_freq["小狗"], s.doc_freq["奔跑"], s.doc_freq["草地"]),
        (3, 2, 2)
    );
    assert!(s.bag_vocab.is_empty(), "no bag configured");

    // idf = ln((1 + n) / (1 + df)) + 1: 小狗 ln(5/4) + 1, 草地 ln(5/3) + 1.
    let (i3, i2) = ((5.0f64 / 4.0).ln() + 1.0, (5.0f64 / 3.0).ln() + 1.0);
    let (x, _) = enc.encode(&strings(&["小狗草地"]));
    let w = i3 + i2;
    assert_row("idf", x.row(0), &[0.6 * i3 / w, 0.8 * i3 / w, i2 / w, 0.0]);

    // SIF a / (a + p(w)), p = term count / 7 tokens; a = 0.5 so that the weights differ visibly.
    let (_d2, mut sif) = encoder(TextFeatureConfig {
        weighting: Weighting::Sif,
        sif_a: 0.5,
        ..w2v_only()
    });
    sif.fit_stats(&training());
    let (x, _) = sif.encode(&strings(&["小狗草地"]));
    let (a, b) = (0.5 / (0.5 + 3.0 / 7.0), 0.5 / (0.5 + 2.0 / 7.0));
    assert_row(
        "sif",
        x.row(0),
        &[0.6 * a / (a + b), 0.8 * a / (a + b), b / (a + b), 0.0],
    );
}

fn with_bag(bag: BagConfig) -> TextFeatureConfig {
    TextFeatureConfig {
        bag: Some(bag),
        ..w2v_only()
    }
}

fn all_terms(min_df: u64, max_terms: usize) -> BagConfig {
    BagConfig {
        words: true,
        chars: true,
        bigrams: true,
        min_df,
        max_terms,
        w2v_weight: 0.5,
    }
}

fn vocab_terms(enc: &TextEncoder) -> Vec<String> {
    enc.stats()
        .bag_vocab
        .iter()
        .map(|(t, _)| t.clone())
        .collect()
}

#[test]
fn bag_vocabulary_order_min_df_and_max_terms() {
    // Document frequencies over the 4 training captions:
    //   3: w:小狗 c:小 c:狗 b:小狗;  2: w:奔跑 w:草地 c:奔 c:跑 c:草 c:地 b:奔跑 b:草地;
    //   1: b:狗奔 b:狗草 b:地奔.
    // Order: df descending, then the term (UTF-8 bytes: b < c < w; 小 U+5C0F < 狗 U+72D7,
    // 地 U+5730 < 奔 U+5954 < 草 U+8349 < 跑 U+8DD1).
    let full = [
        "b:小狗", "c:小", "c:狗", "w:小狗", "b:奔跑", "b:草地", "c:地", "c:奔", "c:草", "c:跑",
        "w:奔跑", "w:草地",
    ];
    let (_d, mut enc) = encoder(with_bag(all_terms(2, 8000)));
    enc.fit_stats(&training());
    assert_eq!(vocab_terms(&enc), strings(&full));
    let (i3, i2) = ((5.0f64 / 4.0).ln() + 1.0, (5.0f64 / 3.0).ln() + 1.0);
    for (i, (t, idf)) in enc.stats().bag_vocab.iter().enumerate() {
        let want = if i < 4 { i3 } else { i2 };
        assert!(
            (*idf as f64 - want).abs() < 1e-5,
            "{t}: idf {idf}, want {want}"
        );
    }
    assert_eq!(enc.feature_dim(), 4 + 12);

    enc.cfg.bag = Some(all_terms(2, 5));
    enc.fit_stats(&training());
    assert_eq!(
        vocab_terms(&enc),
        strings(&full[..5]),
        "max_terms keeps the first"
    );

    enc.cfg.bag = Some(all_terms(3, 8000));
    enc.fit_stats(&training());
    assert_eq!(vocab_terms(&enc), strings(&full[..4]), "min_df 3");

    enc.cfg.bag = Some(all_terms(1, 8000));
    enc.fit_stats(&training());
    let terms = vocab_terms(&enc);
    assert_eq!(terms.len(), 15);
    assert_eq!(&terms[12..], strings(&["b:地奔", "b:狗奔", "b:狗草"]));

    enc.cfg.bag = Some(BagConfig {
        chars: false,
        bigrams: false,
        ..all_terms(2, 8000)
    });
    enc.fit_stats(&training());
    assert_eq!(vocab_terms(&enc), strings(&["w:小狗", "w:奔跑", "w:草地"]));
}

#[test]
fn bag_tfidf_values_next_to_the_weighted_word2vec_mean() {
    let (_d, mut enc) = encoder(with_bag(all_terms(2, 8000)));
    enc.fit_stats(&training());
    let captions = strings(&["小狗小狗奔跑", "天空"]);
    let (x, rep) = enc.features(&captions);
    assert_eq!(x.dim(), (2, 16));

    // word2vec block: (2 × 小狗 + 奔跑) / 3 = (.4, .5333, 0, .3333), times w2v_weight 0.5.
    assert_row(
        "word2vec part",
        x.row(0).slice(ndarray::s![..4]),
        &[0.2, 0.8 / 3.0, 0.0, 0.5 / 3.0],
    );
    // Terms in the caption: w:小狗 ×2, w:奔跑; c:小 ×2, c:狗 ×2, c:奔, c:跑; b:小狗 ×2, b:奔跑
    // (b:狗小 and b:狗奔 are not in the vocabulary). tf weight 1 + ln(count), times idf, then
    // the bag block is scaled to unit length.
    let (i3, i2) = ((5.0f64 / 4.0).ln() + 1.0, (5.0f64 / 3.0).ln() + 1.0);
    let twice = (1.0 + 2.0f64.ln()) * i3; // count 2, df 3
    let once = i2; // count 1, df 2
    let norm = (4.0 * twice * twice + 4.0 * once * once).sqrt();
    let (t, o) = (twice / norm, once / norm);
    // vocabulary order: b:小狗 c:小 c:狗 w:小狗 | b:奔跑 b:草地 c:地 c:奔 c:草 c:跑 w:奔跑 w:草地
    assert_row(
        "bag part",
        x.row(0).slice(ndarray::s![4..]),
        &[t, t, t, t, o, 0.0, 0.0, o, 0.0, o, o, 0.0],
    );
    let bag_norm: f32 = x.row(0).slice(ndarray::s![4..]).mapv(|v| v * v).sum();
    assert!((bag_norm - 1.0).abs() < 1e-5);

    // A caption with nothing known: zero everywhere (no NaN from the zero bag norm).
    assert_row("unknown caption", x.row(1), &[0.0; 16]);
    assert_eq!(
        (rep.captions, rep.tokens, rep.in_vocab, rep.oov),
        (2, 4, 3, 1)
    );
    assert_eq!(rep.empty_captions, 1);

    // `features` without a bag is `encode`.
    let (_d2, plain) = encoder(w2v_only());
    let (a, _) = plain.features(&captions);
    let (b, _) = plain.encode(&captions);
    assert_eq!(a.dim(), (2, 4));
    assert_eq!(a, b);
    assert_row("no bag", a.row(0), &[0.4, 1.6 / 3.0, 0.0, THIRD]);
}

/// The second vector set's block sits right after the first's, weighted, computed the same way
/// (its own vocabulary, character fallback included); a duplicate word in a user's file is an
/// error, not a crash.
#[test]
fn second_vector_block_values_and_layout() {
    let (d, p) = vectors_dir(Some("的\n在\n上\n"));
    // Second set: 2-d, knows 小狗 and 红 only.
    let p2 = d.path().join("second.vector");
    let mut b = b"2 2\n".to_vec();
    for (w, v) in [("小狗", [0.0f32, 2.0]), ("红", [3.0, 4.0])] {
        b.extend_from_slice(w.as_bytes());
        b.push(b' ');
        for x in v {
            b.extend_from_slice(&x.to_le_bytes());
        }
        b.push(b'\n');
    }
    std::fs::write(&p2, &b).unwrap();
    let cfg = TextFeatureConfig {
        second: Some(tuwen::features::text::SecondVectors { weight: 0.5 }),
        ..w2v_only()
    };
    let enc = TextEncoder::load_with(cfg, Some(&p), Some(&p2)).unwrap();
    assert_eq!(enc.feature_dim(), 4 + 2);
    // 一只小狗: first set mean of 一只 (1,2,2)/3 and 小狗 (3,4)/5; second set knows only 小狗 → (0,1).
    let (f, _) = enc.features(&strings(&["一只小狗"]));
    let m = [
        (1.0 / 3.0 + 0.6) / 2.0,
        (2.0 / 3.0 + 0.8) / 2.0,
        (2.0 / 3.0) / 2.0,
        0.0,
    ];
    assert_row("一只小狗", f.row(0), &[m[0], m[1], m[2], m[3], 0.0, 0.5]);
    // 红色: 红 is a word of both sets (jieba keeps 红色 whole: character fallback in both).
    let (f, _) = enc.features(&strings(&["红色"]));
    assert!(
        (f[[0, 4]] - 0.5 * 0.6).abs() < EPS && (f[[0, 5]] - 0.5 * 0.8).abs() < EPS,
        "{f}"
    );

    // A repeated word makes finalfusion panic; the loader turns that into an error.
    let dup = d.path().join("dup.vector");
    let mut b = b"2 2\n".to_vec();
    for _ in 0..2 {
        b.extend_from_slice("红".as_bytes());
        b.push(b' ');
        for x in [1.0f32, 0.0] {
            b.extend_from_slice(&x.to_le_bytes());
        }
        b.push(b'\n');
    }
    std::fs::write(&dup, &b).unwrap();
    let e = TextEncoder::load(w2v_only(), Some(&dup))
        .err()
        .expect("duplicate word")
        .to_string();
    assert!(e.contains("dup.vector") && e.contains("twice"), "{e}");
}

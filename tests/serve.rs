//! `tuwen serve` end to end: start it on a free loopback port, query the JSON API, check its
//! answers against `tuwen rank` on the same model, and that bad requests get 4xx JSON errors.
//! Needs models/ from set-up, not ../shared.
mod common;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request with `Connection: close`; (status, body).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
    declared_len: Option<usize>,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(120)))
        .unwrap();
    let len = declared_len.unwrap_or(body.len());
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {len}\r\n\r\n"
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    (status, body)
}

fn get_json(addr: &str, path: &str) -> (u16, serde_json::Value) {
    let (code, body) = http(addr, "GET", path, b"", None);
    (
        code,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

fn enc(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[test]
fn serve_answers_like_rank_and_refuses_bad_requests() {
    common::models();
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let data = tuwen::data::synthetic::generate(&root.join("syn"), 60, 20, 13).unwrap();
    let cache = root.join("cache");
    let model = root.join("model");
    let st = Command::new(env!("CARGO_BIN_EXE_tuwen"))
        .args([
            "fit",
            "--quiet",
            "--backbone",
            "efficientnet-lite0",
            "--flip",
            "false",
        ])
        .args(["--components", "8", "--reg-text", "0.3", "--pairs"])
        .arg(&data.train_pairs)
        .arg("--images")
        .arg(&data.images)
        .arg("--out")
        .arg(&model)
        .arg("--cache")
        .arg(&cache)
        .status()
        .unwrap();
    assert!(st.success());
    let val = tuwen::data::read_pairs(&data.val_pairs).unwrap();
    let (d2, d3) = (root.join("附件2"), root.join("附件3"));
    tuwen::jobs::split::layout_teddy(&val.pairs, &data.images, &d2, &d3).unwrap();
    // rank with the model's training banks: what a server, with one query at a time, uses.
    let out = root.join("out");
    let st = Command::new(env!("CARGO_BIN_EXE_tuwen"))
        .args(["rank", "--quiet", "--bank", "train", "--model"])
        .arg(&model)
        .arg("--teddy-dir")
        .arg(&d2)
        .arg("--teddy-dir")
        .arg(&d3)
        .arg("--out-dir")
        .arg(&out)
        .arg("--cache")
        .arg(&cache)
        .status()
        .unwrap();
    assert!(st.success());
    let words = tuwen::data::read_ids(&d2.join("word_test.csv"), "text_id", true).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_tuwen"))
        .args(["serve", "--quiet", "--port", "0", "--model"])
        .arg(&model)
        .arg("--images")
        .arg(d2.join("ImageData"))
        .arg("--captions")
        .arg(d2.join("word_test.csv"))
        .arg("--cache")
        .arg(&cache)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap_or_else(|| panic!("no address in `{line}`"))
        .to_string();
    assert!(addr.starts_with("127.0.0.1:"), "binds to loopback: {addr}");

    // rank's scores, through the library on the same model and cache (the result files hold ids
    // only); its lists must be the CLI's.
    let emb = tuwen::embed::Embedder::new(
        tuwen::model::Model::load(&model).unwrap(),
        &Default::default(),
        tuwen::features::image::ExtractOptions {
            cache_dir: Some(cache.clone()),
            progress: false,
            ..Default::default()
        },
    )
    .unwrap();
    let scorer = emb
        .scorer(tuwen::retrieval::ScoreOptions {
            bank: tuwen::retrieval::Bank::Train,
            ..Default::default()
        })
        .unwrap();
    let ranker = tuwen::jobs::rank::Ranker::new(&emb, scorer);
    let lib_out = root.join("lib-out");
    let ranked = |dir: &std::path::Path, file: &str| {
        let mut jobs = tuwen::jobs::rank::teddy_jobs(&[dir.to_path_buf()], &lib_out).unwrap();
        let job = jobs.remove(0);
        let r = ranker.run(&job).unwrap();
        let table = tuwen::data::read_table(&out.join(file)).unwrap();
        let top: std::collections::BTreeMap<String, Vec<(String, f32)>> =
            r.top.into_iter().collect();
        for (q, hits) in &top {
            let cli: Vec<&str> = table
                .rows
                .iter()
                .filter(|row| &row[0] == q)
                .map(|row| row[2].as_str())
                .collect();
            let lib: Vec<&str> = hits.iter().map(|(id, _)| id.as_str()).collect();
            assert_eq!(cli, lib, "{q}: the CLI's {file} and the library's ranking");
        }
        top
    };
    let hits = |v: &serde_json::Value| -> Vec<(String, f32)> {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["id"].as_str().unwrap().to_string(),
                    r["score"].as_f64().unwrap() as f32,
                )
            })
            .collect()
    };
    // One query at a time in the server and a whole file in rank take the same float path: the
    // same ids in the same order with the same scores (to the JSON's decimal printing), for
    // every query, ties included.
    let same = |q: &str, got: &[(String, f32)], want: &[(String, f32)]| {
        let ids = |l: &[(String, f32)]| l.iter().map(|(i, _)| i.clone()).collect::<Vec<_>>();
        assert_eq!(ids(got), ids(want), "{q}: server vs rank");
        for ((_, a), (_, b)) in got.iter().zip(want) {
            assert!((a - b).abs() <= 1e-6, "{q}: score {a} vs {b}");
        }
    };

    // Text → image agrees with rank's result1.csv.
    let want1 = ranked(&d2, "result1.csv");
    assert_eq!(want1.len(), words.ids.len());
    let caps = words.captions.clone().unwrap();
    for (tid, cap) in words.ids.iter().zip(&caps) {
        let (code, v) = get_json(&addr, &format!("/api/search?k=5&q={}", enc(cap)));
        assert_eq!(code, 200, "{v}");
        same(tid, &hits(&v), &want1[tid]);
        // Every hit carries its explanation: terms + offset add up to the cosine.
        for r in v["results"].as_array().unwrap() {
            let e = &r["explanation"];
            let sum: f64 = e["terms"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["contribution"].as_f64().unwrap())
                .sum::<f64>()
                + e["offset"].as_f64().unwrap();
            let cos = r["cosine"].as_f64().unwrap();
            // The 12 largest terms are sent, the others summed in `rest`.
            let sum = sum + e["rest"].as_f64().unwrap();
            assert!((sum - cos).abs() < 1e-4, "{r}");
        }
        assert!(v["tokens"].as_array().is_some_and(|t| !t.is_empty()), "{v}");
    }

    // Image → captions agrees with rank's result2.csv (word_test.csv and word_data.csv hold the
    // same captions under the same ids).
    let want2 = ranked(&d3, "result2.csv");
    let gallery_ids = tuwen::data::read_ids(&d3.join("image_test.csv"), "image_id", false)
        .unwrap()
        .ids;
    assert_eq!(want2.len(), gallery_ids.len());
    for iid in &gallery_ids {
        let (code, v) = get_json(&addr, &format!("/api/image?k=5&id={}", enc(iid)));
        assert_eq!(code, 200, "{v}");
        same(iid, &hits(&v), &want2[iid]);
    }

    // Image → captions for a gallery image, and an uploaded copy of it finds itself first.
    let img_id = &tuwen::data::read_ids(&d2.join("image_data.csv"), "image_id", false)
        .unwrap()
        .ids[0];
    let (code, v) = get_json(&addr, &format!("/api/image?k=3&id={}", enc(img_id)));
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["results"].as_array().unwrap().len(), 3);
    assert_eq!(v["images"][0]["id"], img_id.as_str());
    let bytes = std::fs::read(d2.join("ImageData").join(img_id)).unwrap();
    let (code, body) = http(&addr, "POST", "/api/image?k=3", &bytes, None);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["images"][0]["id"], img_id.as_str(), "{v}");

    // Bad requests: 4xx with a JSON error, and the server keeps serving.
    for (path, want) in [
        ("/api/search?q=", 400),
        ("/api/search?q=%E7%8B%97&k=0", 400),
        ("/api/search?q=%E7%8B%97&k=1000", 400),
        ("/api/search?q=%E7%8B%97&k=abc", 400),
        ("/api/search?q=%21%21%21", 400),
        ("/api/image?id=nope.jpg", 404),
        ("/api/image", 400),
        ("/nothing", 404),
    ] {
        let (code, v) = get_json(&addr, path);
        assert_eq!(code, want, "{path}: {v}");
        assert!(v["error"].is_string(), "{path}: {v}");
    }
    let long = format!("/api/search?q={}", enc(&"狗".repeat(1001)));
    let (code, v) = get_json(&addr, &long);
    assert_eq!(code, 400, "{v}");
    // A body declared far larger than any memory: refused, and the server lives on.
    let (code, _) = http(&addr, "POST", "/api/image", b"", Some(usize::MAX / 4));
    assert_eq!(code, 413);
    let (code, body) = http(&addr, "POST", "/api/image", b"this is not an image", None);
    assert_eq!(code, 415, "{body}");
    let (code, body) = http(
        &addr,
        "POST",
        "/api/image",
        b"",
        Some(tuwen::serve::MAX_UPLOAD + 1),
    );
    assert_eq!(code, 413, "{body}");
    let (code, v) = get_json(&addr, "/api/info");
    assert_eq!(code, 200);
    assert_eq!(v["images"], 20);
    // The page itself.
    let (code, page) = http(&addr, "GET", "/", b"", None);
    assert_eq!(code, 200);
    assert!(page.contains("/api/search"));
}

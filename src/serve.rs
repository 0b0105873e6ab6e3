//! `tuwen serve`: a local search page over an image folder (and optionally a caption list), with
//! a JSON API the page uses. Text → images shows each hit's score split into per-term
//! contributions ([`crate::explain`]); an image (clicked or uploaded) → the nearest captions and
//! images.
//!
//! Queries arrive one at a time, so hubness corrections use the training banks stored in the
//! model (`--bank train`), exactly as `tuwen rank --bank train` does: the gallery-side penalties
//! are computed once at start-up, each query adds only its own.
use crate::data;
use crate::embed::{Embedder, Listed};
use crate::error::{Error, Result};
use crate::explain;
use crate::features::image::{self, decode, ExtractOptions, FeatureSpec, Networks};
use crate::retrieval::{self, Bank, Direction, ScoreOptions, Scorer};
use ndarray::{Array2, ArrayView1};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Largest `k` a request may ask for.
pub const MAX_K: usize = 100;
/// Longest query accepted (characters).
pub const MAX_QUERY_CHARS: usize = 1000;
/// Largest upload accepted (bytes).
pub const MAX_UPLOAD: usize = 20 * 1024 * 1024;

/// Everything a request needs, prepared at start-up: the model ready to use, the scorer, and the
/// two galleries (images for caption queries, captions for image queries), each prepared once
/// by the scorer exactly as `rank --bank train` prepares its gallery.
pub struct Gallery {
    emb: Embedder,
    scorer: Scorer,
    images_dir: PathBuf,
    /// Raw features of the gallery images (for explanations), in `images`' order.
    image_raw: Array2<f32>,
    images: retrieval::Gallery,
    captions: retrieval::Gallery,
    /// Caption text of each item of `captions`, in its order.
    caption_texts: Vec<String>,
    /// Loaded on the first upload only.
    net: Mutex<Option<Networks>>,
    /// Images of the folder that could not be used (id, reason).
    pub skipped: Vec<(String, String)>,
}

/// A request that cannot be answered: HTTP status and message.
#[derive(Debug)]
pub struct HttpError(pub u16, pub String);

fn bad(msg: impl Into<String>) -> HttpError {
    HttpError(400, msg.into())
}

impl Gallery {
    /// Extract (or read from the cache) the features of every image file in `images` (sorted by
    /// name), project them and the captions of `captions` (a CSV with `text_id,caption`, or
    /// `image_id,caption` pairs whose captions are numbered as [`data::pair_text_id`]). Queries
    /// arrive one at a time, so the scoring's banks are the model's training items.
    pub fn load(
        emb: Embedder,
        images: &Path,
        captions: Option<&Path>,
        scoring: retrieval::score::Scoring,
    ) -> Result<Gallery> {
        let scorer = emb.scorer(ScoreOptions {
            scoring,
            bank: Bank::Train,
        })?;
        let (ids, unusable) = gallery_files(images)?;
        if ids.is_empty() {
            return Err(Error::file(images, "no image files in the folder"));
        }
        announce_start(images, ids.len(), emb.spec(), emb.extract_options());
        let im = emb.images(
            &ids,
            images,
            Listed {
                file: images,
                rows: None,
            },
        )?;
        let skipped: Vec<(String, String)> = unusable
            .into_iter()
            .chain(
                im.skipped
                    .iter()
                    .map(|s| (s.id.clone(), s.reason.to_string())),
            )
            .collect();
        announce_done(&im.stats, &skipped, emb.extract_options());
        let gallery = scorer.prepare(Direction::TextToImage, im.ids, im.projected)?;
        // Raw rows in the prepared gallery's order.
        let order: Vec<usize> = (0..gallery.len()).map(|j| gallery.source_row(j)).collect();
        let image_raw = im.raw.select(ndarray::Axis(0), &order);
        let (caption_ids, texts) = match captions {
            Some(p) => read_captions(p)?,
            None => (Vec::new(), Vec::new()),
        };
        let (caption_proj, _) = emb.texts(&texts);
        let captions = scorer.prepare(Direction::ImageToText, caption_ids, caption_proj)?;
        let mut texts: Vec<Option<String>> = texts.into_iter().map(Some).collect();
        let caption_texts = (0..captions.len())
            .map(|j| texts[captions.source_row(j)].take().unwrap_or_default())
            .collect();
        Ok(Gallery {
            emb,
            scorer,
            images_dir: images.to_path_buf(),
            image_raw,
            images: gallery,
            captions,
            caption_texts,
            net: Mutex::new(None),
            skipped,
        })
    }

    pub fn n_images(&self) -> usize {
        self.images.len()
    }

    pub fn n_captions(&self) -> usize {
        self.captions.len()
    }

    /// The scored top-k of one query against a prepared gallery: [`Scorer::rank_one`], the
    /// path `rank --bank train` takes for a whole file.
    fn top(
        &self,
        q: ArrayView1<f32>,
        gallery: &retrieval::Gallery,
        k: usize,
    ) -> std::result::Result<Vec<(usize, f32)>, HttpError> {
        self.scorer
            .rank_one(q, gallery, k)
            .map_err(|e| HttpError(500, e.to_string()))
    }

    /// Text → images: the k best images for `q`, each with its score explained term by term.
    pub fn search_text(&self, q: &str, k: usize) -> std::result::Result<Value, HttpError> {
        let q = q.trim();
        if q.is_empty() {
            return Err(bad("empty query: give some Chinese text in q"));
        }
        if q.chars().count() > MAX_QUERY_CHARS {
            return Err(bad(format!(
                "query longer than {MAX_QUERY_CHARS} characters"
            )));
        }
        let k = check_k(k)?;
        let (tf, _) = self.emb.text_features(&[q.to_string()]);
        if tf.iter().all(|&v| v == 0.0) {
            return Err(bad(
                "no known term in the query (no word vector, no bag term of the model)",
            ));
        }
        let y = self.emb.project_texts(tf.view());
        let hits = self.top(y.row(0), &self.images, k)?;
        let mut results = Vec::new();
        let mut tokens = Value::Null;
        for (j, s) in hits {
            let e = explain::explain_pair(&self.emb, q, self.image_raw.row(j))
                .map_err(|e| HttpError(500, e.to_string()))?;
            if tokens.is_null() {
                tokens =
                    self.emb
                        .encoder()
                        .tokenize(q)
                        .into_iter()
                        .map(|t| {
                            let oov = e.terms.iter().any(|x| {
                                x.kind == explain::TermKind::Token && x.text == t && x.oov
                            });
                            json!({"text": t, "oov": oov})
                        })
                        .collect();
            }
            let shown: Vec<&explain::Term> = e
                .terms
                .iter()
                .filter(|t| t.contribution != 0.0)
                .take(12)
                .collect();
            let terms: Vec<Value> = shown
                .iter()
                .map(|t| json!({"kind": t.kind.name(), "text": t.text, "contribution": t.contribution}))
                .collect();
            // What the terms not sent add up to: terms + rest + offset = cosine.
            let rest = e.total() - e.offset - shown.iter().map(|t| t.contribution).sum::<f32>();
            results.push(json!({
                "id": self.images.id(j),
                "score": s,
                "cosine": e.cosine,
                "correction": s - e.cosine,
                "explanation": {"terms": terms, "rest": rest, "offset": e.offset},
            }));
        }
        Ok(json!({
            "query": q,
            "tokens": tokens,
            "scoring": self.describe(),
            "results": results,
        }))
    }

    /// Image → captions and images, for a gallery image id.
    pub fn search_image_id(&self, id: &str, k: usize) -> std::result::Result<Value, HttpError> {
        let k = check_k(k)?;
        let Some(j) = self.images.position(id) else {
            return Err(HttpError(404, format!("unknown image id `{id}`")));
        };
        let q = self.images.vectors().row(j).to_owned();
        self.image_neighbours(q.view(), k, json!(id))
    }

    /// Image → captions and images, for uploaded image bytes.
    pub fn search_image_bytes(
        &self,
        bytes: &[u8],
        k: usize,
    ) -> std::result::Result<Value, HttpError> {
        let k = check_k(k)?;
        if bytes.is_empty() {
            return Err(bad("empty upload: send the image file as the request body"));
        }
        let spec = self.emb.spec();
        // The decoded image returns its share of the decode budget here, before the network.
        let px = Networks::pixels(spec, bytes)
            .map_err(|e| HttpError(415, format!("not a usable image: {e}")))?;
        let mut guard = self
            .net
            .lock()
            .map_err(|_| HttpError(500, "network lock poisoned".into()))?;
        if guard.is_none() {
            let ex = self.emb.extract_options();
            let nets = Networks::load(spec, ex.weights.as_deref(), ex.device)
                .map_err(|e| HttpError(500, e.to_string()))?;
            *guard = Some(nets);
        }
        let Some(nets) = guard.as_ref() else {
            return Err(HttpError(500, "network not loaded".into()));
        };
        let row = nets
            .features(&px)
            .map_err(|e| HttpError(500, e.to_string()))?;
        let raw = Array2::from_shape_vec((1, row.len()), row)
            .map_err(|e| HttpError(500, e.to_string()))?;
        let q = self.emb.project_images(raw.view());
        self.image_neighbours(q.row(0), k, json!("(upload)"))
    }

    fn image_neighbours(
        &self,
        q: ArrayView1<f32>,
        k: usize,
        query: Value,
    ) -> std::result::Result<Value, HttpError> {
        let caps = if self.captions.is_empty() {
            Vec::new()
        } else {
            self.top(q, &self.captions, k)?
        };
        let captions: Vec<Value> = caps
            .into_iter()
            .map(|(j, s)| json!({"id": self.captions.id(j), "caption": self.caption_texts[j], "score": s}))
            .collect();
        // Image → image: plain cosine within one modality (no correction is defined there).
        let imgs = Scorer::cosine()
            .rank_one(q, &self.images, k)
            .map_err(|e| HttpError(500, e.to_string()))?;
        let images: Vec<Value> = imgs
            .into_iter()
            .map(|(j, s)| json!({"id": self.images.id(j), "score": s}))
            .collect();
        Ok(json!({
            "query": query,
            "scoring": self.describe(),
            "results": captions,
            "images": images,
        }))
    }

    fn describe(&self) -> String {
        self.scorer.describe()
    }

    /// The feature spec of the gallery's images.
    pub fn features(&self) -> String {
        self.emb.spec().describe()
    }

    /// A JPEG thumbnail of a gallery image.
    pub fn thumbnail(&self, id: &str) -> std::result::Result<Vec<u8>, HttpError> {
        if self.images.position(id).is_none() {
            return Err(HttpError(404, format!("unknown image id `{id}`")));
        }
        // Never opens a FIFO that replaced a gallery file.
        let bytes = decode::read_image_file(&self.images_dir.join(id))
            .map_err(|e| HttpError(404, e.to_string()))?;
        // Reduced-scale decode is enough for a 240-px thumbnail.
        let img =
            decode::decode_at_least(&bytes, 240).map_err(|e| HttpError(500, e.to_string()))?;
        let t = decode::thumbnail(&img, 240);
        let mut buf = Vec::new();
        ::image::DynamicImage::ImageRgb8(t)
            .write_to(
                &mut std::io::Cursor::new(&mut buf),
                ::image::ImageFormat::Jpeg,
            )
            .map_err(|e| HttpError(500, e.to_string()))?;
        Ok(buf)
    }
}

fn check_k(k: usize) -> std::result::Result<usize, HttpError> {
    if k == 0 || k > MAX_K {
        return Err(bad(format!("k must be in 1..={MAX_K}, got {k}")));
    }
    Ok(k)
}

fn read_captions(path: &Path) -> Result<(Vec<String>, Vec<String>)> {
    let t = data::read_table(path)?;
    let cc = t.column("caption")?;
    let id_col = t.headers.iter().position(|h| h == "text_id");
    let mut ids = Vec::new();
    let mut caps = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, r) in t.rows.iter().enumerate() {
        let c = data::clean_caption(&r[cc]);
        if c.is_empty() {
            continue;
        }
        let id = match id_col {
            Some(ci) => r[ci].trim().to_string(),
            // Numbered as `export --pairs` and `split --teddy-layout` number them.
            None => data::pair_text_id(caps.len()),
        };
        // Ties break by id, so an id must name one caption.
        if !seen.insert(id.clone()) {
            return Err(Error::row(path, i + 1, format!("duplicate text_id `{id}`")));
        }
        ids.push(id);
        caps.push(c);
    }
    Ok((ids, caps))
}

/// Split `a=1&b=2` into decoded pairs.
fn query_params(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    decode_with(s, true)
}

/// `%XX` decoding; `+` means a space in query strings only, not in paths.
fn decode_with(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A file left out of the gallery: (name, reason).
pub type LeftOut = (String, String);

/// The files of a gallery folder, sorted by name, and those left out with the reason (named,
/// never dropped silently): names that are not UTF-8 (an image id is text, and no CSV can name
/// them) and entries that are not regular files (a FIFO would block the reader). Hidden files
/// and subfolders are not part of a gallery.
pub fn gallery_files(dir: &Path) -> Result<(Vec<String>, Vec<LeftOut>)> {
    let mut ids = Vec::new();
    let mut unusable = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let name = e.file_name();
        if name.as_encoded_bytes().starts_with(b".") {
            continue;
        }
        // Follows links: a folder of symlinked images is a gallery too.
        let meta = std::fs::metadata(e.path());
        if meta.as_ref().is_ok_and(|m| m.is_dir()) {
            continue;
        }
        let Some(id) = name.to_str() else {
            unusable.push((
                escape_name(name.as_encoded_bytes()),
                "file name is not valid UTF-8 (rename it to serve it)".into(),
            ));
            continue;
        };
        match meta {
            Ok(m) if m.is_file() => ids.push(id.to_string()),
            Ok(_) => unusable.push((id.to_string(), "not a regular file".into())),
            Err(err) => unusable.push((id.to_string(), format!("cannot be read: {err}"))),
        }
    }
    ids.sort();
    unusable.sort();
    if ids.is_empty() {
        let mut msg = "no image files in the folder".to_string();
        if let Some((id, why)) = unusable.first() {
            msg.push_str(&format!(
                " ({} left out, e.g. `{id}`: {why})",
                unusable.len()
            ));
        }
        return Err(Error::file(dir, msg));
    }
    Ok((ids, unusable))
}

/// A file name for messages: UTF-8 runs as they are, other bytes as `\xNN`.
fn escape_name(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

/// Say what start-up is doing before the (possibly long) feature extraction; extract's own
/// progress bar follows on a terminal.
fn announce_start(dir: &Path, n: usize, spec: &FeatureSpec, ex: &ExtractOptions) {
    if !ex.progress {
        return;
    }
    let source = match &ex.cache_dir {
        Some(c) => format!(
            "from the cache {}; images not in it are computed now, which takes a while on a new folder",
            c.join(spec.cache_key()).display()
        ),
        None => "computing them now (no cache)".to_string(),
    };
    eprintln!(
        "serve: {n} image files in {}: features {} {source}",
        dir.display(),
        spec.describe()
    );
}

/// How many images start-up computed, read from the cache and left out (named, up to 20).
fn announce_done(st: &image::ExtractStats, skipped: &[(String, String)], ex: &ExtractOptions) {
    if !ex.progress {
        return;
    }
    eprintln!(
        "serve: {} images: {} computed ({:.2} images/s), {} from cache, {} left out; {:.1} s",
        st.requested - st.skipped,
        st.computed,
        st.images_per_second,
        st.from_cache,
        skipped.len(),
        st.seconds
    );
    const SHOWN: usize = 20;
    for (id, why) in skipped.iter().take(SHOWN) {
        eprintln!("  left out `{id}`: {why}");
    }
    if skipped.len() > SHOWN {
        eprintln!("  … and {} more", skipped.len() - SHOWN);
    }
}

/// One answer: status, content type, body, and for 405 the methods the path allows.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub allow: Option<&'static str>,
}

impl Answer {
    fn error(status: u16, msg: impl Into<String>) -> Answer {
        Answer {
            status,
            content_type: "application/json",
            body: json!({"error": msg.into()}).to_string().into_bytes(),
            allow: None,
        }
    }
}

/// The methods each endpoint answers; other methods get 405 with this as `Allow`.
fn allowed_methods(path: &str) -> Option<&'static str> {
    match path {
        "/" | "/api/search" | "/api/info" => Some("GET, HEAD"),
        "/api/image" => Some("GET, HEAD, POST"),
        p if p.starts_with("/thumb/") => Some("GET, HEAD"),
        _ => None,
    }
}

/// Answer one request. HEAD is answered as GET (the server sends the headers only).
pub fn handle(g: &Gallery, method: &str, url: &str, body: &[u8]) -> Answer {
    let (path, q) = url.split_once('?').unwrap_or((url, ""));
    let params = query_params(q);
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let k = match param("k").map(|v| v.parse::<usize>()) {
        None => Ok(10),
        Some(Ok(k)) => Ok(k),
        Some(Err(_)) => Err(bad("k must be a whole number")),
    };
    let ok = |content_type, body| Answer {
        status: 200,
        content_type,
        body,
        allow: None,
    };
    let json_ok = |v: Value| ok("application/json", v.to_string().into_bytes());
    let m = if method == "HEAD" { "GET" } else { method };
    let res: std::result::Result<Answer, HttpError> = match (m, path) {
        ("GET", "/") => Ok(ok("text/html; charset=utf-8", PAGE.as_bytes().to_vec())),
        ("GET", "/api/search") => k
            .and_then(|k| g.search_text(param("q").unwrap_or(""), k))
            .map(json_ok),
        ("GET", "/api/image") => k
            .and_then(|k| match param("id") {
                Some(id) => g.search_image_id(id, k),
                None => Err(bad("give an image id: /api/image?id=…")),
            })
            .map(json_ok),
        ("POST", "/api/image") => k.and_then(|k| g.search_image_bytes(body, k)).map(json_ok),
        ("GET", "/api/info") => Ok(json_ok(json!({
            "images": g.n_images(),
            "captions": g.n_captions(),
            "scoring": g.describe(),
            "features": g.features(),
            "skipped": g.skipped.len(),
        }))),
        ("GET", p) if p.starts_with("/thumb/") => g
            .thumbnail(&decode_with(&p["/thumb/".len()..], false))
            .map(|b| ok("image/jpeg", b)),
        _ => match allowed_methods(path) {
            Some(allow) => {
                return Answer {
                    allow: Some(allow),
                    ..Answer::error(405, format!("{method} {path}: use {allow}"))
                }
            }
            None => Err(HttpError(404, format!("no such endpoint: {method} {path}"))),
        },
    };
    res.unwrap_or_else(|HttpError(code, msg)| Answer::error(code, msg))
}

/// Threads answering requests (scoring, decoding uploads). They never wait on a client: bodies
/// arrive whole (see [`limits`]) and answers are written by threads of their own.
const WORKERS: usize = 4;

/// Longest wait for the next bytes from a client (also closes idle keep-alive connections).
pub const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Longest wait for a client to take the next part of an answer.
pub const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// A request body must arrive within this, plus [`BODY_TIME_PER_MIB`] for every MiB declared.
pub const BODY_TIME: std::time::Duration = std::time::Duration::from_secs(10);
pub const BODY_TIME_PER_MIB: std::time::Duration = std::time::Duration::from_secs(1);
/// Request bodies held in memory at once, all connections together (as when the 4 workers read
/// them); an upload beyond gets a 503.
pub const MAX_BUFFERED: usize = WORKERS * MAX_UPLOAD;

/// What one connection may cost the server: a body is read whole, with its deadline, on the
/// connection's own thread before a worker sees the request, so slow or silent senders (with
/// `Content-Length` or chunked) hold only their own connection; past the deadline they get a
/// 408 and the connection is closed.
pub fn limits() -> tiny_http::Limits {
    tiny_http::Limits {
        read_timeout: READ_TIMEOUT,
        write_timeout: WRITE_TIMEOUT,
        max_body: MAX_UPLOAD,
        max_buffered: MAX_BUFFERED,
        body_time: BODY_TIME,
        body_time_per_mib: BODY_TIME_PER_MIB,
    }
}

/// Serve `g` on `addr` until the process ends. `ready` is called with the bound address (port 0
/// picks a free one).
pub fn serve(
    g: &Gallery,
    addr: std::net::SocketAddr,
    ready: impl FnOnce(std::net::SocketAddr),
) -> Result<()> {
    let server = tiny_http::Server::http_limited(addr, limits())
        .map_err(|e| Error::Param(format!("cannot listen on {addr}: {e}")))?;
    let bound = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| Error::Param(format!("{addr} is not an IP address")))?;
    ready(bound);
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| worker(g, &server));
        }
    });
    Ok(())
}

/// The answer to a request whose body has arrived (or failed to).
fn answer(g: &Gallery, req: &mut tiny_http::Request) -> Answer {
    match req.body_error() {
        Some(tiny_http::BodyError::TooLarge { .. }) => {
            return Answer::error(413, format!("upload larger than {MAX_UPLOAD} bytes"))
        }
        Some(e @ tiny_http::BodyError::TimedOut { .. }) => {
            return Answer::error(408, e.to_string())
        }
        Some(e @ tiny_http::BodyError::Busy) => return Answer::error(503, e.to_string()),
        Some(e) => return Answer::error(400, e.to_string()),
        None => {}
    }
    let method = req.method().as_str().to_string();
    let url = req.url().to_string();
    let mut body = Vec::new();
    // Already in memory (read by the connection's thread): this does not wait on the client.
    if req.as_reader().read_to_end(&mut body).is_err() {
        return Answer::error(400, "cannot read the request body");
    }
    // A panic deep in a decoder or libtorch answers 500; the server goes on.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        handle(g, &method, &url, &body)
    }))
    .unwrap_or_else(|_| Answer::error(500, "internal error while answering this request"))
}

fn worker(g: &Gallery, server: &tiny_http::Server) {
    while let Ok(mut req) = server.recv() {
        let a = answer(g, &mut req);
        let mut resp = tiny_http::Response::from_data(a.body).with_status_code(a.status);
        let mut headers = vec![("Content-Type", a.content_type)];
        headers.extend(a.allow.map(|m| ("Allow", m)));
        // tiny_http closes the connection after a body it could not read; say so.
        if req.body_error().is_some() {
            headers.push(("Connection", "close"));
        }
        for (k, v) in headers {
            if let Ok(h) = tiny_http::Header::from_bytes(k, v) {
                resp = resp.with_header(h);
            }
        }
        // Writing waits on the client (which may not read at all, up to WRITE_TIMEOUT per
        // write): a thread of its own keeps this worker answering others. A client that went
        // away is its own business, not the server's.
        let job = move || {
            let _ = req.respond(resp);
        };
        // With no thread to spare, the request is dropped with the closure and tiny_http
        // answers it with an empty 500.
        let _ = std::thread::Builder::new()
            .name("respond".into())
            .spawn(job);
    }
}

const PAGE: &str = r##"<!doctype html>
<html lang="zh"><head><meta charset="utf-8"><title>tuwen 图文 search</title>
<style>
body{font-family:"Noto Sans CJK SC",sans-serif;margin:18px;background:#fafafa;color:#222}
header{display:flex;gap:10px;align-items:center;flex-wrap:wrap}
input[type=text]{font-size:18px;padding:6px 10px;width:420px}
button{font-size:16px;padding:6px 14px}
#info{color:#666;font-size:13px}
#tokens span{display:inline-block;margin:2px 4px;padding:2px 6px;border-radius:4px;background:#e6efe6}
#tokens span.oov{background:#f6dddd;text-decoration:line-through}
.grid{display:flex;flex-wrap:wrap;gap:14px;margin-top:12px}
.hit{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px;width:260px}
.hit img{width:240px;height:auto;cursor:pointer;display:block;margin:auto}
.s{font-size:12px;color:#555}
.terms{font-size:12px;margin-top:4px}
.terms div{display:flex;justify-content:space-between}
.pos{color:#196c2e}.neg{color:#a32020}
.cap{font-size:15px;margin:4px 0}
</style></head><body>
<header><b>tuwen 图文</b>
<form id=f><input type=text id=q placeholder="输入中文描述，例如：一只狗在草地上奔跑"> <button>搜索</button></form>
<label>或上传图片 <input type=file id=up accept="image/*"></label>
<span id=info></span></header>
<div id=tokens></div><div id=out class=grid></div><h3 id=h2></h3><div id=caps></div><div id=imgs class=grid></div>
<script>
const $=s=>document.querySelector(s);
const esc=s=>String(s).replace(/[&<>"']/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));
// Clicks on any result image, by its data-id (no ids inside inline scripts).
document.addEventListener('click',e=>{const id=e.target.dataset&&e.target.dataset.id; if(id)byImage(id)});
fetch('/api/info').then(r=>r.json()).then(i=>{$('#info').textContent=`${i.images} images, ${i.captions} captions · ${i.scoring}`});
function clear(){for(const id of ['#tokens','#out','#h2','#caps','#imgs'])$(id).innerHTML=''}
async function search(q){
  clear(); history.replaceState(null,'','/?q='+encodeURIComponent(q));
  const r=await fetch('/api/search?k=12&q='+encodeURIComponent(q)); const j=await r.json();
  if(!r.ok){$('#out').textContent=j.error;return}
  $('#tokens').innerHTML='tokens: '+j.tokens.map(t=>`<span class="${t.oov?'oov':''}" title="${t.oov?'out of vocabulary':''}">${esc(t.text)}</span>`).join('');
  $('#out').innerHTML=j.results.map((h,i)=>`<div class=hit><img src="/thumb/${encodeURIComponent(h.id)}" data-id="${esc(h.id)}">
   <div class=s>#${i+1} ${esc(h.id)} · score ${h.score.toFixed(3)} = cos ${h.cosine.toFixed(3)} ${h.correction>=0?'+':'−'} ${Math.abs(h.correction).toFixed(3)} (hubness)</div>
   <div class=terms>${h.explanation.terms.slice(0,8).map(t=>`<div><span>${t.kind} ${esc(t.text)}</span><span class=${t.contribution>=0?'pos':'neg'}>${t.contribution>=0?'+':''}${t.contribution.toFixed(3)}</span></div>`).join('')}
   <div><span>other terms</span><span>${h.explanation.rest.toFixed(3)}</span></div>
   <div><span>offset (centring)</span><span>${h.explanation.offset.toFixed(3)}</span></div></div></div>`).join('');
}
function showImage(j,title){
  clear(); $('#h2').innerHTML=title;
  $('#caps').innerHTML=j.results.length?j.results.map((c,i)=>`<div class=cap>#${i+1} ${esc(c.caption)} <span class=s>${esc(c.id)} · ${c.score.toFixed(3)}</span></div>`).join(''):'<div class=s>(no --captions given)</div>';
  $('#imgs').innerHTML=j.images.map(h=>`<div class=hit><img src="/thumb/${encodeURIComponent(h.id)}" data-id="${esc(h.id)}"><div class=s>${esc(h.id)} · cos ${h.score.toFixed(3)}</div></div>`).join('');
}
async function byImage(id){const r=await fetch('/api/image?k=8&id='+encodeURIComponent(id));const j=await r.json();
  if(!r.ok){$('#out').textContent=j.error;return} showImage(j,`<img src="/thumb/${encodeURIComponent(id)}" style="height:120px"> nearest captions and images of ${esc(id)}`)}
$('#up').onchange=async e=>{const f=e.target.files[0]; if(!f)return; const r=await fetch('/api/image?k=8',{method:'POST',body:f}); const j=await r.json();
  if(!r.ok){clear();$('#out').textContent=j.error;return} showImage(j,'nearest captions and images of the uploaded image')};
$('#f').onsubmit=e=>{e.preventDefault(); search($('#q').value)};
const q0=new URLSearchParams(location.search).get('q'); if(q0){$('#q').value=q0; search(q0)}
</script></body></html>
"##;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_decoded() {
        let p = query_params("q=%E4%B8%80%E5%8F%AA%E7%8B%97+run&k=5&x");
        assert_eq!(p[0], ("q".into(), "一只狗 run".into()));
        assert_eq!(p[1], ("k".into(), "5".into()));
        assert_eq!(p[2], ("x".into(), "".into()));
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn file_names_that_are_not_utf8_are_shown_escaped() {
        assert_eq!(escape_name(b"caf\xE9.jpg"), "caf\\xE9.jpg");
        assert_eq!(escape_name("狗.jpg".as_bytes()), "狗.jpg");
    }

    #[test]
    fn every_endpoint_names_its_methods() {
        assert_eq!(allowed_methods("/api/image"), Some("GET, HEAD, POST"));
        assert_eq!(allowed_methods("/thumb/a.jpg"), Some("GET, HEAD"));
        assert_eq!(allowed_methods("/nothing"), None);
    }
}

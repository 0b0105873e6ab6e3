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
use crate::features::image::{self, decode, Backbone};
use crate::retrieval::{self, Bank, Direction, ScoreOptions, Scorer};
use ndarray::{Array2, ArrayView1};
use serde_json::{json, Value};
use std::io::Read;
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
    net: Mutex<Option<Backbone>>,
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
        let mut ids: Vec<String> = std::fs::read_dir(images)
            .map_err(|e| Error::io(images, e))?
            .filter_map(|e| e.ok())
            // Follows links: a folder of symlinked images is a gallery too.
            .filter(|e| std::fs::metadata(e.path()).is_ok_and(|m| m.is_file()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        ids.sort();
        if ids.is_empty() {
            return Err(Error::file(images, "no image files in the folder"));
        }
        let im = emb.images(
            &ids,
            images,
            Listed {
                file: images,
                rows: None,
            },
        )?;
        let skipped = im
            .skipped
            .iter()
            .map(|s| (s.id.clone(), s.reason.clone()))
            .collect();
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
        let img = decode::decode(bytes)
            .map_err(|e| HttpError(415, format!("not a usable image: {e}")))?;
        let spec = self.emb.spec();
        let size = spec.input_size;
        let px = decode::resize_center_crop(&img, size).into_raw();
        let mut guard = self
            .net
            .lock()
            .map_err(|_| HttpError(500, "network lock poisoned".into()))?;
        if guard.is_none() {
            let ex = self.emb.extract_options();
            let net = Backbone::load(spec.backbone, ex.weights.as_deref(), ex.device)
                .map_err(|e| HttpError(500, e.to_string()))?;
            *guard = Some(net);
        }
        let Some(net) = guard.as_ref() else {
            return Err(HttpError(500, "network not loaded".into()));
        };
        let rows = image::forward(net, &[px.as_slice()], size, &spec.config())
            .map_err(|e| HttpError(500, e.to_string()))?;
        let raw = Array2::from_shape_vec((1, rows[0].len()), rows[0].clone())
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
        let bytes =
            std::fs::read(self.images_dir.join(id)).map_err(|e| HttpError(404, e.to_string()))?;
        let img = decode::decode(&bytes).map_err(|e| HttpError(500, e.to_string()))?;
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
    for r in &t.rows {
        let c = data::clean_caption(&r[cc]);
        if c.is_empty() {
            continue;
        }
        ids.push(match id_col {
            Some(ci) => r[ci].trim().to_string(),
            // Numbered as `export --pairs` and `split --teddy-layout` number them.
            None => data::pair_text_id(caps.len()),
        });
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

/// Answer one request: (status, content type, body).
pub fn handle(g: &Gallery, method: &str, url: &str, body: &[u8]) -> (u16, &'static str, Vec<u8>) {
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
    let json_ok = |v: Value| (200, "application/json", v.to_string().into_bytes());
    let res: std::result::Result<(u16, &'static str, Vec<u8>), HttpError> = match (method, path) {
        ("GET", "/") => Ok((200, "text/html; charset=utf-8", PAGE.as_bytes().to_vec())),
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
            .map(|b| (200, "image/jpeg", b)),
        _ => Err(HttpError(404, format!("no such endpoint: {method} {path}"))),
    };
    match res {
        Ok(r) => r,
        Err(HttpError(code, msg)) => (
            code,
            "application/json",
            json!({"error": msg}).to_string().into_bytes(),
        ),
    }
}

/// Requests answered at once (one slow client does not hold up the others).
const WORKERS: usize = 4;

/// Serve `g` on `addr` until the process ends. `ready` is called with the bound address (port 0
/// picks a free one).
pub fn serve(
    g: &Gallery,
    addr: std::net::SocketAddr,
    ready: impl FnOnce(std::net::SocketAddr),
) -> Result<()> {
    let server = tiny_http::Server::http(addr)
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

fn worker(g: &Gallery, server: &tiny_http::Server) {
    while let Ok(mut req) = server.recv() {
        let method = req.method().as_str().to_string();
        let url = req.url().to_string();
        let mut body = Vec::new();
        let too_big = req.body_length().is_some_and(|n| n > MAX_UPLOAD);
        let too_large = || {
            (
                413,
                "application/json",
                json!({"error": format!("upload larger than {MAX_UPLOAD} bytes")})
                    .to_string()
                    .into_bytes(),
            )
        };
        let (code, ctype, bytes) = if too_big {
            too_large()
        } else {
            let read = req
                .as_reader()
                .take(MAX_UPLOAD as u64 + 1)
                .read_to_end(&mut body);
            if read.is_err() {
                (
                    400,
                    "application/json",
                    br#"{"error":"cannot read the request body"}"#.to_vec(),
                )
            } else if body.len() > MAX_UPLOAD {
                too_large()
            } else {
                // A panic deep in a decoder or libtorch answers 500; the server goes on.
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    handle(g, &method, &url, &body)
                }))
                .unwrap_or_else(|_| {
                    (
                        500,
                        "application/json",
                        br#"{"error":"internal error while answering this request"}"#.to_vec(),
                    )
                })
            }
        };
        let mut resp = tiny_http::Response::from_data(bytes).with_status_code(code);
        if let Ok(h) = tiny_http::Header::from_bytes("Content-Type", ctype) {
            resp = resp.with_header(h);
        }
        // A client that went away is its own business, not the server's.
        let _ = req.respond(resp);
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
}

//! `tuwen serve` against careless and hostile clients (issue 16: items 2, 16 and the server parts
//! of 15): slow or silent request bodies never stall searches and get a 408 (or a closed
//! connection) after the deadline; HEAD is answered, other methods get 405 with `Allow`;
//! start-up says what it is doing and names the files it leaves out (a non-UTF-8 name too);
//! running out of file descriptors does not end the server.
//! Loopback only; every loop bounded in count and time. Needs models/ from set-up.
mod common;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A raw response: status, header block, body.
struct Raw {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Raw {
    fn parse(raw: &[u8]) -> Raw {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(raw.len());
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let body = raw.get(split + 4..).unwrap_or(&[]).to_vec();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        Raw { status, head, body }
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// Send `request` (with `Connection: close` in it) and read the whole answer within `limit`.
fn exchange(addr: &str, request: &[u8], limit: Duration) -> Raw {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(limit)).unwrap();
    s.write_all(request).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    Raw::parse(&raw)
}

fn request(method: &str, path: &str, addr: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn enc(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// How a slow client's connection ended.
#[derive(Debug)]
enum End {
    Status(u16),
    Closed,
    /// Nothing within the bound: the server still holds the connection.
    StillOpen,
}

/// A client that declares a body it does not send in time: `kind` 0 = ten bytes then silence,
/// 1 = ten bytes then one byte a second, 2 = chunked, ten bytes of a large chunk then silence,
/// 3 = chunked trickle. Reports on `sent` once its ten bytes are out, returns how it ended.
fn slow_client(addr: String, kind: usize, sent: mpsc::Sender<()>, bound: Duration) -> End {
    let mut s = TcpStream::connect(&addr).unwrap();
    let head = if kind < 2 {
        format!("POST /api/image HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 100000\r\n\r\n")
    } else {
        format!(
            "POST /api/image HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\r\n186a0\r\n"
        )
    };
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(b"0123456789").unwrap();
    sent.send(()).unwrap();
    let t0 = Instant::now();
    if kind % 2 == 1 {
        // The trickle: one byte a second, until the server gives up or the bound is reached.
        let mut w = s.try_clone().unwrap();
        std::thread::spawn(move || {
            for _ in 0..bound.as_secs() {
                std::thread::sleep(Duration::from_secs(1));
                if w.write_all(b"x").is_err() {
                    break;
                }
            }
        });
    }
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while t0.elapsed() < bound {
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            // Reset: closed by the server with the client's bytes unread.
            Err(_) => break,
        }
    }
    if t0.elapsed() >= bound {
        return End::StillOpen;
    }
    match Raw::parse(&raw).status {
        0 => End::Closed,
        c => End::Status(c),
    }
}

#[test]
fn serve_survives_hostile_clients_answers_head_405_and_reports_its_start() {
    common::models();
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let data = tuwen::data::synthetic::generate(&root.join("syn"), 40, 8, 29).unwrap();
    let cache = root.join("cache");
    let model = root.join("model");
    let st = Command::new(env!("CARGO_BIN_EXE_tuwen"))
        .args(["fit", "--quiet", "--backbone", "efficientnet-lite0"])
        .args(["--flip", "false", "--components", "6", "--pairs"])
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

    // Gallery: the 8 val images (not in the cache yet), a valid JPEG whose name is not UTF-8,
    // and a file that is not an image.
    let gallery = root.join("gallery");
    std::fs::create_dir(&gallery).unwrap();
    let val = tuwen::data::read_pairs(&data.val_pairs).unwrap();
    let (val_ids, _) = tuwen::data::group_images(&val.pairs);
    for id in &val_ids {
        std::fs::copy(data.images.join(id), gallery.join(id)).unwrap();
    }
    let first = data.images.join(&val_ids[0]);
    {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(b"caf\xE9.jpg");
        std::fs::copy(&first, gallery.join(name)).unwrap();
    }
    std::fs::write(gallery.join("broken.jpg"), b"not an image at all").unwrap();

    // Not --quiet: start-up reports on stderr.
    let mut child = Command::new(env!("CARGO_BIN_EXE_tuwen"))
        .args(["serve", "--port", "0", "--model"])
        .arg(&model)
        .arg("--images")
        .arg(&gallery)
        .arg("--captions")
        .arg(&data.val_pairs)
        .arg("--cache")
        .arg(&cache)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let _server = Server(child);
    let err_lines = Arc::new(Mutex::new(Vec::<String>::new()));
    {
        let err_lines = err_lines.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                err_lines.lock().unwrap().push(l);
            }
        });
    }
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap_or_else(|| panic!("no address in `{line}`"))
        .to_string();

    start_report(&addr, &err_lines, &gallery, val_ids.len());
    methods(&addr);
    upload_encodings(&addr, &first, &val_ids[0]);
    slow_clients(&addr, &val.pairs[0].caption, &first);
    drop(_server);
    out_of_file_descriptors(&model, &gallery, &cache);
}

/// More connections than the server has file descriptors: accept fails for a while, and the
/// server answers again once they are gone (it used to stop accepting for good and exit).
fn out_of_file_descriptors(
    model: &std::path::Path,
    gallery: &std::path::Path,
    cache: &std::path::Path,
) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 256 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_tuwen"))
        .args(["serve", "--quiet", "--port", "0", "--model"])
        .arg(model)
        .arg("--images")
        .arg(gallery)
        .arg("--cache")
        .arg(cache)
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
    let sock: std::net::SocketAddr = addr.parse().unwrap();
    let mut held = Vec::new();
    for _ in 0..400 {
        match TcpStream::connect_timeout(&sock, Duration::from_millis(500)) {
            Ok(s) => held.push(s),
            Err(_) => break,
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    drop(held);
    let t0 = Instant::now();
    let status = loop {
        let r = TcpStream::connect(&addr).map(|_| {
            exchange(
                &addr,
                &request("GET", "/api/info", &addr, b""),
                Duration::from_secs(5),
            )
            .status
        });
        match r {
            Ok(200) => break 200,
            _ if t0.elapsed() > Duration::from_secs(30) => break r.unwrap_or(0),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    assert_eq!(
        status, 200,
        "the server answers again after running out of descriptors"
    );
}

/// Item 16: what start-up did, with counts, and every file left out by name.
fn start_report(addr: &str, err_lines: &Mutex<Vec<String>>, gallery: &std::path::Path, n: usize) {
    let t0 = Instant::now();
    let stderr_text = loop {
        let text = err_lines.lock().unwrap().join("\n");
        if text.contains("left out `caf") || t0.elapsed() > Duration::from_secs(20) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        stderr_text.contains(&format!(
            "serve: {} image files in {}: features efficientnet-lite0",
            n + 1,
            gallery.display()
        )),
        "{stderr_text}"
    );
    assert!(
        stderr_text.contains(&format!("serve: {n} images: {n} computed")),
        "{stderr_text}"
    );
    assert!(stderr_text.contains("2 left out"), "{stderr_text}");
    assert!(
        stderr_text.contains("left out `caf\\xE9.jpg`: file name is not valid UTF-8"),
        "{stderr_text}"
    );
    assert!(
        stderr_text.contains("left out `broken.jpg`"),
        "{stderr_text}"
    );
    let info = exchange(
        addr,
        &request("GET", "/api/info", addr, b""),
        Duration::from_secs(30),
    );
    let v: serde_json::Value = serde_json::from_slice(&info.body).unwrap();
    assert_eq!(v["images"], n, "{v}");
    assert_eq!(v["skipped"], 2, "{v}");
}

/// Item 15: HEAD is answered as GET without a body; other methods get 405 with Allow.
fn methods(addr: &str) {
    let page = exchange(
        addr,
        &request("GET", "/", addr, b""),
        Duration::from_secs(30),
    );
    let head = exchange(
        addr,
        &request("HEAD", "/", addr, b""),
        Duration::from_secs(30),
    );
    assert_eq!(head.status, 200, "{}", head.head);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("Content-Length"),
        Some(page.body.len().to_string())
    );
    let head = exchange(
        addr,
        &request("HEAD", "/api/info", addr, b""),
        Duration::from_secs(30),
    );
    assert_eq!(head.status, 200, "{}", head.head);
    for (method, path, allow) in [
        ("PUT", "/api/search?q=x", "GET, HEAD"),
        ("DELETE", "/api/image", "GET, HEAD, POST"),
        ("POST", "/", "GET, HEAD"),
        ("OPTIONS", "/api/info", "GET, HEAD"),
        ("PATCH", "/thumb/x.jpg", "GET, HEAD"),
    ] {
        let r = exchange(
            addr,
            &request(method, path, addr, b""),
            Duration::from_secs(30),
        );
        assert_eq!(r.status, 405, "{method} {path}: {}", r.head);
        assert_eq!(r.header("Allow").as_deref(), Some(allow), "{method} {path}");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert!(v["error"].is_string(), "{v}");
    }
    let r = exchange(
        addr,
        &request("PUT", "/nothing", addr, b""),
        Duration::from_secs(30),
    );
    assert_eq!(r.status, 404);
}

/// Uploads the other ways clients send them: chunked, and after `Expect: 100-continue`.
fn upload_encodings(addr: &str, first: &std::path::Path, first_id: &str) {
    let img = std::fs::read(first).unwrap();
    let (a, b) = img.split_at(img.len() / 2);
    let mut chunked = format!(
        "POST /api/image?k=2 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for part in [a, b] {
        chunked.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        chunked.extend_from_slice(part);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let r = exchange(addr, &chunked, Duration::from_secs(60));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["images"][0]["id"], first_id, "{v}");
    {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        write!(
            s,
            "POST /api/image?k=2 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            img.len()
        )
        .unwrap();
        let mut buf = [0u8; 25];
        s.read_exact(&mut buf).unwrap();
        assert!(buf.starts_with(b"HTTP/1.1 100 Continue"), "{buf:?}");
        s.write_all(&img).unwrap();
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        let raw = String::from_utf8_lossy(&raw);
        assert!(raw.contains("HTTP/1.1 200"), "{raw}");
    }
}

/// Item 2: eight clients hold connections with bodies they do not send; searches are
/// answered within 2 s all the same, and the slow clients get a 408 or a closed connection
/// once the body deadline has passed.
fn slow_clients(addr: &str, caption: &str, first: &std::path::Path) {
    let img = std::fs::read(first).unwrap();
    let bound = tuwen::serve::BODY_TIME + tuwen::serve::READ_TIMEOUT + Duration::from_secs(20);
    let (tx, rx) = mpsc::channel();
    let slow: Vec<_> = (0..8)
        .map(|i| {
            let (addr, tx) = (addr.to_string(), tx.clone());
            std::thread::spawn(move || slow_client(addr, i % 4, tx, bound))
        })
        .collect();
    for _ in 0..8 {
        rx.recv_timeout(Duration::from_secs(10))
            .expect("slow client connected");
    }
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        let t = Instant::now();
        let r = exchange(
            addr,
            &request(
                "GET",
                &format!("/api/search?k=3&q={}", enc(caption)),
                addr,
                b"",
            ),
            Duration::from_secs(2),
        );
        assert_eq!(
            r.status,
            200,
            "search while 8 slow clients hold connections: no answer in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        assert!(t.elapsed() < Duration::from_secs(2));
    }
    // An upload is answered meanwhile too (a bound, not a timing claim).
    let r = exchange(
        addr,
        &request("POST", "/api/image?k=2", addr, &img),
        Duration::from_secs(60),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    for (i, h) in slow.into_iter().enumerate() {
        let end = h.join().unwrap();
        eprintln!("slow client {i} (kind {}): {end:?}", i % 4);
        assert!(
            matches!(end, End::Status(408) | End::Closed),
            "slow client {i} (kind {}): {end:?}",
            i % 4
        );
    }
    // And the server still answers.
    let r = exchange(
        addr,
        &request("GET", "/api/info", addr, b""),
        Duration::from_secs(30),
    );
    assert_eq!(r.status, 200);
}

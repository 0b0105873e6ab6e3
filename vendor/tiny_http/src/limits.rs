//! tuwen patch: bounds on what one connection may cost the server (see README.tuwen.md).
//!
//! With [`Limits`], a request body is read whole, with a deadline, on the connection's own
//! thread before the request is handed out by `Server::recv`, so a client that sends its body
//! slowly (or not at all) holds only its own connection, never a thread that answers requests.

use std::io::{Cursor, ErrorKind, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chunked_transfer::Decoder;

/// Timeouts and sizes for a server built with `Server::http_limited`.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Socket read timeout: the longest wait for the next bytes from a client (request line,
    /// headers, body, and idle keep-alive connections).
    pub read_timeout: Duration,
    /// Socket write timeout: a client that does not read its answers cannot hold a thread
    /// longer than this per write.
    pub write_timeout: Duration,
    /// Largest request body in bytes (declared or, for chunked bodies, received).
    pub max_body: usize,
    /// Most bytes of bodies held in memory at once, all connections together (until their
    /// requests are dropped); a body that would go beyond waits for nothing: `BodyError::Busy`.
    pub max_buffered: usize,
    /// Time allowed for a whole body: `body_time` plus `body_time_per_mib` for every MiB
    /// declared (or received so far, for chunked bodies).
    pub body_time: Duration,
    pub body_time_per_mib: Duration,
}

impl Limits {
    /// The deadline, from the end of the headers, of a body of `bytes` bytes.
    pub fn body_deadline(&self, bytes: usize) -> Duration {
        self.body_time
            + self
                .body_time_per_mib
                .mul_f64(bytes as f64 / (1024.0 * 1024.0))
    }
}

/// Why a request's body was not read; the request is handed out with an empty body and the
/// connection is closed after the answer (where the body ends is unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Larger than `Limits::max_body` (declared, or received for chunked bodies).
    TooLarge { limit: usize },
    /// Not received within its deadline (or a read waited longer than the read timeout).
    TimedOut { after: Duration },
    /// A chunked body that does not follow the chunked encoding.
    Malformed,
    /// Other bodies in memory already use `Limits::max_buffered`.
    Busy,
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge { limit } => write!(f, "request body larger than {limit} bytes"),
            BodyError::TimedOut { after } => write!(
                f,
                "request body not received in time (gave up after {:.1} s)",
                after.as_secs_f64()
            ),
            BodyError::Malformed => write!(f, "malformed chunked request body"),
            BodyError::Busy => write!(f, "too many uploads at once; try again"),
        }
    }
}

/// `Limits` and the bytes of bodies held now, shared by all connections of a server.
#[derive(Debug)]
pub(crate) struct Bounds {
    pub(crate) limits: Limits,
    buffered: AtomicUsize,
}

impl Bounds {
    pub(crate) fn new(limits: Limits) -> Arc<Bounds> {
        Arc::new(Bounds {
            limits,
            buffered: AtomicUsize::new(0),
        })
    }
}

/// Bytes counted against `Limits::max_buffered` until dropped.
struct Reservation {
    bounds: Arc<Bounds>,
    bytes: usize,
}

impl Reservation {
    fn grow(&mut self, n: usize) -> bool {
        let before = self.bounds.buffered.fetch_add(n, Ordering::SeqCst);
        if before + n > self.bounds.limits.max_buffered {
            self.bounds.buffered.fetch_sub(n, Ordering::SeqCst);
            return false;
        }
        self.bytes += n;
        true
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.bounds.buffered.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

/// A body read whole; its bytes count against the budget while the request lives.
pub(crate) struct BufferedBody {
    body: Cursor<Vec<u8>>,
    _reserved: Reservation,
}

impl BufferedBody {
    pub(crate) fn len(&self) -> usize {
        self.body.get_ref().len()
    }
}

impl Read for BufferedBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.body.read(buf)
    }
}

pub(crate) enum ReadFailure {
    Body(BodyError),
    /// The client closed the connection or it failed: nobody to answer.
    Closed,
}

/// Fails every read once the deadline has passed, and remembers timeouts, so that a client
/// trickling bytes (each within the socket timeout) is stopped too.
struct DeadlineReader<'l, R> {
    inner: R,
    start: Instant,
    declared: usize,
    received: usize,
    limits: &'l Limits,
    expired: bool,
}

impl<R: Read> Read for DeadlineReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let allowed = self
            .limits
            .body_deadline(self.declared.max(self.received));
        if self.start.elapsed() > allowed {
            self.expired = true;
            return Err(ErrorKind::TimedOut.into());
        }
        match self.inner.read(buf) {
            Ok(n) => {
                self.received += n;
                Ok(n)
            }
            Err(e) => {
                // A socket read timeout shows as WouldBlock on Unix, TimedOut on Windows.
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
                    self.expired = true;
                }
                Err(e)
            }
        }
    }
}

enum CapError {
    TooLarge,
    Busy,
    Io(std::io::Error),
}

fn read_capped<R: Read>(
    mut r: R,
    out: &mut Vec<u8>,
    max: usize,
    reserved: &mut Reservation,
) -> Result<(), CapError> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match r.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                if out.len() + n > max {
                    return Err(CapError::TooLarge);
                }
                if !reserved.grow(n) {
                    return Err(CapError::Busy);
                }
                out.extend_from_slice(&chunk[..n]);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(CapError::Io(e)),
        }
    }
}

/// Read a body of `content_length` bytes, or a chunked body when `None`, within the limits.
/// Reads no further than the body's end, so a next request on the connection is intact.
pub(crate) fn read_body<R: Read>(
    src: R,
    content_length: Option<usize>,
    bounds: &Arc<Bounds>,
) -> Result<BufferedBody, ReadFailure> {
    let limits = &bounds.limits;
    let mut reserved = Reservation {
        bounds: bounds.clone(),
        bytes: 0,
    };
    if let Some(n) = content_length {
        if n > limits.max_body {
            return Err(ReadFailure::Body(BodyError::TooLarge {
                limit: limits.max_body,
            }));
        }
    }
    let mut dr = DeadlineReader {
        inner: src,
        start: Instant::now(),
        declared: content_length.unwrap_or(0),
        received: 0,
        limits,
        expired: false,
    };
    // Grows with what arrives, never with what is declared.
    let mut body = Vec::new();
    let res = match content_length {
        Some(n) => read_capped(
            (&mut dr).take(n as u64),
            &mut body,
            limits.max_body,
            &mut reserved,
        ),
        None => read_capped(
            Decoder::new(&mut dr),
            &mut body,
            limits.max_body,
            &mut reserved,
        ),
    };
    match res {
        Ok(()) if content_length.is_some_and(|n| body.len() < n) => Err(ReadFailure::Closed),
        Ok(()) => Ok(BufferedBody {
            body: Cursor::new(body),
            _reserved: reserved,
        }),
        // The decoder may turn a timeout into "invalid input": the reader knows better.
        Err(_) if dr.expired => Err(ReadFailure::Body(BodyError::TimedOut {
            after: dr.start.elapsed(),
        })),
        Err(CapError::TooLarge) => Err(ReadFailure::Body(BodyError::TooLarge {
            limit: limits.max_body,
        })),
        Err(CapError::Busy) => Err(ReadFailure::Body(BodyError::Busy)),
        Err(CapError::Io(e))
            if content_length.is_none()
                && matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::InvalidData) =>
        {
            Err(ReadFailure::Body(BodyError::Malformed))
        }
        Err(CapError::Io(_)) => Err(ReadFailure::Closed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            read_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(1),
            max_body: 100,
            max_buffered: 150,
            body_time: Duration::from_secs(5),
            body_time_per_mib: Duration::from_secs(1),
        }
    }

    fn body(r: Result<BufferedBody, ReadFailure>) -> Result<Vec<u8>, Option<BodyError>> {
        r.map(|b| b.body.into_inner()).map_err(|e| match e {
            ReadFailure::Body(b) => Some(b),
            ReadFailure::Closed => None,
        })
    }

    #[test]
    fn bodies_in_memory_share_one_budget() {
        let b = Bounds::new(limits());
        let one = read_body(&[b'a'; 100][..], Some(100), &b).ok().unwrap();
        assert_eq!(one.len(), 100);
        assert_eq!(
            body(read_body(&[b'b'; 60][..], Some(60), &b)),
            Err(Some(BodyError::Busy))
        );
        // A refused body gives back what it had reserved; a dropped one too.
        assert_eq!(b.buffered.load(Ordering::SeqCst), 100);
        drop(one);
        assert_eq!(body(read_body(&[b'b'; 60][..], Some(60), &b)), Ok(vec![b'b'; 60]));
        assert_eq!(b.buffered.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn reads_exactly_the_body() {
        let mut src: &[u8] = b"hello world";
        assert_eq!(body(read_body(&mut src, Some(5), &Bounds::new(limits()))), Ok(b"hello".to_vec()));
        assert_eq!(src, b" world");
        let mut src: &[u8] = b"5\r\nhello\r\n0\r\n\r\nGET";
        assert_eq!(body(read_body(&mut src, None, &Bounds::new(limits()))), Ok(b"hello".to_vec()));
    }

    #[test]
    fn refuses_large_short_and_malformed_bodies() {
        let l = Bounds::new(limits());
        let big = [b'x'; 200];
        assert_eq!(
            body(read_body(&big[..], Some(101), &l)),
            Err(Some(BodyError::TooLarge { limit: 100 }))
        );
        let chunked = format!("c8\r\n{}\r\n0\r\n\r\n", "x".repeat(200));
        assert_eq!(
            body(read_body(chunked.as_bytes(), None, &l)),
            Err(Some(BodyError::TooLarge { limit: 100 }))
        );
        assert_eq!(body(read_body(&b"abc"[..], Some(10), &l)), Err(None));
        assert_eq!(
            body(read_body(&b"zz\r\nabc"[..], None, &l)),
            Err(Some(BodyError::Malformed))
        );
    }

    /// A source that never ends and is slower than the deadline allows.
    struct Trickle;
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            std::thread::sleep(Duration::from_millis(20));
            buf[0] = b'7';
            Ok(1)
        }
    }

    #[test]
    fn a_trickle_meets_the_deadline() {
        let l = Bounds::new(Limits {
            body_time: Duration::from_millis(100),
            ..limits()
        });
        let t0 = Instant::now();
        assert!(matches!(
            body(read_body(Trickle, Some(50), &l)),
            Err(Some(BodyError::TimedOut { .. }))
        ));
        // A chunk-size line that never ends is stopped the same way.
        assert!(matches!(
            body(read_body(Trickle, None, &l)),
            Err(Some(BodyError::TimedOut { .. }))
        ));
        assert!(t0.elapsed() < Duration::from_secs(30));
    }
}

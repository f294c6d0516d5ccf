//! A tiny HTTP/1.1 server on 127.0.0.1 for `update --url` tests, plain or HTTPS under a test
//! CA made for it: canned replies per request, each connection on a thread of its own, requests
//! and bytes sent counted, stopped on drop. Loopback only, so no packet leaves the host.

use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::Duration,
};

/// What the server answers.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Send only this many body bytes (the Content-Length still announces all of them).
    pub cut_at: Option<usize>,
}

impl Reply {
    #[must_use]
    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        Self {
            status: 200,
            headers: vec![],
            body: body.into(),
            cut_at: None,
        }
    }

    #[must_use]
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: vec![],
            body: vec![],
            cut_at: None,
        }
    }
}

/// One request as the handler sees it: path and lower-case header names.
pub struct Request {
    pub path: String,
    pub headers: HashMap<String, String>,
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// A certificate authority made for one test run, and a certificate it signed for this host
/// (`127.0.0.1` and `localhost`), which an HTTPS [`Server`] presents. No store trusts the CA:
/// a client does only when it is told to ([`TestCa::pem`], [`TestCa::write_pem`]).
pub struct TestCa {
    ca_pem: String,
    server_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    server_key: rustls::pki_types::PrivateKeyDer<'static>,
}

impl TestCa {
    /// A new CA (ECDSA P-256) and a server certificate it signed.
    #[must_use]
    pub fn new() -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "regionfilter test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let key = KeyPair::generate().expect("server key");
        let mut server =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("server parameters");
        server
            .distinguished_name
            .push(DnType::CommonName, "regionfilter test server");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server
            .signed_by(&key, &Issuer::from_params(&ca, &ca_key))
            .expect("server certificate");
        Self {
            ca_pem: ca_cert.pem(),
            server_chain: vec![server_cert.der().clone()],
            server_key: key.into(),
        }
    }

    /// The CA's certificate, PEM.
    #[must_use]
    pub fn pem(&self) -> &str {
        &self.ca_pem
    }

    /// Writes the CA's certificate to `dir/ca.pem` and returns that path.
    #[must_use]
    pub fn write_pem(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.ca_pem).expect("write ca.pem");
        path
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(self.server_chain.clone(), self.server_key.clone_key())
            .expect("server certificate and key");
        Arc::new(config)
    }
}

impl Clone for TestCa {
    fn clone(&self) -> Self {
        Self {
            ca_pem: self.ca_pem.clone(),
            server_chain: self.server_chain.clone(),
            server_key: self.server_key.clone_key(),
        }
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

/// What the server has done so far, shared with its connection threads.
#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    body_bytes: AtomicU64,
    total_bytes: AtomicU64,
}

pub struct Server {
    addr: SocketAddr,
    scheme: &'static str,
    ca: Option<TestCa>,
    stop: Arc<AtomicBool>,
    /// The listening socket, shut down on drop to wake the accept loop wherever it listens
    /// (a connect from here cannot reach a listener in another namespace).
    listener: TcpListener,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    /// Every request path, in the order the requests were read.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Plain HTTP.
    #[must_use]
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        Self::serve(listener, None, Arc::new(handler))
    }

    /// A server on the loopback of `ns` (an agent inside it reaches it at [`Server::url`]).
    pub fn start_in(
        ns: &crate::netns::NetNs,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> anyhow::Result<Self> {
        let listener = ns.enter(|| TcpListener::bind("127.0.0.1:0"))??;
        Ok(Self::serve(listener, None, Arc::new(handler)))
    }

    /// HTTPS, with a certificate for `127.0.0.1` and `localhost` from a new [`TestCa`]
    /// ([`Server::ca`]).
    #[must_use]
    pub fn start_tls(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        Self::serve(listener, Some(TestCa::new()), Arc::new(handler))
    }

    /// [`Server::start_tls`] on the loopback of `ns`.
    pub fn start_tls_in(
        ns: &crate::netns::NetNs,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> anyhow::Result<Self> {
        let mut one = Self::start_tls_in_each(&[ns], handler)?;
        Ok(one.remove(0))
    }

    /// HTTPS under one new CA on the loopback of each of `namespaces`, every one answering
    /// through the same `handler`: one release server for a fleet of namespaces, which each
    /// reach at the [`Server::url`] of their own.
    pub fn start_tls_in_each(
        namespaces: &[&crate::netns::NetNs],
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> anyhow::Result<Vec<Self>> {
        let ca = TestCa::new();
        let handler: Arc<Handler> = Arc::new(handler);
        namespaces
            .iter()
            .map(|ns| {
                let listener = ns.enter(|| TcpListener::bind("127.0.0.1:0"))??;
                Ok(Self::serve(listener, Some(ca.clone()), handler.clone()))
            })
            .collect()
    }

    fn serve(listener: TcpListener, ca: Option<TestCa>, handler: Arc<Handler>) -> Self {
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let counters = Arc::new(Counters::default());
        let tls = ca.as_ref().map(TestCa::server_config);
        let waker = listener.try_clone().expect("dup the listening socket");
        let thread = {
            let (stop, log, counters) = (stop.clone(), log.clone(), counters.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (handler, log, counters, tls) =
                        (handler.clone(), log.clone(), counters.clone(), tls.clone());
                    // Each connection on its own thread: a client that stalls holds up no other.
                    std::thread::spawn(move || {
                        let _ = connection(stream, tls, &*handler, &log, &counters);
                    });
                }
            })
        };
        Self {
            addr,
            scheme: if ca.is_some() { "https" } else { "http" },
            ca,
            stop,
            listener: waker,
            thread: Some(thread),
            counters,
            log,
        }
    }

    /// `http://127.0.0.1:PORT{path}`, or `https://` for a TLS server.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// The CA that signed a TLS server's certificate.
    #[must_use]
    pub fn ca(&self) -> Option<&TestCa> {
        self.ca.as_ref()
    }

    /// Requests read (a TLS handshake the client refused reaches no request).
    #[must_use]
    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::Acquire)
    }

    /// Body bytes of every reply written so far.
    #[must_use]
    pub fn body_bytes_sent(&self) -> u64 {
        self.counters.body_bytes.load(Ordering::Acquire)
    }

    /// Every byte of HTTP written so far, status lines and headers included (over TLS, before
    /// encryption).
    #[must_use]
    pub fn bytes_sent(&self) -> u64 {
        self.counters.total_bytes.load(Ordering::Acquire)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // shutdown(2) on a listening socket makes a blocked accept(2) return at once.
        // SAFETY: a socket this server owns, open until `self` is dropped.
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves the one request of a connection, over TLS when `tls` is given.
fn connection(
    stream: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: &Handler,
    log: &Mutex<Vec<String>>,
    counters: &Counters,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let Some(config) = tls else {
        return serve(stream, handler, log, counters);
    };
    let session = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut stream = rustls::StreamOwned::new(session, stream);
    serve(&mut stream, handler, log, counters)?;
    stream.conn.send_close_notify();
    stream.flush()
}

fn serve(
    stream: impl Read + Write,
    handler: &Handler,
    log: &Mutex<Vec<String>>,
    counters: &Counters,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(()); // the client left without a request
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    log.lock().unwrap().push(path.clone());
    counters.requests.fetch_add(1, Ordering::AcqRel);
    let reply = handler(&Request { path, headers });
    let mut head = format!(
        "HTTP/1.1 {} X\r\nConnection: close\r\nContent-Length: {}\r\n",
        reply.status,
        reply.body.len()
    );
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let out = reader.get_mut();
    out.write_all(head.as_bytes())?;
    counters
        .total_bytes
        .fetch_add(head.len() as u64, Ordering::AcqRel);
    let body = &reply.body[..reply.cut_at.unwrap_or(reply.body.len())];
    out.write_all(body)?;
    counters
        .body_bytes
        .fetch_add(body.len() as u64, Ordering::AcqRel);
    counters
        .total_bytes
        .fetch_add(body.len() as u64, Ordering::AcqRel);
    out.flush()
}

/// A server inside a test namespace (the agent's loopback) that answers every request with
/// headers announcing a large body, a few bytes of it, and then nothing until it is dropped:
/// a download that stalls. Each connection is held at most [`STALL_LIMIT`].
pub struct Stall {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Requests received so far.
    pub requests: Arc<std::sync::atomic::AtomicUsize>,
}

pub const STALL_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

impl Stall {
    pub fn start_in(ns: &crate::netns::NetNs) -> anyhow::Result<Self> {
        let listener = ns.enter(|| TcpListener::bind("127.0.0.1:0"))??;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (flag, count) = (stop.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::Acquire) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (flag, count) = (flag.clone(), count.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                        line.clear();
                    }
                    count.fetch_add(1, Ordering::AcqRel);
                    let mut out = stream;
                    let _ = write!(
                        out,
                        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 100000000\r\n\r\nMMDB"
                    );
                    let _ = out.flush();
                    let until = std::time::Instant::now() + STALL_LIMIT;
                    // Held open, sending nothing, until the test ends.
                    while !flag.load(Ordering::Acquire) && std::time::Instant::now() < until {
                        std::thread::park_timeout(std::time::Duration::from_millis(100));
                    }
                });
            }
        });
        Ok(Self {
            addr,
            stop,
            requests,
        })
    }

    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Stall {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    /// `GET path` on a connection of its own; the whole reply, as the server closes it.
    fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        reply
    }

    #[test]
    fn thirty_clients_are_served_side_by_side_and_every_byte_is_counted() {
        let server = Server::start(|req| Reply::ok(req.path.clone()));
        let addr = server.addr;
        // A client that connects and says nothing holds up no one else (one connection at a
        // time waited out its 10 s read timeout first).
        let _silent = TcpStream::connect(addr).unwrap();
        let started = std::time::Instant::now();
        let clients: Vec<_> = (0..30)
            .map(|i| std::thread::spawn(move || get(addr, &format!("/node-{i}"))))
            .collect();
        let replies: Vec<String> = clients.into_iter().map(|c| c.join().unwrap()).collect();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        for (i, reply) in replies.iter().enumerate() {
            assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
            assert!(reply.ends_with(&format!("\r\n\r\n/node-{i}")), "{reply}");
        }
        assert_eq!(server.requests(), 30);
        let body: usize = (0..30).map(|i| format!("/node-{i}").len()).sum();
        assert_eq!(server.body_bytes_sent(), body as u64);
        let total: usize = replies.iter().map(String::len).sum();
        assert_eq!(server.bytes_sent(), total as u64);
        assert_eq!(server.log.lock().unwrap().len(), 30);
    }
}

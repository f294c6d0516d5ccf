//! A tiny HTTP/1.1 server on 127.0.0.1 for `update --url` tests: canned replies per request,
//! one connection at a time, stopped on drop. Loopback only, so no packet leaves the host.

use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd as _,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
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

pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// The listening socket, shut down on drop to wake the accept loop wherever it listens
    /// (a connect from here cannot reach a listener in another namespace).
    listener: TcpListener,
    thread: Option<JoinHandle<()>>,
    /// Every request path, in order.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    #[must_use]
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        Self::serve(
            TcpListener::bind("127.0.0.1:0").expect("bind loopback"),
            handler,
        )
    }

    /// A server on the loopback of `ns` (an agent inside it reaches it at [`Server::url`]).
    pub fn start_in(
        ns: &crate::netns::NetNs,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> anyhow::Result<Self> {
        let listener = ns.enter(|| TcpListener::bind("127.0.0.1:0"))??;
        Ok(Self::serve(listener, handler))
    }

    fn serve(
        listener: TcpListener,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let waker = listener.try_clone().expect("dup the listening socket");
        let thread = {
            let (stop, log) = (stop.clone(), log.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        let _ = serve(stream, &*handler, &log);
                    }
                }
            })
        };
        Self {
            addr,
            stop,
            listener: waker,
            thread: Some(thread),
            log,
        }
    }

    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
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

fn serve(stream: TcpStream, handler: &Handler, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
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
    let reply = handler(&Request { path, headers });
    let mut out = stream;
    write!(out, "HTTP/1.1 {} X\r\nConnection: close\r\n", reply.status)?;
    write!(out, "Content-Length: {}\r\n", reply.body.len())?;
    for (name, value) in &reply.headers {
        write!(out, "{name}: {value}\r\n")?;
    }
    write!(out, "\r\n")?;
    let sent = reply.cut_at.unwrap_or(reply.body.len());
    out.write_all(&reply.body[..sent])?;
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

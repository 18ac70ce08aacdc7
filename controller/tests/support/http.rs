//! Smart HTTP: a small axum server that runs `git http-backend` as a CGI program, with
//! optional basic or bearer auth, on its own thread and runtime; it can also answer a path
//! prefix with redirects (to another server, or elsewhere on itself), as a moved repository
//! or a hostile server would.

use std::io::Write as _;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine as _;

/// What the server demands in `Authorization`.
#[derive(Debug, Clone)]
pub enum HttpAuth {
    None,
    Basic { username: String, password: String },
    Bearer(String),
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// The `Authorization` header as received.
    pub authorization: Option<String>,
    pub status: u16,
}

#[derive(Debug)]
struct Shared {
    /// `git-http-backend` itself (not the `git` wrapper).
    backend: PathBuf,
    base: PathBuf,
    expected: Option<String>,
    v0_only: bool,
    /// Requests whose path starts with `.0` get `302 Found` to `.1` + the rest of the path.
    redirect: Option<(String, String)>,
    seen: Mutex<Vec<SeenRequest>>,
}

/// `http://127.0.0.1:PORT/<repo>` served by `git http-backend`.
#[derive(Debug)]
pub struct HttpGitServer {
    port: u16,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpGitServer {
    /// Serves the repositories below `base`; requests without the right `Authorization`
    /// get 401 with a basic challenge.
    pub fn start(base: &Path, auth: HttpAuth) -> HttpGitServer {
        HttpGitServer::start_inner(base, auth, false, None)
    }

    /// Like [`HttpGitServer::start`], but every request whose path starts with `from` is
    /// answered `302 Found` with `Location: <to><rest of the path>[?query]`, before any
    /// authentication: `to` is another origin (`http://127.0.0.1:PORT/`) or a path on this
    /// server (`/`). Every request is recorded, the redirected ones too.
    pub fn start_redirecting(base: &Path, auth: HttpAuth, from: &str, to: &str) -> HttpGitServer {
        HttpGitServer::start_inner(base, auth, false, Some((from.to_owned(), to.to_owned())))
    }

    /// Like [`HttpGitServer::start`], but speaking only protocol v0 (the `Git-Protocol`
    /// header is ignored), like older servers: a want for a commit that is no ref tip is
    /// refused unless the repository sets `uploadpack.allowReachableSHA1InWant`.
    pub fn start_v0(base: &Path, auth: HttpAuth) -> HttpGitServer {
        HttpGitServer::start_inner(base, auth, true, None)
    }

    fn start_inner(
        base: &Path,
        auth: HttpAuth,
        v0_only: bool,
        redirect: Option<(String, String)>,
    ) -> HttpGitServer {
        let expected = match auth {
            HttpAuth::None => None,
            HttpAuth::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            HttpAuth::Bearer(t) => Some(format!("Bearer {t}")),
        };
        let shared = Arc::new(Shared {
            backend: super::daemon::exec_path().join("git-http-backend"),
            base: base.to_owned(),
            expected,
            v0_only,
            redirect,
            seen: Mutex::new(Vec::new()),
        });
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let app = axum::Router::new().fallback(handle).with_state(state);
                tokio::select! {
                    r = axum::serve(listener, app).into_future() => r.expect("http server"),
                    _ = stopped => {}
                }
            });
            // Dropping the runtime cancels open connections.
        });
        HttpGitServer {
            port,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT/`: the origin, for a redirect to this server.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// `http://127.0.0.1:PORT/<path relative to the base>`.
    pub fn url(&self, repo: &Path) -> String {
        let rel = repo
            .strip_prefix(&self.shared.base)
            .expect("repository below the server's base path");
        format!("http://127.0.0.1:{}/{}", self.port, rel.display())
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.shared
            .seen
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }
}

impl Drop for HttpGitServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

use std::future::IntoFuture as _;

async fn handle(State(st): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let authorization = header("authorization");
    let seen = SeenRequest {
        method: parts.method.as_str().to_owned(),
        uri: parts.uri.to_string(),
        authorization: authorization.clone(),
        status: 0,
    };
    let record = |status: u16| {
        if let Ok(mut v) = st.seen.lock() {
            v.push(SeenRequest {
                status,
                ..seen.clone()
            });
        }
    };
    if let Some((from, to)) = &st.redirect
        && let Some(rest) = parts.uri.path().strip_prefix(from.as_str())
    {
        record(302);
        let query = parts
            .uri
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        let mut r = Response::new(Body::from("moved\n"));
        *r.status_mut() = StatusCode::FOUND;
        if let Ok(v) = HeaderValue::try_from(format!("{to}{rest}{query}")) {
            r.headers_mut().insert("location", v);
        }
        return r;
    }
    if st.expected.is_some() && authorization != st.expected {
        record(401);
        let mut r = Response::new(Body::from("authentication required\n"));
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        r.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_static("Basic realm=\"git\""),
        );
        return r;
    }
    let cgi = Cgi {
        backend: st.backend.clone(),
        base: st.base.clone(),
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        content_type: header("content-type"),
        content_encoding: header("content-encoding"),
        git_protocol: if st.v0_only {
            None
        } else {
            header("git-protocol")
        },
    };
    let body = match axum::body::to_bytes(body, 64 << 20).await {
        Ok(b) => b.to_vec(),
        Err(_) => return status(StatusCode::BAD_REQUEST, &record),
    };
    let out = match tokio::task::spawn_blocking(move || cgi.run(body)).await {
        Ok(Some(out)) => out,
        _ => return status(StatusCode::INTERNAL_SERVER_ERROR, &record),
    };
    let split = find(&out, b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| find(&out, b"\n\n").map(|i| (i, 2)));
    let Some((end, sep)) = split else {
        return status(StatusCode::BAD_GATEWAY, &record);
    };
    let mut r = Response::new(Body::from(out[end + sep..].to_vec()));
    for line in String::from_utf8_lossy(&out[..end]).lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("status") {
            let code = v
                .split_whitespace()
                .next()
                .and_then(|c| c.parse().ok())
                .unwrap_or(500);
            *r.status_mut() =
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        } else if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::try_from(k.trim()),
            HeaderValue::try_from(v),
        ) {
            r.headers_mut().append(k, v);
        }
    }
    record(r.status().as_u16());
    r
}

fn status(code: StatusCode, record: &impl Fn(u16)) -> Response {
    record(code.as_u16());
    let mut r = Response::new(Body::empty());
    *r.status_mut() = code;
    r
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

struct Cgi {
    backend: PathBuf,
    base: PathBuf,
    method: String,
    path: String,
    query: String,
    content_type: Option<String>,
    content_encoding: Option<String>,
    git_protocol: Option<String>,
}

impl Cgi {
    /// Runs `git http-backend`; returns its raw CGI output.
    fn run(self, body: Vec<u8>) -> Option<Vec<u8>> {
        let mut cmd = Command::new(&self.backend);
        cmd.env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_PROJECT_ROOT", &self.base)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("GATEWAY_INTERFACE", "CGI/1.1")
            .env("SERVER_PROTOCOL", "HTTP/1.1")
            .env("REMOTE_ADDR", "127.0.0.1")
            .env("REQUEST_METHOD", &self.method)
            .env("PATH_INFO", &self.path)
            .env("QUERY_STRING", &self.query)
            .env("CONTENT_LENGTH", body.len().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in [
            ("CONTENT_TYPE", &self.content_type),
            ("HTTP_CONTENT_ENCODING", &self.content_encoding),
            ("GIT_PROTOCOL", &self.git_protocol),
        ] {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        let mut child = cmd.spawn().ok()?;
        let mut stdin = child.stdin.take()?;
        // Written from another thread: a large body and a large answer must not deadlock.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        });
        let out = child.wait_with_output().ok()?;
        let _ = writer.join();
        Some(out.stdout)
    }
}

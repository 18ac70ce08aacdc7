//! Redirects of http(s) sources. git is told never to follow one (`http.followRedirects=false`):
//! a followed redirect re-targets every later request of the fetch at the new URL, and git
//! sends its extra headers there, credentials included. Instead, when a fetch stops at a
//! redirect, the `Location` is read from git's curl trace (headers only, `Authorization`
//! redacted by git) and decided here: on the same origin (scheme, host and port) the fetch
//! starts again from the new URL, as a moved repository needs; anywhere else it is refused,
//! naming both origins, so credentials and requests go only to the origin the source names.

use std::fmt;

use super::error::{GitError, printable};
use super::remote::redact_url;

/// At most this many redirects on one origin per fetch.
pub(super) const MAX_REDIRECTS: usize = 5;

/// Scheme, host and port of an http(s) URL; default ports filled in, names lowercased.
#[derive(Debug, Clone)]
pub(super) struct Origin {
    scheme: String,
    host: String,
    port: u16,
    /// Whether the URL named the port itself (shown then).
    explicit_port: bool,
}

impl Origin {
    /// The origin of an absolute http(s) URL; `None` for anything else.
    pub(super) fn of(url: &str) -> Option<Origin> {
        let (scheme, rest) = url.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']')?;
            (format!("[{h}]"), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (hostport.to_owned(), None),
            }
        };
        if host.is_empty() {
            return None;
        }
        let (port, explicit_port) = match port {
            None | Some("") => (default, false),
            Some(p) => (p.parse().ok()?, true),
        };
        Some(Origin {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
            explicit_port,
        })
    }
}

/// Equal when scheme, host and port are: `https://h` is `https://h:443`.
impl PartialEq for Origin {
    fn eq(&self, other: &Self) -> bool {
        (&self.scheme, &self.host, self.port) == (&other.scheme, &other.host, other.port)
    }
}

impl Eq for Origin {}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, printable(&self.host))?;
        if self.explicit_port {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

/// The `Location` of the last redirect (3xx) answer in a curl trace written by git
/// (`GIT_TRACE_CURL`), if the last answer was one.
pub(super) fn location_in_trace(trace: &str) -> Option<String> {
    let mut redirect = false;
    let mut location = None;
    for line in trace.lines() {
        let Some((_, header)) = line.split_once("<= Recv header: ") else {
            continue;
        };
        let header = header.trim();
        if let Some(status) = header.strip_prefix("HTTP/") {
            // A new answer: `HTTP/1.1 302 Found`, `HTTP/2 301`.
            redirect = status
                .split_whitespace()
                .nth(1)
                .is_some_and(|code| code.len() == 3 && code.starts_with('3'));
            location = None;
        } else if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("location")
            && redirect
        {
            location = Some(value.trim().to_owned());
        }
    }
    location.filter(|_| redirect)
}

/// Where to fetch from after `from` (the URL git was given) answered a redirect to
/// `location`: the repository URL on the same origin, or why not.
pub(super) fn follow(from: &str, location: &str) -> Result<String, GitError> {
    let display = redact_url(from);
    let origin = Origin::of(from).ok_or_else(|| GitError::Invalid(display.clone()))?;
    let target = if location.contains("://") {
        location.to_owned()
    } else if let Some(rest) = location.strip_prefix("//") {
        format!("{}://{rest}", origin.scheme)
    } else if location.starts_with('/') {
        let (scheme, rest) = from.split_once("://").unwrap_or(("", from));
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        format!("{scheme}://{host}{location}")
    } else {
        return Err(GitError::Unreachable {
            url: display,
            reason: format!(
                "redirected to the relative location `{}`",
                printable(&redact_url(location))
            ),
        });
    };
    match Origin::of(&target) {
        Some(to) if to == origin => {}
        Some(to) => {
            return Err(GitError::RedirectRefused {
                from: origin.to_string(),
                to: to.to_string(),
            });
        }
        None => {
            return Err(GitError::RedirectRefused {
                from: origin.to_string(),
                to: printable(&redact_url(&target)),
            });
        }
    }
    // The new base: what git would have made of it.
    let target = redact_url(&target);
    let base = ["/info/refs?service=git-upload-pack", "/git-upload-pack"]
        .iter()
        .find_map(|suffix| target.strip_suffix(suffix));
    match base {
        Some(base) => Ok(base.to_owned()),
        None => Err(GitError::Unreachable {
            url: display,
            reason: format!(
                "redirected to {}, which is not a git repository URL",
                printable(&target)
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let o = |u: &str| Origin::of(u).map(|o| o.to_string());
        assert_eq!(
            o("https://Git.Example.com/a"),
            Some("https://git.example.com".into())
        );
        assert_eq!(Origin::of("https://h/a"), Origin::of("https://h:443/b"));
        assert_ne!(Origin::of("https://h/a"), Origin::of("http://h/a"));
        assert_ne!(Origin::of("http://h:1/a"), Origin::of("http://h:2/a"));
        assert_eq!(o("http://u:p@h:8080/r"), Some("http://h:8080".into()));
        assert_eq!(o("https://[::1]:8443/r"), Some("https://[::1]:8443".into()));
        assert_eq!(o("ssh://h/r"), None);
        assert_eq!(o("http://h:x/r"), None);
    }

    #[test]
    fn location_of_the_last_answer() {
        let trace = "12:00:00.1 http.c:684 => Send header: GET /r/info/refs?service=git-upload-pack HTTP/1.1\n\
                     12:00:00.1 http.c:684 => Send header: Authorization: Bearer <redacted>\n\
                     12:00:00.2 http.c:684 <= Recv header: HTTP/1.1 302 Found\n\
                     12:00:00.2 http.c:684 <= Recv header: location: https://other:8443/r/info/refs?service=git-upload-pack\n\
                     12:00:00.2 http.c:684 <= Recv header:\n";
        assert_eq!(
            location_in_trace(trace).as_deref(),
            Some("https://other:8443/r/info/refs?service=git-upload-pack")
        );
        let later = format!("{trace}12:00:01 http.c:684 <= Recv header: HTTP/2 200\n");
        assert_eq!(location_in_trace(&later), None);
        let ok = "<= Recv header: HTTP/1.1 201 Created\n<= Recv header: Location: /x\n";
        assert_eq!(location_in_trace(ok), None);
    }

    #[test]
    fn same_origin_is_followed_and_others_refused() {
        let from = "https://h/old/r";
        assert_eq!(
            follow(from, "/new/r.git/info/refs?service=git-upload-pack").unwrap(),
            "https://h/new/r.git"
        );
        assert_eq!(
            follow(from, "https://H:443/r/git-upload-pack").unwrap(),
            "https://H:443/r"
        );
        for (to, shown) in [
            (
                "https://evil/r/info/refs?service=git-upload-pack",
                "https://evil",
            ),
            ("http://h/r/info/refs?service=git-upload-pack", "http://h"),
            (
                "https://h:8443/r/info/refs?service=git-upload-pack",
                "https://h:8443",
            ),
            ("//evil/r/info/refs?service=git-upload-pack", "https://evil"),
            ("https://u:CANARY@evil/r", "https://evil"),
        ] {
            match follow(from, to) {
                Err(GitError::RedirectRefused { from, to }) => {
                    assert_eq!((from.as_str(), to.as_str()), ("https://h", shown));
                }
                other => panic!("{to}: {other:?}"),
            }
        }
        let e = follow(from, "ftp://h/r").unwrap_err();
        assert!(matches!(e, GitError::RedirectRefused { .. }), "{e}");
        assert_eq!(follow(from, "/login").unwrap_err().kind(), "unreachable");
        assert_eq!(follow(from, "login").unwrap_err().kind(), "unreachable");
        let e = follow(
            "https://u:CANARY@h/r",
            "https://u:CANARY@h/x/info/refs?service=git-upload-pack",
        )
        .unwrap();
        assert_eq!(e, "https://h/x");
    }
}

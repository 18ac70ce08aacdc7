//! Where a source lives and how to authenticate to it: URL parsing (transports, scp-like
//! addresses, local paths; remote helpers refused), credentials taken out of URLs, redaction
//! of URLs for messages, and which credentials fit which transport.

use secrecy::SecretString;

use super::error::{GitError, io, printable};

/// Credentials for the source.
#[derive(Debug, Clone)]
pub enum GitAuth {
    None,
    /// HTTP basic auth (https/http).
    Basic {
        username: String,
        password: SecretString,
    },
    /// HTTP bearer token (`Authorization: Bearer …`).
    Token(SecretString),
    /// An ssh deploy key (OpenSSH private key text, not passphrase-protected) and the
    /// known_hosts lines the server's host key must match.
    Ssh {
        identity: SecretString,
        known_hosts: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Http,
    Ssh,
    Git,
    File,
}

/// A URL split into what git is given and the credentials taken out of it. `Debug` shows no
/// password.
#[derive(Debug)]
pub struct Remote {
    pub transport: Transport,
    /// Given to git and stored in the clone's config: no password, no http user info.
    pub url: String,
    /// For messages.
    pub display: String,
    /// `user:password@` found in an http(s) URL.
    pub basic: Option<(String, SecretString)>,
}

/// The URL with credentials removed, for messages and logs: http(s) and git URLs lose their
/// whole user info (a token is often written as the user name), ssh URLs keep the user name
/// and lose any password.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // scp-like `user@host:path` and local paths carry no secret.
        return printable(url);
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = match authority.rsplit_once('@') {
        None => authority.to_owned(),
        Some((userinfo, host)) => {
            let ssh = matches!(
                scheme.to_ascii_lowercase().as_str(),
                "ssh" | "git+ssh" | "ssh+git"
            );
            match userinfo.split_once(':') {
                _ if !ssh => host.to_owned(),
                Some((user, _)) => format!("{user}@{host}"),
                None => format!("{userinfo}@{host}"),
            }
        }
    };
    printable(&format!("{scheme}://{host}{tail}"))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Remote {
    /// The git protocols (`protocol.<name>.allow`) this source needs: its own and no other.
    pub(super) fn protocols(&self) -> &'static [&'static str] {
        match self.transport {
            Transport::Http
                if self
                    .url
                    .get(..6)
                    .is_some_and(|s| s.eq_ignore_ascii_case("https:")) =>
            {
                &["https"]
            }
            Transport::Http => &["http"],
            Transport::Ssh => &["ssh"],
            Transport::Git => &["git"],
            Transport::File => &["file"],
        }
    }
}

/// The host and port a URL connects to (`git@host:path` included, port 22); `None` for a
/// local path. The port is the default of the scheme when the URL names none.
pub fn host_and_port(url: &str) -> Option<(String, u16)> {
    let (host, port, default) = match url.split_once("://") {
        Some((scheme, rest)) => {
            let default = match scheme.to_ascii_lowercase().as_str() {
                "https" => 443,
                "http" => 80,
                "ssh" | "git+ssh" | "ssh+git" => 22,
                "git" => 9418,
                _ => return None,
            };
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let authority = &rest[..end];
            let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            let (host, port) = split_host_port(hostport)?;
            (host, port, default)
        }
        None => {
            // scp-like `[user@]host:path`: a colon before the first slash.
            let colon = url.find(':')?;
            if url.find('/').is_some_and(|s| s < colon) {
                return None;
            }
            let hostpart = &url[..colon];
            let host = hostpart.rsplit_once('@').map_or(hostpart, |(_, h)| h);
            (host.to_owned(), None, 22)
        }
    };
    (!host.is_empty()).then(|| (host.to_ascii_lowercase(), port.unwrap_or(default)))
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; `None` when the port is not a number.
pub fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        (format!("[{h}]"), after.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (s.to_owned(), None),
        }
    };
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(p.parse().ok()?),
    };
    Some((host, port))
}

/// Reads a source URL: the transport, what git is given (no password, no http user info), what
/// messages show, and the http credentials it carried. Remote helpers (`ext::…`) are refused.
pub fn parse_remote(url: &str) -> Result<Remote, GitError> {
    let invalid = |why: &str| {
        Err(GitError::Invalid(format!(
            "url `{}`: {why}",
            redact_url(url)
        )))
    };
    if url.is_empty() {
        return invalid("empty");
    }
    if url.starts_with('-') || url.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return invalid("must not start with `-` or contain control characters");
    }
    if let Some((scheme, rest)) = url.split_once("://") {
        let transport = match scheme.to_ascii_lowercase().as_str() {
            "https" | "http" => Transport::Http,
            "ssh" | "git+ssh" | "ssh+git" => Transport::Ssh,
            "git" => Transport::Git,
            "file" => Transport::File,
            _ => return invalid("unsupported scheme (use https, http, ssh, git or file)"),
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let mut basic = None;
        let url = match (transport, authority.rsplit_once('@')) {
            (Transport::Http, Some((userinfo, host))) => {
                let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                basic = Some((
                    percent_decode(user),
                    SecretString::from(percent_decode(pass)),
                ));
                format!("{scheme}://{host}{tail}")
            }
            (_, Some((_, _))) => redact_url(url),
            (_, None) => url.to_owned(),
        };
        return Ok(Remote {
            transport,
            display: redact_url(&url),
            url,
            basic,
        });
    }
    // `<helper>::<address>` runs a remote helper (`ext::` runs any command): never.
    if let Some((helper, _)) = url.split_once("::")
        && !helper.is_empty()
        && helper
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return invalid("remote helper syntax `<transport>::<address>` is not supported");
    }
    // git's rule: a colon before the first slash makes it scp-like `[user@]host:path`.
    let colon = url.find(':');
    let slash = url.find('/');
    if let Some(c) = colon
        && slash.is_none_or(|s| c < s)
    {
        if c == 0 {
            return invalid("missing host before `:`");
        }
        return Ok(Remote {
            transport: Transport::Ssh,
            url: url.to_owned(),
            display: printable(url),
            basic: None,
        });
    }
    // A local path; made absolute because git runs inside the cache folder.
    let path = std::path::absolute(url)
        .map_err(io(format!("local repository path {}", printable(url))))?;
    let path = path.to_string_lossy().into_owned();
    Ok(Remote {
        transport: Transport::File,
        display: printable(&path),
        url: path,
        basic: None,
    })
}

pub(super) fn check_auth(remote: &Remote, auth: &GitAuth) -> Result<(), GitError> {
    match (auth, remote.transport) {
        (GitAuth::Basic { .. } | GitAuth::Token(_), Transport::Http) => Ok(()),
        (GitAuth::Ssh { .. }, Transport::Ssh) => Ok(()),
        (GitAuth::None, _) => Ok(()),
        (GitAuth::Basic { .. } | GitAuth::Token(_), _) => Err(GitError::Invalid(format!(
            "{}: a token or username/password applies to https URLs only",
            remote.display
        ))),
        (GitAuth::Ssh { .. }, _) => Err(GitError::Invalid(format!(
            "{}: an ssh identity applies to ssh URLs (ssh://… or git@host:path) only",
            remote.display
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{GitRef, GitSource};
    use super::*;
    use secrecy::ExposeSecret;
    use std::path::Path;
    use std::time::Duration;

    #[test]
    fn url_redaction() {
        assert_eq!(
            redact_url("https://user:tok@example.com/a.git"),
            "https://example.com/a.git"
        );
        assert_eq!(
            redact_url("https://tok@example.com/a.git"),
            "https://example.com/a.git"
        );
        assert_eq!(
            redact_url("https://example.com/a@b.git"),
            "https://example.com/a@b.git"
        );
        assert_eq!(
            redact_url("ssh://git:pw@example.com:22/a.git"),
            "ssh://git@example.com:22/a.git"
        );
        assert_eq!(
            redact_url("ssh://git@example.com/a.git"),
            "ssh://git@example.com/a.git"
        );
        assert_eq!(
            redact_url("git@example.com:org/a.git"),
            "git@example.com:org/a.git"
        );
        assert_eq!(redact_url("/srv/git/a"), "/srv/git/a");
    }

    #[test]
    fn remotes() -> Result<(), GitError> {
        let r = parse_remote("https://u:p%40ss@example.com/a.git")?;
        assert_eq!(
            (r.transport, r.url.as_str()),
            (Transport::Http, "https://example.com/a.git")
        );
        let (u, p) = r.basic.expect("basic from url");
        assert_eq!((u.as_str(), p.expose_secret()), ("u", "p@ss"));
        assert_eq!(
            parse_remote("git@github.com:o/r.git")?.transport,
            Transport::Ssh
        );
        assert_eq!(
            parse_remote("ssh://git@h:2222/r")?.transport,
            Transport::Ssh
        );
        assert_eq!(parse_remote("git://h/r")?.transport, Transport::Git);
        assert_eq!(parse_remote("file:///srv/r")?.transport, Transport::File);
        let local = parse_remote("rel/repo")?;
        assert_eq!(local.transport, Transport::File);
        assert!(Path::new(&local.url).is_absolute());
        for bad in [
            "",
            "-oProxyCommand=x",
            "ext::sh -c x",
            "ftp://h/r",
            ":r",
            "https://h/\nx",
        ] {
            assert!(
                matches!(parse_remote(bad), Err(GitError::Invalid(_))),
                "{bad:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn hosts_and_ports() {
        for (url, want) in [
            (
                "https://u:p@Git.Example.com/r",
                Some(("git.example.com", 443)),
            ),
            ("http://127.0.0.1:8080/r", Some(("127.0.0.1", 8080))),
            ("ssh://git@h:2222/r", Some(("h", 2222))),
            ("git@github.com:o/r.git", Some(("github.com", 22))),
            ("git://h/r", Some(("h", 9418))),
            ("https://[::1]:8443/r", Some(("[::1]", 8443))),
            ("/srv/git/r", None),
            ("file:///srv/r", None),
            ("https://h:x/r", None),
        ] {
            let got = host_and_port(url);
            assert_eq!(got.as_ref().map(|(h, p)| (h.as_str(), *p)), want, "{url}");
        }
    }

    #[test]
    fn auth_must_fit_transport() {
        let src = |url: &str, auth| GitSource {
            url: url.into(),
            reference: GitRef::Branch("main".into()),
            auth,
            timeout: Duration::from_secs(5),
            allow_local: false,
        };
        let token = GitAuth::Token(SecretString::from("t"));
        let ssh = GitAuth::Ssh {
            identity: SecretString::from("k"),
            known_hosts: String::new(),
        };
        let check = |s: GitSource| parse_remote(&s.url).and_then(|r| check_auth(&r, &s.auth));
        assert!(check(src("https://h/r", token.clone())).is_ok());
        assert!(check(src("ssh://h/r", token)).is_err());
        assert!(check(src("git@h:r", ssh.clone())).is_ok());
        assert!(check(src("https://h/r", ssh)).is_err());
    }
}

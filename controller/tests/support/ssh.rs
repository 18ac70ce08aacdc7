//! `sshd` on 127.0.0.1 with a generated host key and one authorised client key.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::proc::{Guard, free_port, read_log, wait_port};

/// An sshd that lets one generated ed25519 client key log in as the current user, which then
/// runs `git-upload-pack` on any absolute path.
#[derive(Debug)]
pub struct SshGitServer {
    port: u16,
    user: String,
    dir: tempfile::TempDir,
    host_public: String,
    _child: Guard,
}

fn keygen(path: &Path, comment: &str) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("ssh-keygen runs (install openssh-client)");
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(path.with_extension("pub")).expect("public key")
}

/// `<type> <base64>` of an OpenSSH public key line.
fn key_part(public: &str) -> String {
    public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

impl SshGitServer {
    pub fn start() -> SshGitServer {
        let sshd = Path::new("/usr/sbin/sshd");
        assert!(
            sshd.exists(),
            "/usr/sbin/sshd missing: install openssh-server (scripts/deps.sh)"
        );
        let dir = tempfile::Builder::new()
            .prefix("gitseal-sshd-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        let host_public = key_part(&keygen(&d.join("host_ed25519"), "gitseal-test-host"));
        let client_public = keygen(&d.join("client_ed25519"), "gitseal-test-client");
        std::fs::write(d.join("authorized_keys"), client_public).expect("authorized_keys");
        let user = whoami();
        let is_root = user == "root";
        if is_root {
            // Privilege separation needs it; absent in containers that never ran sshd.
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        let log = d.join("sshd.log");
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            let config = format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\n\
                 PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nPidFile none\n\
                 AllowAgentForwarding no\nAllowTcpForwarding no\nX11Forwarding no\nPrintMotd no\n\
                 AcceptEnv GIT_PROTOCOL\nAllowUsers {user}\nLogLevel VERBOSE\n",
                hk = d.join("host_ed25519").display(),
                ak = d.join("authorized_keys").display(),
            );
            std::fs::write(d.join("sshd_config"), config).expect("sshd_config");
            let mut child = Command::new(sshd)
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(d.join("sshd_config"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("log"))
                .spawn()
                .expect("sshd starts");
            // A lost race for the port shows as an early exit: try another one.
            let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                wait_port(port, &mut child, "sshd", &log)
            }));
            if started.is_ok() {
                return SshGitServer {
                    port,
                    user,
                    host_public,
                    dir,
                    _child: Guard(child),
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            last = read_log(&log);
        }
        panic!("sshd did not start: {last}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user the client key logs in as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// `ssh://USER@127.0.0.1:PORT/<absolute path>`.
    pub fn url(&self, repo: &Path) -> String {
        assert!(
            repo.is_absolute(),
            "ssh URLs need an absolute repository path"
        );
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            repo.display()
        )
    }

    /// The known_hosts line of this server: `[127.0.0.1]:PORT ssh-ed25519 AAAA…`.
    pub fn known_hosts(&self) -> String {
        format!("[127.0.0.1]:{} {}\n", self.port, self.host_public)
    }

    /// A known_hosts line for this host and port with some other key (a man in the middle's).
    pub fn wrong_known_hosts(&self) -> String {
        let other = keygen(
            &self.dir.path().join(format!("other_{}", unique())),
            "other",
        );
        format!("[127.0.0.1]:{} {}\n", self.port, key_part(&other))
    }

    /// A known_hosts line with the right key for some other host only.
    pub fn other_host_known_hosts(&self) -> String {
        format!("[127.0.0.2]:{} {}\n", self.port, self.host_public)
    }

    /// The authorised client's private key (OpenSSH format).
    pub fn client_identity(&self) -> String {
        std::fs::read_to_string(self.client_key_path()).expect("client key")
    }

    pub fn client_key_path(&self) -> PathBuf {
        self.dir.path().join("client_ed25519")
    }

    /// A private key the server does not know.
    pub fn stranger_identity(&self) -> String {
        let p = self.dir.path().join(format!("stranger_{}", unique()));
        keygen(&p, "stranger");
        std::fs::read_to_string(p).expect("stranger key")
    }

    /// sshd's log so far (for assertion messages).
    pub fn log(&self) -> String {
        read_log(&self.dir.path().join("sshd.log"))
    }
}

fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().expect("id runs");
    let user = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(!user.is_empty(), "no user name from `id -un`");
    user
}

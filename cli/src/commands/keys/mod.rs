//! `gitseal keys`: local key files ([`local`]: generate, public) and the cluster's sealing
//! keys through the Kubernetes API ([`list`]: fetch, list; [`rotate`]: rotate, retire;
//! [`backup`]: backup, restore). Kubernetes RBAC decides who may do what: reading the public
//! keys needs `get` on one ConfigMap; rotating needs `patch` on it (and `list`, `watch` to wait
//! for the answer); retiring, backing up and restoring need access to the key Secrets in the
//! agent namespace.

mod backup;
mod list;
mod local;
mod rotate;

use anyhow::{Result, bail};

use crate::args::KeysCommand;

pub fn run(cmd: KeysCommand) -> Result<()> {
    match cmd {
        KeysCommand::Generate { write, force } => local::generate(write, force),
        KeysCommand::Public { identity } => local::public(identity),
        cluster => crate::cluster::runtime()?.block_on(run_cluster(cluster)),
    }
}

async fn run_cluster(cmd: KeysCommand) -> Result<()> {
    match cmd {
        KeysCommand::Fetch { cluster, write } => list::fetch(&cluster, write.as_deref()).await,
        KeysCommand::List { cluster, output } => list::list(&cluster, output).await,
        KeysCommand::Rotate { cluster, timeout } => rotate::rotate(&cluster, timeout).await,
        KeysCommand::Retire { cluster, id, force } => rotate::retire(&cluster, id, force).await,
        KeysCommand::Backup {
            cluster,
            recipients,
            write,
            plaintext,
            force,
        } => backup::backup(&cluster, &recipients, write.as_deref(), plaintext, force).await,
        KeysCommand::Restore {
            cluster,
            identity,
            file,
        } => backup::restore(&cluster, &identity, &file).await,
        KeysCommand::Generate { .. } | KeysCommand::Public { .. } => {
            bail!("not a cluster command")
        }
    }
}

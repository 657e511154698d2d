//! Live reload: the config file (and every certificate, key and CA file it
//! names) is polled for changes, and SIGHUP asks for a reload directly.
//!
//! A file is identified by (canonical path, inode, length, mtime), so editors
//! that write a new file and rename it over the old one, and symlink swaps such
//! as a Kubernetes ConfigMap's `..data` link, are seen as well as in-place
//! writes. A change is applied once the files have stayed the same for one more
//! poll, so a half-written file is not loaded. A config that does not validate is
//! logged with every error and the old config stays in use. Listener addresses,
//! the store path and the log format are fixed at start: a change to them is
//! logged as needing a restart. Requests in flight finish with the config they
//! started with; the next TLS handshake presents the new certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{self, Config, ConfigError, ConfigErrors, FileStamp as Stamp};
use crate::gateway::Gateway;

use super::tls::CertStore;

/// What a running gateway cannot change without a restart.
#[derive(Debug, Clone, PartialEq)]
struct Fixed {
    listen: String,
    api_listen: Option<String>,
    ops_listen: Option<String>,
    store: PathBuf,
    tls: bool,
    log_format: config::LogFormat,
    /// `server.runtime` and the worker count: the threads are made at start.
    runtime: (config::Runtime, usize),
}

impl Fixed {
    fn of(c: &Config) -> Fixed {
        Fixed {
            listen: c.server.listen.to_string(),
            api_listen: c.api.listen.map(|a| a.to_string()),
            ops_listen: c.ops.listen.map(|a| a.to_string()),
            store: c.store.path.clone(),
            tls: c.server.tls.is_some(),
            log_format: c.log.format,
            runtime: (c.server.runtime, c.server.worker_count()),
        }
    }

    /// (key, running value, new value) for every setting that differs.
    fn differences(&self, new: &Fixed) -> Vec<(&'static str, String, String)> {
        let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "(none)".into());
        let tls = |t: bool| if t { "set" } else { "absent" }.to_owned();
        let mut out = Vec::new();
        if self.listen != new.listen {
            out.push(("server.listen", self.listen.clone(), new.listen.clone()));
        }
        if self.api_listen != new.api_listen {
            out.push(("api.listen", opt(&self.api_listen), opt(&new.api_listen)));
        }
        if self.ops_listen != new.ops_listen {
            out.push(("ops.listen", opt(&self.ops_listen), opt(&new.ops_listen)));
        }
        if self.store != new.store {
            out.push(("store.path", self.store.display().to_string(), new.store.display().to_string()));
        }
        if self.tls != new.tls {
            out.push(("server.tls", tls(self.tls), tls(new.tls)));
        }
        if self.runtime.0 != new.runtime.0 {
            out.push(("server.runtime", self.runtime.0.as_str().into(), new.runtime.0.as_str().into()));
        }
        if self.runtime.1 != new.runtime.1 {
            out.push(("server.workers", self.runtime.1.to_string(), new.runtime.1.to_string()));
        }
        if self.log_format != new.log_format {
            out.push(("log.format", format!("{:?}", self.log_format), format!("{:?}", new.log_format)));
        }
        out
    }
}

/// Applies new configs to a running gateway.
pub struct Reloader {
    gateway: Arc<Gateway>,
    certs: Option<Arc<CertStore>>,
    source: Option<PathBuf>,
    fixed: Fixed,
    /// One reload at a time (the watcher and SIGHUP may race).
    busy: tokio::sync::Mutex<()>,
}

impl Reloader {
    pub fn new(gateway: Arc<Gateway>, certs: Option<Arc<CertStore>>) -> Reloader {
        let config = gateway.config();
        Reloader { source: config.source.clone(), fixed: Fixed::of(&config), gateway, certs, busy: Default::default() }
    }

    /// Loads the config file again and, when it validates, applies it.
    pub async fn reload(&self, why: &str) -> Result<(), ConfigErrors> {
        let _one = self.busy.lock().await;
        let Some(path) = self.source.clone() else {
            return Err(ConfigErrors(vec![ConfigError {
                key: "config".into(),
                message: "this gateway was started from a config text, not a file; there is nothing to reload".into(),
            }]));
        };
        let shown = path.display().to_string();
        let loaded = tokio::task::spawn_blocking(move || config::load(&path)).await.unwrap_or_else(|e| {
            Err(ConfigErrors(vec![ConfigError { key: "config".into(), message: format!("the loader failed: {e}") }]))
        });
        let metrics = &self.gateway.ops().metrics;
        let new = match loaded {
            Ok(c) => c,
            Err(errors) => {
                metrics.reload(false);
                tracing::error!(config = %shown, trigger = why, "config reload refused; the running config stays in use: {errors}");
                return Err(errors);
            }
        };
        for (key, running, wanted) in self.fixed.differences(&Fixed::of(&new)) {
            tracing::warn!(
                config = %shown,
                "`{key}` changed from `{running}` to `{wanted}`; restart tilegate to apply it (the running value stays)"
            );
        }
        if let (Some(certs), Some(tls)) = (&self.certs, &new.server.tls) {
            if certs.replace(tls.certified.clone()) {
                tracing::info!(cert = %tls.cert.display(), "TLS certificate replaced; new connections get it");
            }
        }
        let paths = new.paths.len();
        self.gateway.swap_config(new);
        metrics.reload(true);
        tracing::info!(config = %shown, trigger = why, paths, "config reloaded");
        Ok(())
    }

    /// Polls the config file and the files it names every `every`, reloading on
    /// a settled change. Runs until the task is aborted.
    pub async fn watch(self: Arc<Self>, every: Duration) {
        let Some(source) = self.source.clone() else { return };
        // What the running config was loaded from, stamped when it was read, so an
        // edit made before this task first runs is still a change.
        let mut seen = self.gateway.config().stamps.clone();
        let mut pending: Option<Vec<Stamp>> = None;
        loop {
            tokio::time::sleep(every).await;
            let now = self.fingerprint(&source).await;
            if now == seen {
                pending = None;
                continue;
            }
            if pending.as_ref() != Some(&now) {
                // Changed since the last look: wait one more poll for writers to finish.
                pending = Some(now);
                continue;
            }
            pending = None;
            seen = match self.reload("file changed").await {
                // The reloaded config may name other files; watch those from now on.
                Ok(()) => self.gateway.config().stamps.clone(),
                Err(_) => now,
            };
        }
    }

    async fn fingerprint(&self, source: &Path) -> Vec<Stamp> {
        let mut files = vec![source.to_path_buf()];
        files.extend(self.gateway.config().files.iter().cloned());
        tokio::task::spawn_blocking(move || files.iter().map(|f| Stamp::of(f)).collect()).await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rename_over_the_file_and_a_symlink_swap_change_the_stamp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "a = 1\n").expect("write");
        let first = Stamp::of(&file);
        assert_eq!(first, Stamp::of(&file), "an untouched file keeps its stamp");
        // Same length, written elsewhere and renamed over it (as editors do).
        let tmp = dir.path().join("config.toml.swp");
        std::fs::write(&tmp, "a = 2\n").expect("write");
        std::fs::rename(&tmp, &file).expect("rename");
        assert_ne!(first, Stamp::of(&file));

        #[cfg(unix)]
        {
            let (a, b) = (dir.path().join("a"), dir.path().join("b"));
            for d in [&a, &b] {
                std::fs::create_dir(d).expect("dir");
                std::fs::write(d.join("config.toml"), "a = 3\n").expect("write");
            }
            let link = dir.path().join("linked.toml");
            std::os::unix::fs::symlink(a.join("config.toml"), &link).expect("symlink");
            let before = Stamp::of(&link);
            let next = dir.path().join("linked.next");
            std::os::unix::fs::symlink(b.join("config.toml"), &next).expect("symlink");
            std::fs::rename(&next, &link).expect("swap");
            assert_ne!(before, Stamp::of(&link), "a swapped symlink is a change even with equal content");
        }
    }

    #[test]
    fn settings_fixed_at_start_are_reported_with_their_key() {
        let base = Path::new("/etc/tilegate");
        let a = config::parse("[server]\nlisten = \"127.0.0.1:8080\"\n", base).expect("valid");
        let b = config::parse("[server]\nlisten = \"127.0.0.1:8081\"\n[store]\npath = \"other.db\"\n", base)
            .expect("valid");
        let diffs = Fixed::of(&a).differences(&Fixed::of(&b));
        let keys: Vec<&str> = diffs.iter().map(|d| d.0).collect();
        assert_eq!(keys, ["server.listen", "store.path"]);
        assert!(Fixed::of(&a).differences(&Fixed::of(&a)).is_empty());
        // The worker threads are made at start: a reload cannot change them.
        let c = config::parse("[server]\nlisten = \"127.0.0.1:8080\"\nruntime = \"per-core\"\nworkers = 3\n", base)
            .expect("valid");
        let diffs = Fixed::of(&a).differences(&Fixed::of(&c));
        let changed: Vec<(&str, &str)> = diffs.iter().map(|d| (d.0, d.2.as_str())).collect();
        assert_eq!(changed[0], ("server.runtime", "per-core"));
        assert!(changed.len() == 1 || changed[1] == ("server.workers", "3"), "{changed:?}");
    }
}

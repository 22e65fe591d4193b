//! `tidings check`: what the server would make of a configuration, before
//! it starts on it or reloads it (INN's inncheck). Parsing has happened by
//! then (a file that does not parse never gets here: the error names its
//! line). This looks at what parsing cannot: the files the configuration
//! names and the programs it runs.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::tls;

/// What is wrong: the server will not start on it, or will fail on it at
/// once.
pub struct Findings {
    pub problems: Vec<String>,
    /// What will work but may not be meant (e.g. a mail program that is
    /// not installed while no group is moderated).
    pub warnings: Vec<String>,
}

/// Checks `config` without changing anything: no database is created and
/// no port bound (a probe file is made and removed where the database
/// would be created).
pub fn check(config: &Config) -> Findings {
    let mut f = Findings {
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    if let Err(e) = tls::server_config(&config.tls) {
        f.problems.push(format!("[tls]: {e}"));
    }
    for p in &config.peers {
        if !p.tls {
            continue;
        }
        if let Err(e) = tls::client_config(p.tls_ca.as_deref()) {
            f.problems.push(format!("peer {}: {e}", p.name.0));
        }
        if let Some(address) = &p.address
            && let Err(e) = tls::server_name(p.tls_name.as_deref(), address)
        {
            f.problems.push(format!("peer {}: {e}", p.name.0));
        }
    }
    check_database(&config.storage.database, &mut f);
    check_mta(config, &mut f);
    f
}

fn check_database(path: &Path, f: &mut Findings) {
    if path.exists() {
        if let Err(e) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
        {
            f.problems.push(format!(
                "[storage] database {}: cannot open it for writing: {e}",
                path.display()
            ));
        }
        return;
    }
    // The server creates missing directories: the nearest one that
    // exists must take new entries.
    let mut dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    while !dir.exists() {
        match dir.parent() {
            Some(d) if !d.as_os_str().is_empty() => dir = d.to_path_buf(),
            _ => dir = PathBuf::from("."),
        }
    }
    match std::fs::metadata(&dir) {
        Ok(m) if !m.is_dir() => f.problems.push(format!(
            "[storage] database {}: {} is not a directory",
            path.display(),
            dir.display()
        )),
        Ok(_) => {
            // A file made and removed at once: permissions alone do not
            // tell (ownership, read-only mounts).
            let probe = dir.join(format!(".tidings-check-{}", std::process::id()));
            let made = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&probe);
            if made.is_ok() {
                let _ = std::fs::remove_file(&probe);
            }
            if let Err(e) = made {
                f.problems.push(format!(
                    "[storage] database {}: cannot create files in {}: {e}",
                    path.display(),
                    dir.display()
                ));
            }
        }
        Err(e) => f.problems.push(format!(
            "[storage] database {}: {}: {e}",
            path.display(),
            dir.display()
        )),
    }
}

/// The mail program must be there for moderated posts to be mailed.
fn check_mta(config: &Config, f: &mut Findings) {
    let m = &config.moderation;
    let Some(program) = m.mta.first() else {
        if !m.moderators.is_empty() {
            f.problems
                .push("[moderation] mta is empty: moderated posts cannot be mailed".into());
        }
        return;
    };
    if find_program(program).is_some() {
        return;
    }
    let what = format!("[moderation] mta: no program {program}");
    if m.moderators.is_empty() {
        f.warnings.push(format!(
            "{what} (posts to moderated groups will be refused with 441)"
        ));
    } else {
        f.problems.push(format!(
            "{what}: posts to moderated groups cannot be mailed"
        ));
    }
}

/// Where `program` is: itself when it names a path, else the first match
/// in PATH.
fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

//! Starting the workspace's binaries as tests need them: found next to the
//! test executable, refused when older than their sources, with a clean
//! environment, and dying with the test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use nix::sys::signal::Signal;

/// The path of a workspace binary, next to the test executable (or in
/// `RTTP_BIN_DIR`). Tests never build it: `cargo test` holds the build lock
/// while tests run, so `make test` builds every binary first.
pub fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("RTTP_BIN_DIR").map(PathBuf::from).unwrap_or_else(|| {
        // Tests run from target/<profile>/deps/, binaries from target/<profile>/.
        let exe = std::env::current_exe().expect("current exe");
        let dir = exe.parent().expect("exe dir");
        if dir.ends_with("deps") { dir.parent().unwrap_or(dir) } else { dir }.to_path_buf()
    });
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `make test` (or `cargo build --workspace --bins` first)",
        path.display()
    );
    if std::env::var_os("RTTP_BIN_DIR").is_none() {
        refuse_stale(name, &path);
    }
    path
}

/// The source folders a binary is built from, relative to the workspace.
fn sources_of(name: &str) -> &'static [&'static str] {
    match name {
        "rttp-server" => &["rttp-proto/src", "rttp-conn/src", "rttp-server/src"],
        "farm-dns" => &["rttp-proto/src", "rttp-conn/src", "rttp-client/src", "farm-dns/src"],
        _ => &[],
    }
}

/// The most recently modified file under `dir`, leaving out `src/bin`
/// folders of the libraries a binary uses (another binary's sources: a change
/// there relinks only that binary).
fn newest(dir: &Path) -> Option<(SystemTime, PathBuf)> {
    let mut best: Option<(SystemTime, PathBuf)> = None;
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() && p.ends_with("src/bin") {
            continue;
        }
        let cand =
            if p.is_dir() { newest(&p) } else { e.metadata().ok().and_then(|m| m.modified().ok()).map(|t| (t, p)) };
        if let Some(c) = cand {
            if best.as_ref().is_none_or(|b| c.0 > b.0) {
                best = Some(c);
            }
        }
    }
    best
}

/// Panics when `path` is older than a source it is built from: `cargo test
/// -p integration` alone does not rebuild the servers, and a test of a stale
/// binary proves nothing about the code in front of you.
fn refuse_stale(name: &str, path: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new("."));
    let Ok(built) = std::fs::metadata(path).and_then(|m| m.modified()) else { return };
    // Cargo's dep-info lists exactly the files compiled into the binary (a
    // test-only module is not one of them: editing it relinks nothing).
    if let Ok(deps) = std::fs::read_to_string(format!("{}.d", path.display())) {
        let files = deps.split_once(": ").map_or("", |(_, f)| f.lines().next().unwrap_or(""));
        for src in files.split_whitespace().map(Path::new) {
            // A file that is gone (or a path with an escaped space) is skipped.
            if let Ok(t) = std::fs::metadata(src).and_then(|m| m.modified()) {
                assert!(
                    t <= built,
                    "{} is older than {}: run `make test` (it builds every binary before the tests)",
                    path.display(),
                    src.display()
                );
            }
        }
        return;
    }
    for dir in sources_of(name) {
        if let Some((t, src)) = newest(&root.join(dir)) {
            assert!(
                t <= built,
                "{} is older than {}: run `make test` (it builds every binary before the tests)",
                path.display(),
                src.display()
            );
        }
    }
}

/// Removes every `RTTP_*` variable from a child's environment: a server
/// under test takes its settings from the test's flags, not from whatever
/// the person running the tests exported.
pub fn clean_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("RTTP_") {
            cmd.env_remove(k);
        }
    }
}

/// Makes the child die with this thread: no server outlives a test, even
/// when the test process itself is killed.
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    #[allow(unsafe_code)]
    // SAFETY: the closure runs between fork and exec and only calls prctl(2),
    // which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from));
    }
}

/// Writes a cluster secret file as a server accepts it: mode 0600.
pub fn write_secret(path: &std::path::Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).expect("secret file");
    f.write_all(text.as_bytes()).expect("write the secret");
}

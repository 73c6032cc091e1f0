//! What a server refuses at start, before it serves anyone: a cluster
//! secret others can read, and more connections than its open-file limit
//! can hold. And what it fixes by itself: a soft open-file limit below the
//! hard one.

use std::process::{Command, Stdio};
use std::time::Duration;

use integration::{bin, check_for, clean_env, write_secret};

fn server(prefix: &[&str], args: &[&str]) -> Command {
    let mut cmd = Command::new(prefix[0]);
    clean_env(&mut cmd);
    cmd.args(&prefix[1..]).arg(bin("rttp-server")).args(args).stdin(Stdio::null());
    cmd
}

#[test]
fn a_secret_file_others_can_read_is_refused() {
    let dir = std::env::temp_dir().join(format!("rttp-startup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("secret");
    write_secret(&path, "a-secret-of-sufficient-length\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = server(&["env"], &["--id", "s1", "--listen", "127.0.0.1:0", "--secret-file", path.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("0644") && err.contains("chmod 600"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn more_connections_than_the_hard_open_file_limit_is_refused() {
    // The default --max-connections is 11,064; 512 descriptors cannot hold it.
    let out = server(&["prlimit", "--nofile=512:512"], &["--id", "s1", "--listen", "127.0.0.1:0"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--max-connections 11064 does not fit") && err.contains("limit is 512"), "{err}");
}

#[tokio::test]
async fn a_low_soft_open_file_limit_is_raised_to_the_hard_one() {
    let hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap().1.min(8192);
    let limit = format!("--nofile=256:{hard}");
    let mut child = server(&["prlimit", &limit], &["--id", "s1", "--listen", "127.0.0.1:0", "--capacity", "1000"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let limits = format!("/proc/{}/limits", child.id());
    let want = format!("{hard}");
    check_for(Duration::from_secs(10), "the soft limit raised to the hard one", || async {
        let text = std::fs::read_to_string(&limits).unwrap_or_default();
        // "Max open files   <soft>   <hard>   files"
        text.lines()
            .find(|l| l.starts_with("Max open files"))
            .is_some_and(|l| l.split_whitespace().nth(3) == Some(want.as_str()))
    })
    .await;
    assert!(child.try_wait().unwrap().is_none(), "and it runs");
    let _ = child.kill();
    let _ = child.wait();
}

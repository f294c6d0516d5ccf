//! Signed releases for tests: keys made by the real `minisign` CLI, releases published with
//! `regionfilter release`, and a handler that serves a release directory as a static web
//! server does, with an ETag, so that an unchanged poll is a `304 Not Modified`.

use std::{
    collections::hash_map::DefaultHasher,
    fs,
    hash::{Hash as _, Hasher as _},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use crate::{
    cli::binary,
    http::{Reply, Request},
};

fn run(program: &Path, args: &[&str], dir: &Path) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

/// The `minisign` CLI (Debian's package), run in `dir`.
#[must_use]
pub fn minisign(args: &[&str], dir: &Path) -> Output {
    run(Path::new("minisign"), args, dir)
}

/// The `regionfilter` binary under test, run in `dir` outside any namespace.
#[must_use]
pub fn regionfilter(args: &[&str], dir: &Path) -> Output {
    run(&binary(), args, dir)
}

/// Stdout then stderr, for assertions and failure messages.
#[must_use]
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A key pair made by `minisign -G -W` in `dir`: `name.pub`, `name.key`.
pub fn keypair(dir: &Path, name: &str) {
    let (public, secret) = (format!("{name}.pub"), format!("{name}.key"));
    let out = minisign(&["-G", "-W", "-p", &public, "-s", &secret], dir);
    assert!(out.status.success(), "minisign -G: {}", text(&out));
}

/// `regionfilter compile ARGS --out NAME` in `dir`.
pub fn compile(dir: &Path, name: &str, args: &[&str]) {
    let mut all = vec!["compile"];
    all.extend_from_slice(args);
    all.extend(["--out", name]);
    let out = regionfilter(&all, dir);
    assert!(out.status.success(), "compile: {}", text(&out));
}

/// `regionfilter release` of `artifact` (in `dir`), signed with `key.key`, served from
/// `dir/out`: published into a fresh directory of its own, then copied over what `out`
/// held (artifact, manifest, signature, in that order), as a mirror serves whatever it was
/// given. So a test can serve an older or foreign release, which `release` itself refuses to
/// publish over a newer one.
pub fn publish(
    dir: &Path,
    out: &str,
    artifact: &str,
    key: &str,
    version: u64,
    plan: &str,
    stage: usize,
) {
    let (version, stage) = (version.to_string(), stage.to_string());
    let release = ["--version", &version, "--plan", plan, "--stage", &stage];
    publish_and_serve(dir, &dir.join(out), artifact, key, &release);
}

/// Publishes `artifact` (in `dir`) as `channel` `version`, signed with `key.key`, and serves
/// it from `served`: a release of another channel, as a mirror mix-up or an attacker would.
pub fn serve_other_channel(
    dir: &Path,
    served: &Path,
    artifact: &str,
    key: &str,
    channel: &str,
    version: u64,
) {
    let version = version.to_string();
    let release = ["--channel", channel, "--version", &version];
    publish_and_serve(dir, served, artifact, key, &release);
}

/// `regionfilter release --artifact ARTIFACT --secret-key KEY.key RELEASE...` into a fresh
/// staging directory in `dir`, then its files copied into `served`, each by a rename, the
/// artifact first and the signature last, as `release` writes them.
fn publish_and_serve(dir: &Path, served: &Path, artifact: &str, key: &str, release: &[&str]) {
    let staging = dir.join(".publish");
    let _ = fs::remove_dir_all(&staging);
    let (staging_arg, secret) = (staging.display().to_string(), format!("{key}.key"));
    let mut args = vec![
        "release",
        "--artifact",
        artifact,
        "--out",
        &staging_arg,
        "--secret-key",
        &secret,
    ];
    args.extend_from_slice(release);
    let published = regionfilter(&args, dir);
    assert!(published.status.success(), "release: {}", text(&published));
    fs::create_dir_all(served).unwrap();
    let mut files: Vec<_> = fs::read_dir(&staging)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    files.sort_by_key(|name| match name.to_str() {
        Some("release.json") => 1,
        Some("release.json.minisig") => 2,
        _ => 0,
    });
    for name in files {
        let temporary = served.join(".incoming");
        fs::copy(staging.join(&name), &temporary).unwrap();
        fs::rename(&temporary, served.join(&name)).unwrap();
    }
}

/// Re-signs `dir/out/release.json` after `change` rewrote it, with the `minisign` CLI and
/// `key.key`: a manifest the publisher's key really signed, whatever it says.
pub fn resign(dir: &Path, out: &str, key: &str, change: impl FnOnce(&str) -> String) {
    let manifest = dir.join(out).join("release.json");
    let changed = change(&fs::read_to_string(&manifest).unwrap());
    fs::write(&manifest, changed).unwrap();
    let (secret, path) = (format!("{key}.key"), manifest.display().to_string());
    let signed = minisign(
        &[
            "-S",
            "-s",
            &secret,
            "-m",
            &path,
            "-t",
            "re-signed by a test",
        ],
        dir,
    );
    assert!(signed.status.success(), "minisign -S: {}", text(&signed));
}

/// Answers `GET /PREFIX/NAME` with the file `root/NAME` (plain names only, else 404), with an
/// ETag from its bytes, and `304` to a request whose `If-None-Match` carries that ETag.
pub fn static_files(prefix: &str, root: PathBuf) -> impl Fn(&Request) -> Reply + Send + Sync {
    let prefix = format!("/{}/", prefix.trim_matches('/'));
    move |req: &Request| {
        let Some(name) = req.path.strip_prefix(&prefix) else {
            return Reply::status(404);
        };
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Reply::status(404);
        }
        let Ok(bytes) = fs::read(root.join(name)) else {
            return Reply::status(404);
        };
        let mut hasher = DefaultHasher::new();
        bytes.hash(&mut hasher);
        let etag = format!("\"{:016x}\"", hasher.finish());
        if req.headers.get("if-none-match") == Some(&etag) {
            let mut reply = Reply::status(304);
            reply.headers.push(("ETag".to_owned(), etag));
            return reply;
        }
        let mut reply = Reply::ok(bytes);
        reply.headers.push(("ETag".to_owned(), etag));
        reply
    }
}

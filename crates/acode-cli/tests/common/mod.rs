//! Running the `acode` binary in a fresh temporary workspace, with no
//! `ACODE_*` variable of the caller's environment leaking in.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;
use tempfile::TempDir;

/// The binary with a clean environment, run in `cwd`.
pub fn acode_in(cwd: &Path) -> Command {
    let mut cmd = assert_cmd::cargo::cargo_bin_cmd!("acode");
    cmd.current_dir(cwd);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ACODE_") {
            cmd.env_remove(name);
        }
    }
    for key in acode_config::Config::keys() {
        cmd.env_remove(key.env);
    }
    cmd.env_remove("ACODE_WORKSPACE").env_remove("ACODE_LOG");
    cmd.timeout(std::time::Duration::from_secs(60));
    cmd
}

/// What one run printed and how it exited.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    /// The `error.code` of a `--json` failure.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn error_message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

pub fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A temporary directory that `acode init` made a workspace.
pub struct Ws {
    pub dir: TempDir,
}

impl Ws {
    pub fn new() -> Ws {
        let ws = Ws::uninitialized();
        ws.ok(&["init"]);
        ws
    }

    /// A temporary directory, not a workspace yet.
    pub fn uninitialized() -> Ws {
        Ws {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn agent(&self, file: &str) -> PathBuf {
        self.root().join(".agent").join(file)
    }

    /// `acode --workspace ROOT --json ARGS…`, run from the temp dir.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = acode_in(self.root());
        cmd.arg("--workspace")
            .arg(self.root())
            .arg("--json")
            .args(args);
        cmd
    }

    /// Runs and expects success; the JSON output.
    pub fn ok(&self, args: &[&str]) -> Value {
        let r = run(&mut self.cmd(args));
        assert_eq!(r.code, 0, "acode {args:?} failed: {}{}", r.stdout, r.stderr);
        r.json()
    }

    /// Runs and expects failure.
    pub fn fail(&self, args: &[&str]) -> Run {
        let r = run(&mut self.cmd(args));
        assert_ne!(r.code, 0, "acode {args:?} succeeded: {}", r.stdout);
        r
    }

    pub fn new_chat(&self, title: &str, privacy: &str) -> String {
        let v = self.ok(&["chat", "new", title, "--privacy", privacy]);
        v["id"].as_str().unwrap().to_owned()
    }

    /// Row counts per table, from `db status`.
    pub fn rows(&self) -> Value {
        self.ok(&["db", "status"])["rows"].clone()
    }

    /// (role, content) of a chat's messages, in listed order.
    pub fn messages(&self, chat: &str) -> Vec<(String, String)> {
        self.ok(&["msg", "list", chat])["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["role"].as_str().unwrap().to_owned(),
                    m["content"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

/// A valid id that names no row.
pub const MISSING_ID: &str = "01ARZ3NDEKTSV4RRFFQ69G5FAV";

//! Tests of layering and of the errors loading reports.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use acode_protocol::ErrorCode;
use tempfile::TempDir;

use crate::error::{ConfigError, Origin};
use crate::model::{Config, ConflictPolicy, Durability};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A config file with `text` in a fresh temporary directory.
fn file(text: &str) -> Result<(TempDir, PathBuf), std::io::Error> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("config.yml");
    std::fs::write(&path, text)?;
    Ok((dir, path))
}

/// Loads with an environment made of `vars` only (the process environment
/// is never read or changed).
fn load(path: Option<&Path>, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::load(path, &|name| env.get(name).cloned())
}

#[test]
fn no_file_and_no_env_gives_defaults() -> TestResult {
    assert_eq!(load(None, &[])?, Config::default());
    Ok(())
}

#[test]
fn missing_file_gives_defaults() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("absent.yml");
    assert_eq!(load(Some(&path), &[])?, Config::default());
    Ok(())
}

#[test]
fn empty_or_comment_only_file_gives_defaults() -> TestResult {
    for text in ["", "\n\n", "# nothing here\n  # indented comment\n", "{}"] {
        let (_dir, path) = file(text)?;
        assert_eq!(load(Some(&path), &[])?, Config::default(), "{text:?}");
    }
    Ok(())
}

#[test]
fn empty_sections_give_defaults() -> TestResult {
    let (_dir, path) = file("sync:\n  upload:\nstore:\n")?;
    assert_eq!(load(Some(&path), &[])?, Config::default());
    Ok(())
}

#[test]
fn file_overrides_some_keys_and_keeps_other_defaults() -> TestResult {
    let (_dir, path) = file(
        "sync:\n  remote:\n    url: https://sync.example.com\n    token: t0k\n  upload:\n    batch_size: 200\n  conflict:\n    policy: remote_wins\nstore:\n  durability: normal\nbackup:\n  before_migrate: false\n",
    )?;
    let c = load(Some(&path), &[])?;
    assert_eq!(
        c.sync.remote.url.as_deref(),
        Some("https://sync.example.com")
    );
    assert_eq!(c.sync.remote.token.as_deref(), Some("t0k"));
    assert_eq!(c.sync.upload.batch_size, 200);
    assert_eq!(c.sync.conflict.policy, ConflictPolicy::RemoteWins);
    assert_eq!(c.store.durability, Durability::Normal);
    assert!(!c.backup.before_migrate);
    // Untouched keys keep their defaults.
    assert_eq!(c.sync.upload.poll_interval_seconds, 5);
    assert_eq!(c.sync.remote.tenant, "default");
    assert!(c.sync.conflict.preserve_original);
    Ok(())
}

#[test]
fn env_overrides_file() -> TestResult {
    let (_dir, path) = file(
        "sync:\n  enabled: true\n  remote:\n    url: https://file.example.com\n  upload:\n    batch_size: 200\nstore:\n  durability: normal\n",
    )?;
    let c = load(
        Some(&path),
        &[
            ("ACODE_SYNC_ENABLED", "false"),
            ("ACODE_SYNC_REMOTE_URL", "postgres://db.example.com/acode"),
            ("ACODE_SYNC_UPLOAD_BATCH_SIZE", "7"),
            ("ACODE_STORE_DURABILITY", "full"),
            ("ACODE_BACKUP_BEFORE_MIGRATE", "false"),
            ("ACODE_SYNC_CONFLICT_POLICY", "local_wins"),
        ],
    )?;
    assert!(!c.sync.enabled);
    assert_eq!(
        c.sync.remote.url.as_deref(),
        Some("postgres://db.example.com/acode")
    );
    assert_eq!(c.sync.upload.batch_size, 7);
    assert_eq!(c.store.durability, Durability::Full);
    assert!(!c.backup.before_migrate);
    assert_eq!(c.sync.conflict.policy, ConflictPolicy::LocalWins);
    Ok(())
}

#[test]
fn env_strings_are_kept_verbatim() -> TestResult {
    let c = load(
        None,
        &[
            ("ACODE_SYNC_REMOTE_TOKEN", "12345"),
            ("ACODE_SYNC_REMOTE_TENANT", "true"),
        ],
    )?;
    assert_eq!(c.sync.remote.token.as_deref(), Some("12345"));
    assert_eq!(c.sync.remote.tenant, "true");
    Ok(())
}

#[test]
fn empty_env_url_unsets_the_file_url() -> TestResult {
    let (_dir, path) = file("sync:\n  remote:\n    url: https://sync.example.com\n")?;
    let c = load(Some(&path), &[("ACODE_SYNC_REMOTE_URL", "")])?;
    assert_eq!(c.sync.remote.url, None);
    Ok(())
}

#[test]
fn every_enum_name_loads_from_env() -> TestResult {
    for name in ConflictPolicy::NAMES {
        let c = load(None, &[("ACODE_SYNC_CONFLICT_POLICY", name)])?;
        assert_eq!(c.sync.conflict.policy.as_str(), *name);
    }
    for name in Durability::NAMES {
        let c = load(None, &[("ACODE_STORE_DURABILITY", name)])?;
        assert_eq!(c.store.durability.as_str(), *name);
    }
    Ok(())
}

#[test]
fn unrelated_env_vars_are_ignored() -> TestResult {
    let c = load(None, &[("ACODE_SYNC", "x"), ("ACODE_SYNC_UPLOAD", "y")])?;
    assert_eq!(c, Config::default());
    Ok(())
}

#[test]
fn non_numeric_env_value_names_key_and_variable() {
    let err = load(None, &[("ACODE_SYNC_UPLOAD_BATCH_SIZE", "abc")]).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ConfigInvalidValue);
    assert_eq!(err.code().code(), "ACODE-CONFIG-001");
    assert_eq!(err.key(), Some("sync.upload.batch_size"));
    let msg = err.to_string();
    assert!(msg.contains("sync.upload.batch_size"), "{msg}");
    assert!(msg.contains("ACODE_SYNC_UPLOAD_BATCH_SIZE"), "{msg}");
    assert!(msg.contains("\"abc\""), "{msg}");
    assert_eq!(
        msg,
        "environment variable ACODE_SYNC_UPLOAD_BATCH_SIZE: invalid value \"abc\" \
         for config key `sync.upload.batch_size`: expected a non-negative integer"
    );
}

#[test]
fn bad_env_bool_and_negative_number_are_invalid_values() {
    for (var, raw, key) in [
        ("ACODE_SYNC_ENABLED", "maybe", "sync.enabled"),
        (
            "ACODE_SYNC_RETRY_MAX_ATTEMPTS",
            "-1",
            "sync.retry.max_attempts",
        ),
        ("ACODE_SYNC_UPLOAD_BATCH_SIZE", "", "sync.upload.batch_size"),
        (
            "ACODE_SYNC_UPLOAD_BATCH_SIZE",
            "99999999999",
            "sync.upload.batch_size",
        ),
    ] {
        let err = load(None, &[(var, raw)]).unwrap_err();
        assert_eq!(
            err.code(),
            ErrorCode::ConfigInvalidValue,
            "{var}={raw:?}: {err}"
        );
        assert_eq!(err.key(), Some(key), "{var}={raw:?}: {err}");
        assert!(err.to_string().contains(var), "{err}");
    }
}

#[test]
fn out_of_range_env_value_is_blamed_on_the_variable() -> TestResult {
    let (_dir, path) = file("sync:\n  upload:\n    batch_size: 10\n")?;
    let err = load(Some(&path), &[("ACODE_SYNC_UPLOAD_BATCH_SIZE", "0")]).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ConfigInvalidValue);
    match &err {
        ConfigError::InvalidValue { key, origin, .. } => {
            assert_eq!(key, "sync.upload.batch_size");
            assert_eq!(
                origin,
                &Some(Origin::Env("ACODE_SYNC_UPLOAD_BATCH_SIZE".into()))
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    Ok(())
}

#[test]
fn out_of_range_file_value_is_blamed_on_the_file() -> TestResult {
    let (_dir, path) = file("sync:\n  retry:\n    base_delay_seconds: 500\n")?;
    let err = load(Some(&path), &[]).unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.key(), Some("sync.retry.base_delay_seconds"));
    assert!(
        msg.starts_with(&format!("config file {}:", path.display())),
        "{msg}"
    );
    assert!(msg.contains("\"500\""), "{msg}");
    Ok(())
}

#[test]
fn bad_url_in_file_is_invalid() -> TestResult {
    let (_dir, path) = file("sync:\n  remote:\n    url: sync.example.com\n")?;
    let err = load(Some(&path), &[]).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ConfigInvalidValue);
    assert_eq!(err.key(), Some("sync.remote.url"));
    Ok(())
}

#[test]
fn string_where_number_expected_in_file_names_key_and_file() -> TestResult {
    let (_dir, path) = file("sync:\n  upload:\n    batch_size: \"lots\"\n")?;
    let err = load(Some(&path), &[]).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ConfigInvalidValue);
    assert_eq!(err.key(), Some("sync.upload.batch_size"));
    let msg = err.to_string();
    assert!(msg.contains("`sync.upload.batch_size`"), "{msg}");
    assert!(msg.contains("\"lots\""), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("expected a non-negative integer"), "{msg}");
    Ok(())
}

#[test]
fn unknown_key_is_named_in_full() -> TestResult {
    let (_dir, path) = file("sync:\n  upload:\n    batchsize: 10\n")?;
    let err = load(Some(&path), &[]).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ConfigUnknownKey);
    assert_eq!(err.code().code(), "ACODE-CONFIG-003");
    assert_eq!(err.key(), Some("sync.upload.batchsize"));
    let msg = err.to_string();
    assert!(msg.contains("`sync.upload.batchsize`"), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("batch_size"), "known keys listed: {msg}");
    Ok(())
}

#[test]
fn unknown_top_level_section_is_named() -> TestResult {
    let (_dir, path) = file("syncing:\n  enabled: true\n")?;
    let err = load(Some(&path), &[]).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ConfigUnknownKey);
    assert_eq!(err.key(), Some("syncing"));
    Ok(())
}

#[test]
fn invalid_yaml_is_unreadable_and_names_the_file() -> TestResult {
    for text in [
        "sync: [",
        "sync:\n  enabled: true\n   bad: indent\n",
        "- a\n- b\n",
    ] {
        let (_dir, path) = file(text)?;
        let err = load(Some(&path), &[]).unwrap_err();
        assert!(
            matches!(err, ConfigError::InvalidYaml { .. }),
            "{text:?}: {err:?}"
        );
        assert_eq!(err.code(), ErrorCode::ConfigUnreadable);
        assert_eq!(err.code().code(), "ACODE-CONFIG-002");
        let msg = err.to_string();
        let head = format!("parsing config file {}: not valid YAML: ", path.display());
        assert!(msg.starts_with(&head), "{msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
    }
    Ok(())
}

#[test]
fn unreadable_file_is_unreadable() -> TestResult {
    // A directory where the file should be cannot be read as text.
    let dir = tempfile::tempdir()?;
    let err = load(Some(dir.path()), &[]).unwrap_err();
    assert!(matches!(err, ConfigError::Unreadable { .. }), "{err:?}");
    assert_eq!(err.code(), ErrorCode::ConfigUnreadable);
    assert!(err.to_string().starts_with("reading config file "), "{err}");
    Ok(())
}

#[test]
fn bad_policy_in_file_names_key_and_choices() -> TestResult {
    let (_dir, path) = file("sync:\n  conflict:\n    policy: newest_wins\n")?;
    let err = load(Some(&path), &[]).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ConfigInvalidValue);
    assert_eq!(err.key(), Some("sync.conflict.policy"));
    let msg = err.to_string();
    assert!(msg.contains("\"newest_wins\""), "{msg}");
    assert!(
        msg.contains("last_write_wins, local_wins, remote_wins"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn bad_durability_in_env_names_key_and_variable() {
    let err = load(None, &[("ACODE_STORE_DURABILITY", "FULL")]).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ConfigInvalidValue);
    assert_eq!(err.key(), Some("store.durability"));
    assert!(err.to_string().contains("ACODE_STORE_DURABILITY"), "{err}");
}

#[test]
fn section_given_a_scalar_is_an_invalid_value() -> TestResult {
    let (_dir, path) = file("sync: 5\n")?;
    let err = load(Some(&path), &[]).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ConfigInvalidValue);
    assert_eq!(err.key(), Some("sync"));
    assert!(err.to_string().contains("expected a mapping"), "{err}");
    Ok(())
}

#[test]
fn null_leaf_is_an_invalid_value() -> TestResult {
    let (_dir, path) = file("sync:\n  upload:\n    batch_size:\n")?;
    let err = load(Some(&path), &[]).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ConfigInvalidValue);
    assert_eq!(err.key(), Some("sync.upload.batch_size"));
    Ok(())
}

#[test]
fn health_thresholds_load_from_file_and_env() -> TestResult {
    let (_dir, path) = file(
        "health:\n  lag_degraded_seconds: 10\n  outbox_pending_unhealthy: 500\n  redis_url: redis://127.0.0.1:6379\n",
    )?;
    let c = load(
        Some(&path),
        &[
            ("ACODE_HEALTH_OUTBOX_PENDING_DEGRADED", "50"),
            ("ACODE_HEALTH_TIMEOUT_SECONDS", "2"),
        ],
    )?;
    assert_eq!(c.health.lag_degraded_seconds, 10);
    assert_eq!(c.health.lag_unhealthy_seconds, 300);
    assert_eq!(c.health.outbox_pending_degraded, 50);
    assert_eq!(c.health.outbox_pending_unhealthy, 500);
    assert_eq!(c.health.timeout_seconds, 2);
    assert_eq!(
        c.health.redis_url.as_deref(),
        Some("redis://127.0.0.1:6379")
    );
    Ok(())
}

#[test]
fn health_degraded_past_unhealthy_is_blamed_on_the_variable() {
    let err = load(None, &[("ACODE_HEALTH_LAG_DEGRADED_SECONDS", "900")]).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ConfigInvalidValue);
    assert_eq!(err.key(), Some("health.lag_degraded_seconds"));
    let msg = err.to_string();
    assert!(msg.contains("ACODE_HEALTH_LAG_DEGRADED_SECONDS"), "{msg}");
}

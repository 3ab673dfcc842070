//! Checks on user-supplied values, before anything is written.

use crate::error::{Result, StoreError};

/// Longest title or name, in characters.
pub const MAX_TITLE_CHARS: usize = 1_000;
/// Largest content body (message content, step input/output, artifact body).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// A required one-line text: not empty after trimming, no NUL, bounded.
pub fn title(field: &'static str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(StoreError::invalid(field, "must not be empty"));
    }
    no_nul(field, value)?;
    let chars = value.chars().count();
    if chars > MAX_TITLE_CHARS {
        return Err(StoreError::invalid(
            field,
            format!("{chars} characters, at most {MAX_TITLE_CHARS} allowed"),
        ));
    }
    Ok(())
}

/// A body of text: may be empty, no NUL, bounded.
pub fn body(field: &'static str, value: &str) -> Result<()> {
    no_nul(field, value)?;
    if value.len() > MAX_BODY_BYTES {
        return Err(StoreError::invalid(
            field,
            format!("{} bytes, at most {MAX_BODY_BYTES} allowed", value.len()),
        ));
    }
    Ok(())
}

pub fn no_nul(field: &'static str, value: &str) -> Result<()> {
    if value.contains('\0') {
        return Err(StoreError::invalid(field, "must not contain NUL bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles() {
        assert!(title("title", "ok").is_ok());
        assert!(title("title", "").is_err());
        assert!(title("title", "  \n").is_err());
        assert!(title("title", "a\0b").is_err());
        assert!(title("title", &"é".repeat(MAX_TITLE_CHARS)).is_ok());
        assert!(title("title", &"é".repeat(MAX_TITLE_CHARS + 1)).is_err());
    }

    #[test]
    fn bodies() {
        assert!(body("content", "").is_ok());
        assert!(body("content", "x\0").is_err());
    }
}

//! Importing messages from text: one message per non-blank line, either
//! plain text (a user message) or a JSON object with `role` and `content`.
//! Parsing is separate from writing, so a bad line refuses the whole input
//! before anything is written.

use serde::Deserialize;

use crate::error::{Result, StoreError};
use crate::messages::{NewMessage, Role};
use crate::{Id, validate};

/// One JSON line of an import.
#[derive(Deserialize)]
struct JsonLine {
    role: String,
    content: String,
}

/// The messages of an import: one per non-blank line, either plain text
/// (a user message) or a JSON object with `role` and `content`. Any bad
/// line refuses the whole input, naming the line.
pub fn parse_lines(input: &[u8], chat_id: Id) -> Result<Vec<NewMessage>> {
    let mut messages = Vec::new();
    for (n, raw) in input.split(|b| *b == b'\n').enumerate() {
        let bad =
            |reason: String| StoreError::invalid("import", format!("line {}: {reason}", n + 1));
        let line = std::str::from_utf8(raw).map_err(|_| bad("not valid UTF-8".into()))?;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let (role, content) = if line.trim_start().starts_with('{') {
            let parsed: JsonLine = serde_json::from_str(line)
                .map_err(|e| bad(format!("not a message object: {e}")))?;
            let role = parsed.role.parse::<Role>().map_err(|e| bad(reason(e)))?;
            (role, parsed.content)
        } else {
            (Role::User, line.to_owned())
        };
        validate::body("content", &content).map_err(|e| bad(reason(e)))?;
        messages.push(NewMessage::new(chat_id, role, content));
    }
    Ok(messages)
}

/// A store validation error as a clause: "content must not contain NUL bytes".
fn reason(e: StoreError) -> String {
    match e {
        StoreError::Invalid { field, reason } => format!("{field} {reason}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(input: &str) -> Result<Vec<(Role, String)>> {
        Ok(parse_lines(input.as_bytes(), Id::new())?
            .into_iter()
            .map(|m| (m.role, m.content))
            .collect())
    }

    #[test]
    fn plain_and_json_lines_in_order() -> Result<()> {
        let input = "hello\r\n\n  \n{\"role\":\"assistant\",\"content\":\"hi {there}\"}\n{not json? no: plain}";
        let err = parsed(input).err();
        assert!(err.is_some_and(|e| e.to_string().contains("line 5")));
        let input = "hello\r\n\n{\"role\":\"assistant\",\"content\":\"hi\\nthere\"}\n[x]\n";
        assert_eq!(
            parsed(input)?,
            vec![
                (Role::User, "hello".to_owned()),
                (Role::Assistant, "hi\nthere".to_owned()),
                (Role::User, "[x]".to_owned()),
            ]
        );
        Ok(())
    }

    #[test]
    fn a_bad_line_is_named() {
        let message = |input: &str| {
            parsed(input)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(message("ok\n{\"role\":\"robot\",\"content\":\"x\"}").contains("line 2: role"));
        assert!(message("ok\nok\n{\"content\":\"x\"}").contains("line 3: not a message object"));
        assert!(message("a\0b").contains("line 1: content must not contain NUL"));
        assert_eq!(
            parse_lines(b"ok\n\xff\n", Id::new())
                .err()
                .map(|e| e.to_string()),
            Some("invalid import: line 2: not valid UTF-8".to_owned())
        );
    }
}

//! Quoting of identifiers that come from a schema: the one helper for both
//! sides (SQLite and PostgreSQL both quote with `"…"` and double an inner
//! `"`), so names with spaces, quotes, mixed case or reserved words work.

/// `name` as a quoted identifier, valid in SQLite and PostgreSQL.
pub fn quote(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A schema-qualified PostgreSQL name, both parts quoted.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote(schema), quote(name))
}

/// PostgreSQL truncates identifiers longer than this many bytes.
pub const PG_MAX_IDENT: usize = 63;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_doubled() {
        assert_eq!(quote("order lines"), "\"order lines\"");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote("select"), "\"select\"");
        assert_eq!(qualified("public", "T"), "\"public\".\"T\"");
    }
}

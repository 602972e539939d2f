use std::fmt;

/// A field of caller input that is missing, of the wrong type or out of range.
/// The message always names the field, as the contract's `ValidationError` requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub reason: String,
}

/// Caller input shown back in a message: at most [`EXCERPT_CHARS`] characters, then `…`.
pub const EXCERPT_CHARS: usize = 40;

/// The start of `raw`, short enough to repeat in an error message.
pub fn excerpt(raw: &str) -> String {
    match raw.char_indices().nth(EXCERPT_CHARS) {
        Some((end, _)) => format!("{}…", &raw[..end]),
        None => raw.to_owned(),
    }
}

impl Invalid {
    /// `field` may be a key the caller sent (an unknown field): only its [`excerpt`] is kept.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        let field = field.into();
        let field = if field.chars().count() > EXCERPT_CHARS { excerpt(&field) } else { field };
        Self { field, reason: reason.into() }
    }

    pub fn missing(field: impl Into<String>) -> Self {
        Self::new(field, "is required")
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}' {}", self.field, self.reason)
    }
}

impl std::error::Error for Invalid {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_input_is_cut_to_an_excerpt() {
        assert_eq!(excerpt("short"), "short");
        assert_eq!(excerpt(&"\u{1F600}".repeat(41)), format!("{}…", "\u{1F600}".repeat(40)));
        assert_eq!(Invalid::new("k".repeat(10_000), "x").field.chars().count(), EXCERPT_CHARS + 1);
    }
}

//! Id-list files (`items.txt`, `users.txt`): one id per line, line `i` is index `i`.

use std::collections::HashSet;
use std::path::Path;

use super::{BundleError, Result};

/// The text of a line file: every line followed by `\n`.
pub fn encode_lines<S: AsRef<str>>(lines: &[S]) -> String {
    let mut text = String::with_capacity(lines.iter().map(|l| l.as_ref().len() + 1).sum());
    for l in lines {
        text.push_str(l.as_ref());
        text.push('\n');
    }
    text
}

/// The ids of an id-list file's text (a trailing newline is allowed); `file` names it in errors.
/// An empty line or an id listed twice is an error: either would give two indices one meaning.
pub fn decode_ids(file: &str, text: &str) -> Result<Vec<String>> {
    let mut seen = HashSet::new();
    let mut ids = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            return Err(BundleError::file(file, format!("line {} is empty", i + 1)));
        }
        if !seen.insert(line) {
            return Err(BundleError::file(
                file,
                format!("id '{line}' is listed twice"),
            ));
        }
        ids.push(line.to_string());
    }
    Ok(ids)
}

/// Reads an id-list file (see [`decode_ids`]); errors name it by its path.
pub fn read_ids(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| BundleError::io(path, e))?;
    decode_ids(&path.display().to_string(), &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_empty_or_repeated_lines_are_named() {
        let text = encode_lines(&["a", "b"]);
        assert_eq!(text, "a\nb\n");
        assert_eq!(decode_ids("items.txt", &text).unwrap(), ["a", "b"]);
        assert_eq!(
            decode_ids("items.txt", "a\n\nb\n").unwrap_err().to_string(),
            "items.txt: line 2 is empty"
        );
        assert_eq!(
            decode_ids("items.txt", "a\nb\na\n")
                .unwrap_err()
                .to_string(),
            "items.txt: id 'a' is listed twice"
        );
    }
}

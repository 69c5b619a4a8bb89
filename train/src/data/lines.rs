//! Reading delimited text files with errors that name the file and line.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A whole text file, read once; invalid UTF-8 is replaced (some public data is Latin-1).
pub(crate) struct TextFile {
    pub path: PathBuf,
    text: String,
}

impl TextFile {
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let text = match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        Ok(TextFile {
            path: path.to_path_buf(),
            text,
        })
    }

    /// Non-empty lines with their 1-based line numbers.
    pub fn lines(&self) -> impl Iterator<Item = (usize, &str)> {
        self.text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
            .filter(|(_, l)| !l.trim().is_empty())
    }

    pub fn err(&self, line: usize, problem: impl Into<String>) -> Error {
        Error::parse(&self.path, line, problem)
    }

    /// Parses a field as a number, naming the column on failure.
    pub fn num<T: std::str::FromStr>(&self, line: usize, column: &str, value: &str) -> Result<T> {
        value
            .trim()
            .parse::<T>()
            .map_err(|_| self.err(line, format!("{column} `{value}` is not a valid number")))
    }
}

/// Index of a named column in a header, or an error naming the columns that exist.
pub(crate) fn column(file: &TextFile, header: &[&str], name: &str) -> Result<usize> {
    header.iter().position(|h| *h == name).ok_or_else(|| {
        file.err(
            1,
            format!(
                "missing column `{name}` (header has: {})",
                header.join(", ")
            ),
        )
    })
}

/// Splits a row and checks it has at least `min` fields.
pub(crate) fn fields<'a>(
    file: &TextFile,
    line: usize,
    row: &'a str,
    sep: char,
    min: usize,
) -> Result<Vec<&'a str>> {
    let f: Vec<&str> = row.split(sep).collect();
    if f.len() < min {
        return Err(file.err(
            line,
            format!(
                "expected at least {min} fields separated by {sep:?}, found {}",
                f.len()
            ),
        ));
    }
    Ok(f)
}

//! Mapping between sqlparser's line/column locations and character offsets.
//!
//! sqlparser reports locations as 1-based (line, column) pairs where columns
//! count *characters*. Postgres clients expect a single 1-based character
//! offset, and the server needs byte ranges to slice statement text out of the
//! original string. [`SourceMap`] converts between the three.

use datafusion::sql::sqlparser::tokenizer::Location;

/// Precomputed line starts and char-to-byte table for one SQL string.
#[derive(Debug)]
pub(crate) struct SourceMap<'a> {
    sql: &'a str,
    /// Character index at which each line starts; `line_starts[0] == 0`.
    line_starts: Vec<usize>,
    /// Byte index of each character, plus one final entry equal to `sql.len()`.
    byte_of_char: Vec<usize>,
}

impl<'a> SourceMap<'a> {
    /// Indexes `sql`; linear in its length.
    pub(crate) fn new(sql: &'a str) -> Self {
        let mut line_starts = vec![0];
        let mut byte_of_char = Vec::with_capacity(sql.len() + 1);
        for (char_idx, (byte_idx, ch)) in sql.char_indices().enumerate() {
            byte_of_char.push(byte_idx);
            if ch == '\n' {
                line_starts.push(char_idx + 1);
            }
        }
        byte_of_char.push(sql.len());
        SourceMap {
            sql,
            line_starts,
            byte_of_char,
        }
    }

    /// Number of characters in the whole string.
    pub(crate) fn char_len(&self) -> usize {
        self.byte_of_char.len().saturating_sub(1)
    }

    /// 0-based character offset of `loc`, or `None` for sqlparser's "empty"
    /// location (line 0) or a location outside the string.
    pub(crate) fn char_offset(&self, loc: Location) -> Option<usize> {
        if loc.line == 0 || loc.column == 0 {
            return None;
        }
        let line = usize::try_from(loc.line).ok()?;
        let column = usize::try_from(loc.column).ok()?;
        let start = *self.line_starts.get(line - 1)?;
        let offset = start.checked_add(column - 1)?;
        (offset <= self.char_len()).then_some(offset)
    }

    /// 1-based character position of `loc`, as sent to Postgres clients.
    pub(crate) fn position(&self, loc: Location) -> Option<usize> {
        self.char_offset(loc).map(|o| o + 1)
    }

    /// The text between two 0-based character offsets (end exclusive).
    /// Out-of-range or inverted offsets yield an empty or clamped slice rather
    /// than panicking.
    pub(crate) fn slice(&self, start: usize, end: usize) -> &'a str {
        let len = self.char_len();
        let start = start.min(len);
        let end = end.clamp(start, len);
        let (Some(&b0), Some(&b1)) = (self.byte_of_char.get(start), self.byte_of_char.get(end))
        else {
            return "";
        };
        self.sql.get(b0..b1).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_count_characters_across_lines() {
        let map = SourceMap::new("ab\nçd\r\nx");
        assert_eq!(map.char_offset(Location::new(1, 1)), Some(0));
        assert_eq!(map.char_offset(Location::new(2, 2)), Some(4));
        assert_eq!(map.char_offset(Location::new(3, 1)), Some(7));
        assert_eq!(map.position(Location::new(3, 1)), Some(8));
        assert_eq!(map.char_offset(Location::empty()), None);
        assert_eq!(map.char_offset(Location::new(9, 1)), None);
        assert_eq!(map.slice(3, 5), "çd");
        assert_eq!(map.slice(7, 100), "x");
        assert_eq!(map.slice(5, 2), "");
    }
}

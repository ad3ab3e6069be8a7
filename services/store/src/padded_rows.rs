//! Multi-row statements with bound parameters, prepared once per size.
//!
//! A batch of rows passed as one JSON array (`json_each`) costs SQLite a parse
//! and an extraction per field; bound parameters cost about half per row
//! (docs/benchmarks.md). But a statement with placeholders for N rows is a
//! different statement for every N, and preparing a large one for each batch
//! costs more than binding saves. So each statement comes in a few sizes: a
//! chunk fills the smallest size that holds it and binds NULL to the rows it
//! leaves over, which the statement's `WHERE column1 IS NOT NULL` drops.

/// Row counts a statement is prepared for, smallest first.
pub(crate) const SIZES: [usize; 3] = [8, 64, 512];

/// A statement of each size: `prefix`, then `(?, …)` rows of `columns`
/// placeholders as a sub-select named `v` whose rows without a first column
/// are dropped, then `suffix`.
pub(crate) struct PaddedStatement {
    sql: [String; SIZES.len()],
}

impl PaddedStatement {
    /// `prefix` must end where a table expression can follow, for example
    /// `INSERT INTO t (a, b) SELECT * FROM`.
    pub(crate) fn new(prefix: &str, columns: usize, suffix: &str) -> Self {
        let row = format!("({})", vec!["?"; columns].join(", "));
        let sql = SIZES.map(|rows| {
            format!(
                "{prefix} (SELECT * FROM (VALUES {}) WHERE column1 IS NOT NULL) AS v {suffix}",
                vec![row.as_str(); rows].join(", ")
            )
        });
        Self { sql }
    }

    /// The chunks `n` rows are cut into, in order.
    pub(crate) fn chunks(&self, n: usize) -> Vec<Chunk<'_>> {
        chunk_sizes(n)
            .into_iter()
            .map(|(rows, used)| {
                let index = SIZES.iter().position(|s| *s == rows).unwrap_or(0);
                Chunk {
                    sql: &self.sql[index],
                    rows,
                    used,
                }
            })
            .collect()
    }
}

/// One statement's share of the rows.
pub(crate) struct Chunk<'a> {
    pub sql: &'a str,
    /// Rows of placeholders in `sql`.
    pub rows: usize,
    /// How many of them carry rows; the rest are bound NULL.
    pub used: usize,
}

/// (statement rows, rows used) for `n` rows: full chunks of the largest size,
/// then the rest in the smallest size that holds it.
fn chunk_sizes(n: usize) -> Vec<(usize, usize)> {
    let largest = SIZES[SIZES.len() - 1];
    let mut out = Vec::new();
    let mut left = n;
    while left > 0 {
        let size = SIZES
            .iter()
            .copied()
            .find(|s| *s >= left)
            .unwrap_or(largest);
        let used = left.min(size);
        out.push((size, used));
        left -= used;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_cut_into_prepared_sizes() {
        assert!(chunk_sizes(0).is_empty());
        assert_eq!(chunk_sizes(1), vec![(8, 1)]);
        assert_eq!(chunk_sizes(8), vec![(8, 8)]);
        assert_eq!(chunk_sizes(9), vec![(64, 9)]);
        assert_eq!(chunk_sizes(331), vec![(512, 331)]);
        assert_eq!(chunk_sizes(1030), vec![(512, 512), (512, 512), (8, 6)]);
    }

    #[test]
    fn statements_have_one_row_of_placeholders_per_row() {
        let statement = PaddedStatement::new("INSERT INTO t (a, b) SELECT * FROM", 2, "");
        let chunk = &statement.chunks(3)[0];
        assert_eq!((chunk.rows, chunk.used), (8, 3));
        assert_eq!(chunk.sql.matches("(?, ?)").count(), 8);
        assert!(chunk.sql.contains("WHERE column1 IS NOT NULL"));
    }
}

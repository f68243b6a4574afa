//! Small helpers for the words of log lines and pages, below every layer that writes
//! them (`proxy::failure_log`, the exporter's page, the daemon).

/// `one` when `n` is 1, else `many`: "1 connection", "2 connections", "0 connections".
pub fn plural<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_is_singular_and_every_other_count_plural() {
        let word = |n| super::plural(n, "failure", "failures");
        assert_eq!(
            [word(0), word(1), word(2)],
            ["failures", "failure", "failures"]
        );
    }
}

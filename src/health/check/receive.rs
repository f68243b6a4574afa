//! A check's `receive`: the regular expression an answer must match (ldirectord's
//! `receive`, matched anywhere in the answer, as Perl's `=~`), compiled once when the
//! check is built. Used by connect (UDP), http, https, simpletcp and dns.

use super::{BuildError, Failure};
use crate::config::Check;

/// A compiled `receive`. Matched against bytes, which for text is the same match as on
/// a `str` (Unicode mode is on and every pattern the configuration takes is one a
/// `str` pattern reads).
#[derive(Debug, Clone)]
pub struct Receive(regex::bytes::Regex);

#[cfg(test)]
thread_local! {
    /// How many patterns this thread has compiled, for the tests that show a probe
    /// compiles none.
    pub static COMPILED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl Receive {
    /// # Errors
    /// [`BuildError::Receive`] for a pattern that is not a regular expression.
    pub fn new(pattern: &str) -> Result<Receive, BuildError> {
        #[cfg(test)]
        COMPILED.with(|n| n.set(n.get() + 1));
        Ok(Receive(regex::bytes::Regex::new(pattern)?))
    }

    /// The `receive` of `settings`, if it has one.
    ///
    /// # Errors
    /// As [`Receive::new`].
    pub fn of(settings: &Check) -> Result<Option<Receive>, BuildError> {
        settings.receive.as_deref().map(Receive::new).transpose()
    }

    pub fn is_match(&self, answer: &[u8]) -> bool {
        self.0.is_match(answer)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// Two patterns are the same setting when they are written the same.
impl PartialEq for Receive {
    fn eq(&self, other: &Receive) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Receive {}

/// Whether `answer` matches `receive` (anything does without one).
pub fn matches(receive: Option<&Receive>, answer: &[u8]) -> Result<(), Failure> {
    match receive {
        Some(re) if !re.is_match(answer) => Err(Failure::NoMatch),
        _ => Ok(()),
    }
}

//! A command line split into words as keepalived splits a notify script's
//! (lib/parser.c `alloc_strvec_quoted_escaped`, called by core/notify.c
//! `set_script_params_array`): words at white space, `"..."` and `'...'` quoting, and a
//! backslash escaping the next character (`\n`, `\t`, octal `\101`, `\xHH` and the rest
//! as C writes them). No shell is involved: a command that wants one names it. Used by
//! `config::schema` to refuse what cannot be split, and by the health checker's command
//! runner (`health::command`) to run it. Also the user and group a command runs as
//! ([`run_as`]: MISC_CHECK's `user`).

/// Why a command line cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WordsError {
    #[error("an empty command")]
    Empty,
    #[error("a {0} quote that is not closed")]
    Unclosed(char),
    #[error("a backslash that escapes nothing at the end")]
    TrailingBackslash,
}

/// Why a command cannot run as the user asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunAsError {
    #[error("no user named {0} in the system's user database")]
    NoUser(String),
    #[error("no group named {0} in the system's group database")]
    NoGroup(String),
    #[error("cannot look up {0}: {1}")]
    Lookup(String, String),
}

/// The user id and group id a command runs as: `user`'s, with `group`'s id instead of
/// its primary group if given, as keepalived's core/notify.c `set_uid_gid` takes them
/// (getpwnam, getgrnam).
///
/// # Errors
/// [`RunAsError`]: no such user or group, or the database could not be read.
pub fn run_as(user: &str, group: Option<&str>) -> Result<(u32, u32), RunAsError> {
    let lookup = |e: std::io::Error| RunAsError::Lookup(user.to_string(), e.to_string());
    let (uid, primary) = crate::sys::user_ids(user)
        .map_err(lookup)?
        .ok_or_else(|| RunAsError::NoUser(user.to_string()))?;
    let gid = match group {
        None => primary,
        Some(g) => crate::sys::group_id(g)
            .map_err(|e| RunAsError::Lookup(g.to_string(), e.to_string()))?
            .ok_or_else(|| RunAsError::NoGroup(g.to_string()))?,
    };
    Ok((uid, gid))
}

/// The words of `line`: the program, then its arguments.
///
/// # Errors
/// [`WordsError`]: no word at all, an unclosed quote, a backslash at the end.
pub fn words(line: &str) -> Result<Vec<String>, WordsError> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut word = String::new();
        let mut quote = None;
        while let Some(&c) = chars.peek() {
            match (c, quote) {
                ('\\', _) => {
                    chars.next();
                    word.push(escaped(&mut chars)?);
                }
                (q, Some(open)) if q == open => {
                    chars.next();
                    quote = None;
                }
                ('"' | '\'', None) => {
                    chars.next();
                    quote = Some(c);
                }
                (c, None) if c.is_whitespace() => break,
                (c, _) => {
                    chars.next();
                    word.push(c);
                }
            }
        }
        if let Some(q) = quote {
            return Err(WordsError::Unclosed(q));
        }
        out.push(word);
    }
    if out.is_empty() {
        return Err(WordsError::Empty);
    }
    Ok(out)
}

/// The character a backslash (already taken) and what follows it stand for.
fn escaped(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<char, WordsError> {
    let c = chars.next().ok_or(WordsError::TrailingBackslash)?;
    // keepalived keeps the low byte of what the digits say.
    let number = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
                  mut n: u32,
                  radix: u32,
                  most: usize| {
        for _ in 0..most {
            match chars.peek().and_then(|d| d.to_digit(radix)) {
                Some(d) => {
                    n = n * radix + d;
                    chars.next();
                }
                None => break,
            }
        }
        char::from(n as u8)
    };
    Ok(match c {
        'x' if chars.peek().is_some_and(char::is_ascii_hexdigit) => number(chars, 0, 16, 2),
        '0'..='7' => number(chars, c.to_digit(8).unwrap_or(0), 8, 2),
        'a' => '\u{7}',
        'b' => '\u{8}',
        'E' => '\u{1b}',
        'f' => '\u{c}',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\u{b}',
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_split_as_keepalived_splits_a_notify_script() {
        assert_eq!(
            words("/bin/echo  'a b' \"c \\\"d\\\"\" e\\ f\\tg").unwrap(),
            ["/bin/echo", "a b", "c \"d\"", "e f\tg"]
        );
        assert_eq!(words("x\\x41\\101").unwrap(), ["xAA"]);
        assert_eq!(words("'' x").unwrap(), ["", "x"]);
        assert_eq!(words("  "), Err(WordsError::Empty));
        assert_eq!(words("/bin/x 'a"), Err(WordsError::Unclosed('\'')));
        assert_eq!(words("/bin/x a\\"), Err(WordsError::TrailingBackslash));
    }

    #[test]
    fn a_user_and_group_are_looked_up_in_the_systems_databases() {
        assert_eq!(run_as("root", None), Ok((0, 0)));
        let (uid, gid) = run_as("root", Some("root")).unwrap();
        assert_eq!((uid, gid), (0, 0));
        assert_eq!(
            run_as("no-such-user-uvs", None),
            Err(RunAsError::NoUser("no-such-user-uvs".into()))
        );
        assert_eq!(
            run_as("root", Some("no-such-group-uvs")),
            Err(RunAsError::NoGroup("no-such-group-uvs".into()))
        );
    }
}

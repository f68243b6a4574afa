//! A command-line tokenizer that behaves as popt 1.19 behaves for ipvsadm, so `uvsadm`
//! accepts, refuses and reports arguments as `ipvsadm` does: short options cluster
//! (`-Ln`) and take their value attached or separate (`-w5`, `-w 5`, even `-w -1`);
//! long options are exact (`--tcp-service=a:80`); an optional value (`-p`) is taken only
//! when the next word does not start with '-'; words that are not options are kept
//! aside as "leftovers" (`--set 1 2 3`), and everything after `--` is one.
//!
//! Used only by the ipvsadm grammar (`adm::cmdline`).

use std::collections::VecDeque;

/// Whether an option takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgMode {
    None,
    Required,
    Optional,
}

/// One entry of the option table.
#[derive(Debug, Clone, Copy)]
pub struct OptionDef<T> {
    pub long: &'static str,
    pub short: Option<char>,
    pub arg: ArgMode,
    pub tag: T,
}

/// popt's errors, with its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoptError {
    MissingArgument,
    UnwantedArgument,
    UnknownOption,
}

impl PoptError {
    pub fn message(self) -> &'static str {
        match self {
            PoptError::MissingArgument => "missing argument",
            PoptError::UnwantedArgument => "option does not take an argument",
            PoptError::UnknownOption => "unknown option",
        }
    }
}

/// An option found, with its value if it takes one (None for an absent optional value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<T> {
    pub tag: T,
    pub value: Option<String>,
    /// The index of the argument word the value is (or ends) in; 0 without a value.
    pub word: usize,
}

/// Walks an argument vector (argv[0] included, and skipped).
pub struct Popt<'a, T> {
    table: &'a [OptionDef<T>],
    args: &'a [String],
    next: usize,
    /// Pending short options: (argv index, byte offset of the next option letter).
    cluster: Option<(usize, usize)>,
    rest_are_leftovers: bool,
    /// POSIXLY_CORRECT: the first leftover ends option processing.
    posix: bool,
    leftovers: VecDeque<String>,
}

impl<'a, T: Copy> Popt<'a, T> {
    pub fn new(table: &'a [OptionDef<T>], args: &'a [String], posix: bool) -> Self {
        Popt {
            table,
            args,
            next: 1,
            cluster: None,
            rest_are_leftovers: false,
            posix,
            leftovers: VecDeque::new(),
        }
    }

    /// The argument word popt blames for the last error or odd option
    /// (`poptBadOption`): the last word it read.
    pub fn bad_option(&self) -> &'a str {
        self.args
            .get(self.next.saturating_sub(1))
            .map(String::as_str)
            .unwrap_or("")
    }

    /// The next leftover word (`poptGetArg`).
    pub fn next_leftover(&mut self) -> Option<String> {
        self.leftovers.pop_front()
    }

    /// The next option, None at the end, or an error.
    pub fn next_option(&mut self) -> Option<Result<Found<T>, PoptError>> {
        loop {
            let mut long_value: Option<String> = None;
            let mut def: Option<OptionDef<T>> = None;

            if self.cluster.is_none() {
                let index = self.next;
                let word = self.args.get(index)?;
                self.next += 1;
                if self.rest_are_leftovers || !word.starts_with('-') || word == "-" {
                    if self.posix {
                        self.rest_are_leftovers = true;
                    }
                    self.leftovers.push_back(word.clone());
                    continue;
                }
                if word == "--" {
                    self.rest_are_leftovers = true;
                    continue;
                }
                if let Some(body) = word.strip_prefix("--") {
                    let (name, value) = match body.split_once('=') {
                        Some((n, v)) => (n, Some(v.to_string())),
                        None => (body, None),
                    };
                    match self.table.iter().find(|d| d.long == name) {
                        Some(d) => {
                            def = Some(*d);
                            long_value = value;
                        }
                        None => return Some(Err(PoptError::UnknownOption)),
                    }
                } else {
                    // A single dash: no ipvsadm option is a one-dash long option, so this
                    // is a cluster of short options.
                    self.cluster = Some((index, 1));
                }
            }

            if let Some((index, offset)) = self.cluster.take() {
                let word = &self.args[index];
                let letter = word[offset..].chars().next()?;
                let rest = offset + letter.len_utf8();
                if rest < word.len() {
                    self.cluster = Some((index, rest));
                }
                match self.table.iter().find(|d| d.short == Some(letter)) {
                    Some(d) => def = Some(*d),
                    None => return Some(Err(PoptError::UnknownOption)),
                }
            }

            let def = def?;
            return Some(self.take_value(def, long_value));
        }
    }

    fn take_value(
        &mut self,
        def: OptionDef<T>,
        long_value: Option<String>,
    ) -> Result<Found<T>, PoptError> {
        if def.arg == ArgMode::None {
            let attached = self
                .cluster
                .is_some_and(|(i, off)| self.args[i][off..].starts_with('='));
            if long_value.is_some() || attached {
                return Err(PoptError::UnwantedArgument);
            }
            return Ok(Found {
                tag: def.tag,
                value: None,
                word: 0,
            });
        }
        let (value, word) = if long_value.is_some() {
            (long_value, self.next - 1)
        } else if let Some((i, off)) = self.cluster.take() {
            let rest = &self.args[i][off..];
            (Some(rest.strip_prefix('=').unwrap_or(rest).to_string()), i)
        } else if let Some(word) = self.args.get(self.next) {
            if def.arg == ArgMode::Optional && word.starts_with('-') {
                (None, 0)
            } else {
                self.next += 1;
                (Some(word.clone()), self.next - 1)
            }
        } else if def.arg == ArgMode::Required {
            return Err(PoptError::MissingArgument);
        } else {
            (None, 0)
        };
        Ok(Found {
            tag: def.tag,
            value,
            word,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[OptionDef<char>] = &[
        OptionDef {
            long: "list",
            short: Some('L'),
            arg: ArgMode::None,
            tag: 'L',
        },
        OptionDef {
            long: "numeric",
            short: Some('n'),
            arg: ArgMode::None,
            tag: 'n',
        },
        OptionDef {
            long: "weight",
            short: Some('w'),
            arg: ArgMode::Required,
            tag: 'w',
        },
        OptionDef {
            long: "persistent",
            short: Some('p'),
            arg: ArgMode::Optional,
            tag: 'p',
        },
    ];

    /// Each option found (or the error and the word blamed), and the leftovers.
    type Outcome = (
        Vec<Result<(char, Option<String>), (PoptError, String)>>,
        Vec<String>,
    );

    fn run(words: &[&str]) -> Outcome {
        let args: Vec<String> = std::iter::once("prog")
            .chain(words.iter().copied())
            .map(String::from)
            .collect();
        let mut p = Popt::new(TABLE, &args, false);
        let mut out = Vec::new();
        while let Some(r) = p.next_option() {
            match r {
                Ok(f) => out.push(Ok((f.tag, f.value))),
                Err(e) => {
                    out.push(Err((e, p.bad_option().to_string())));
                    break;
                }
            }
        }
        let mut left = Vec::new();
        while let Some(l) = p.next_leftover() {
            left.push(l);
        }
        (out, left)
    }

    #[test]
    fn clusters_values_and_leftovers() {
        let (o, l) = run(&["-Ln", "x", "-w5", "-w", "-1", "--weight=7", "--", "-n"]);
        assert_eq!(
            o,
            vec![
                Ok(('L', None)),
                Ok(('n', None)),
                Ok(('w', Some("5".into()))),
                Ok(('w', Some("-1".into()))),
                Ok(('w', Some("7".into()))),
            ]
        );
        assert_eq!(l, vec!["x".to_string(), "-n".to_string()]);
    }

    #[test]
    fn a_value_names_the_word_it_is_in() {
        let args: Vec<String> = ["prog", "-Lw5", "--weight=7", "-w", "8"]
            .into_iter()
            .map(String::from)
            .collect();
        let mut p = Popt::new(TABLE, &args, false);
        let mut words = Vec::new();
        while let Some(Ok(f)) = p.next_option() {
            words.push((f.tag, f.word));
        }
        assert_eq!(words, [('L', 0), ('w', 1), ('w', 2), ('w', 4)]);
    }

    #[test]
    fn optional_values() {
        let (o, _) = run(&["-p", "600", "-p", "-n", "-p"]);
        assert_eq!(
            o,
            vec![
                Ok(('p', Some("600".into()))),
                Ok(('p', None)),
                Ok(('n', None)),
                Ok(('p', None)),
            ]
        );
    }

    #[test]
    fn errors_name_the_word() {
        assert_eq!(
            run(&["-L", "--bogus"]).0.last(),
            Some(&Err((PoptError::UnknownOption, "--bogus".into())))
        );
        assert_eq!(
            run(&["-LQ"]).0.last(),
            Some(&Err((PoptError::UnknownOption, "-LQ".into())))
        );
        assert_eq!(
            run(&["-w"]).0.last(),
            Some(&Err((PoptError::MissingArgument, "-w".into())))
        );
        assert_eq!(
            run(&["--numeric=1"]).0.last(),
            Some(&Err((PoptError::UnwantedArgument, "--numeric=1".into())))
        );
        assert_eq!(
            run(&["--num"]).0.last(),
            Some(&Err((PoptError::UnknownOption, "--num".into()))),
            "long options are never abbreviated"
        );
    }
}

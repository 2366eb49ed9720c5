//! File-name patterns: a glob over one path component.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::str::FromStr;

use globset::GlobBuilder;

use crate::Error;

/// A validated glob that selects file names inside the pruned directory.
///
/// The glob matches one path component — a bare file name — with `*` (any run
/// of characters), `?` (one character), `[...]` (a class), `{a,b}`
/// (alternatives) and `\` escapes. It never reaches into another directory:
/// a pattern containing `/` (so also an absolute path or `../*`), a pattern
/// that is `.` or `..`, an empty pattern and a pattern with a NUL byte are
/// rejected when the `Pattern` is built. Put the directory in the `dir`
/// argument of [`Pruner::prune`](crate::Pruner::prune) instead.
///
/// As in the Go original, `*` also matches a leading dot.
///
/// # Examples
///
/// ```
/// use daemonkit_filepruner::Pattern;
///
/// let pattern = Pattern::new("events-*.jsonl")?;
/// assert!(pattern.is_match("events-20260415T143000Z.jsonl"));
/// assert!(!pattern.is_match("events.log"));
///
/// // A pattern may not leave the directory it is applied to.
/// let err = Pattern::new("../*").unwrap_err();
/// assert!(err.to_string().contains("must not contain `/`"));
/// # Ok::<(), daemonkit_filepruner::Error>(())
/// ```
#[derive(Clone)]
pub struct Pattern {
    source: String,
    matcher: Matcher,
}

/// How a pattern matches: the literal shortcut, or globset's compiled matcher (a regex),
/// built only for globs the shortcut cannot take: building the regex is most of what
/// `Pattern::new` costs, and pages in the regex engine's code at a daemon's start.
#[derive(Clone)]
enum Matcher {
    Literal(Literal),
    Glob(globset::GlobMatcher),
}

/// A shortcut for the commonest retention globs, which need no regex.
///
/// A pass matches every name in the directory, so this is on the hot path of
/// a steady-state pass; globset's matcher runs a regex even for `app-*.log`.
#[derive(Debug, Clone)]
enum Literal {
    /// No metacharacter at all: the name must equal the glob.
    Exact(Box<[u8]>),
    /// One `*` and no other metacharacter: `prefix*suffix`.
    Affixes {
        prefix: Box<[u8]>,
        suffix: Box<[u8]>,
    },
}

impl Literal {
    fn of(glob: &str) -> Option<Literal> {
        let bytes = glob.as_bytes();
        if bytes
            .iter()
            .any(|b| matches!(b, b'?' | b'[' | b']' | b'{' | b'}' | b'\\'))
        {
            return None;
        }
        let mut parts = bytes.split(|&b| b == b'*');
        let prefix = parts.next()?;
        match (parts.next(), parts.next()) {
            (None, _) => Some(Literal::Exact(prefix.into())),
            (Some(suffix), None) => Some(Literal::Affixes {
                prefix: prefix.into(),
                suffix: suffix.into(),
            }),
            (Some(_), Some(_)) => None,
        }
    }

    fn is_match(&self, name: &[u8]) -> bool {
        match self {
            Literal::Exact(literal) => name == &literal[..],
            Literal::Affixes { prefix, suffix } => {
                name.len() >= prefix.len() + suffix.len()
                    && name.starts_with(prefix)
                    && name.ends_with(suffix)
            }
        }
    }
}

// ===== impl Pattern =====

impl Pattern {
    /// Validates and compiles `glob`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPattern`] when the glob is empty, contains `/` or a NUL
    /// byte, is `.` or `..`, or is not valid glob syntax (for example an
    /// unclosed `[`).
    pub fn new(glob: &str) -> Result<Pattern, Error> {
        let invalid = |reason: &str| Error::InvalidPattern {
            pattern: glob.to_owned(),
            reason: reason.to_owned(),
        };
        if glob.is_empty() {
            return Err(invalid(
                "the pattern is empty; give a file-name glob such as `*.jsonl`",
            ));
        }
        if glob.contains('/') {
            return Err(invalid(
                "a pattern matches file names inside the directory and must not contain `/`; \
                 put the directory in DIR and give only a file-name glob such as `*.jsonl`",
            ));
        }
        if glob == "." || glob == ".." {
            return Err(invalid(
                "`.` and `..` name directories, which are never pruned; give a file-name glob",
            ));
        }
        if glob.contains('\0') {
            return Err(invalid("a file name cannot contain a NUL byte"));
        }
        let compiled = GlobBuilder::new(glob)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|err| {
                invalid(&format!(
                    "{}; use `*`, `?`, `[...]` and `{{a,b}}` only",
                    err.kind()
                ))
            })?;
        let matcher = match Literal::of(glob) {
            Some(literal) => Matcher::Literal(literal),
            None => Matcher::Glob(compiled.compile_matcher()),
        };
        Ok(Pattern {
            source: glob.to_owned(),
            matcher,
        })
    }

    /// The glob as given to [`Pattern::new`].
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the file name `name` matches.
    ///
    /// `name` is a bare file name; a name that contains `/` never matches.
    pub fn is_match(&self, name: impl AsRef<OsStr>) -> bool {
        self.is_match_bytes(name.as_ref().as_bytes())
    }

    pub(crate) fn is_match_bytes(&self, name: &[u8]) -> bool {
        !name.contains(&b'/') && self.is_match_entry(name)
    }

    /// [`is_match_bytes`](Pattern::is_match_bytes) for a name read from a
    /// directory listing, which cannot contain `/`: the pass matches every name
    /// of the directory, and the search for a `/` was a fifth of the pass's own
    /// (user-space) time.
    pub(crate) fn is_match_entry(&self, name: &[u8]) -> bool {
        match &self.matcher {
            Matcher::Literal(literal) => literal.is_match(name),
            Matcher::Glob(glob) => glob.is_match_candidate(&globset::Candidate::from_bytes(name)),
        }
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern").field(&self.source).finish()
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for Pattern {
    type Err = Error;

    fn from_str(glob: &str) -> Result<Pattern, Error> {
        Pattern::new(glob)
    }
}

impl TryFrom<&str> for Pattern {
    type Error = Error;

    fn try_from(glob: &str) -> Result<Pattern, Error> {
        Pattern::new(glob)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_shortcut_agrees_with_globset() {
        let names = [
            "",
            "a",
            "app.log",
            "app-1.log",
            "app-.log",
            "app.log.1",
            ".app.log",
            "app-x.lo",
            "xapp-1.log",
            "app-1.logx",
            "app-a*b.log",
            "é-1.log",
        ];
        for glob in [
            "app.log",
            "app-*.log",
            "*.log",
            "app*",
            "*",
            "**",
            "é-*.log",
            "app-*",
        ] {
            let pattern = Pattern::new(glob).unwrap();
            let regex_only = GlobBuilder::new(glob)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .unwrap()
                .compile_matcher();
            for name in names {
                assert_eq!(
                    pattern.is_match(name),
                    regex_only.is_match(name),
                    "glob {glob:?} on {name:?}"
                );
            }
        }
        assert!(Literal::of("app-*.log").is_some());
        assert!(Literal::of("a*b*c").is_none());
        assert!(Literal::of("app-?.log").is_none());
    }
}

//! The filename-timestamp strategy and its format compiler.
//!
//! The Go original finds a timestamp by calling a full time parser at every
//! offset of every name. Here the format is compiled once, when the strategy is
//! built, into a fixed-width template of digit and literal slots; a name is
//! scanned with plain byte comparisons and the date fields are decoded only at
//! an offset where every slot matches. jiff's `strtime` parser cannot be used
//! for the scan itself: it parses a whole string from its start and reports
//! failure through an allocated error, which is exactly the per-offset cost
//! this avoids. jiff still validates the decoded date (month lengths, leap
//! years) and converts it to a [`Timestamp`].

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::Offset;
use jiff::{SignedDuration, Timestamp};

use crate::strategy::{older_than, signed_age};
use crate::{Candidate, Error, Strategy};

/// Prunes files whose name contains a timestamp more than a maximum age ago.
///
/// The format is strftime-style, e.g. `%Y%m%dT%H%M%SZ` for names such as
/// `consensus-upgrade-20260415T143000Z-v0.75.0.jsonl`. The timestamp may appear
/// anywhere in the name; the first offset at which the name matches the format
/// *and* forms a valid date wins. Times are read as UTC, as the Go original's
/// `time.Parse` does for a layout without a zone.
///
/// A name with no such timestamp makes [`is_prunable`](Strategy::is_prunable)
/// return [`Error::NoTimestamp`], which protects the file: it is neither
/// removed for its age nor counted toward the hard cap. A timestamp in the
/// future is never prunable.
///
/// # Supported directives
///
/// Only fixed-width numeric directives, so that a timestamp is a fixed-width
/// run of digits and literals that can be located with byte comparisons:
///
/// | directive | meaning | width |
/// |---|---|---|
/// | `%Y` | year, zero-padded | 4 |
/// | `%y` | year of the century; `69`–`99` are 1969–1999, `00`–`68` are 2000–2068 (POSIX) | 2 |
/// | `%m` | month `01`–`12` | 2 |
/// | `%d` | day of the month `01`–`31` | 2 |
/// | `%j` | day of the year `001`–`366` | 3 |
/// | `%H` | hour `00`–`23` | 2 |
/// | `%M` | minute `00`–`59` | 2 |
/// | `%S` | second `00`–`59` | 2 |
/// | `%F` | `%Y-%m-%d` | 10 |
/// | `%T` | `%H:%M:%S` | 8 |
/// | `%%` | a literal `%` | 1 |
///
/// Any other character is a literal. Variable-width directives (month and day
/// names, `%s`, `%e`, padding flags such as `%-d`, `%z`, …) are rejected when
/// the strategy is built, as are formats without a year, without a day (`%d`
/// with `%m`, or `%j`) and formats that give the same field twice. Missing
/// hours, minutes or seconds are taken as zero.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use daemonkit_filepruner::FilenameTimestamp;
///
/// let year = Duration::from_secs(365 * 86_400);
/// let strategy = FilenameTimestamp::new("%Y%m%dT%H%M%SZ", year)?;
/// let found = strategy.timestamp_in("consensus-upgrade-20260415T143000Z-v0.75.0.jsonl");
/// assert_eq!(found, Some("2026-04-15T14:30:00Z".parse()?));
/// assert_eq!(strategy.timestamp_in("consensus-migrate-events.jsonl"), None);
///
/// // An empty format is rejected when the strategy is built.
/// assert!(FilenameTimestamp::new("", year).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct FilenameTimestamp {
    format: String,
    template: Template,
    max_age: SignedDuration,
}

// ===== impl FilenameTimestamp =====

impl FilenameTimestamp {
    /// Prunes files whose name holds a timestamp in `format` more than
    /// `max_age` before the pass started.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidTimestampFormat`] when `format` is empty, uses a
    /// directive outside the supported fixed-width set, lacks a year or a day,
    /// or gives a field twice.
    pub fn new(format: &str, max_age: Duration) -> Result<FilenameTimestamp, Error> {
        let template =
            Template::compile(format).map_err(|reason| Error::InvalidTimestampFormat {
                format: format.to_owned(),
                reason,
            })?;
        Ok(FilenameTimestamp {
            format: format.to_owned(),
            template,
            max_age: signed_age(max_age),
        })
    }

    /// The format as given to [`FilenameTimestamp::new`].
    pub fn format(&self) -> &str {
        &self.format
    }

    /// The number of bytes a timestamp in this format occupies in a name.
    pub fn width(&self) -> usize {
        self.template.slots.len()
    }

    /// The first valid timestamp in this format found anywhere in `name`.
    ///
    /// Returns `None` when no offset of `name` matches the format with a valid
    /// date and time (for example `20261345T…`, month 13, is skipped).
    pub fn timestamp_in(&self, name: impl AsRef<OsStr>) -> Option<Timestamp> {
        self.template.find(name.as_ref().as_bytes())
    }
}

impl Strategy for FilenameTimestamp {
    fn is_prunable(&self, file: &Candidate<'_>) -> Result<bool, Error> {
        match self.timestamp_in(file.name()) {
            Some(stamp) => Ok(older_than(file.now(), stamp, self.max_age)),
            None => Err(Error::NoTimestamp {
                path: file.path(),
                format: self.format.clone(),
            }),
        }
    }
}

impl fmt::Debug for FilenameTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilenameTimestamp")
            .field("format", &self.format)
            .field("max_age", &self.max_age)
            .finish()
    }
}

// ===== Template =====

/// One byte position of a compiled format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// An ASCII digit `0`–`9`.
    Digit,
    /// This exact byte.
    Byte(u8),
}

/// A date or time field that a directive fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Year,
    YearOfCentury,
    Month,
    Day,
    DayOfYear,
    Hour,
    Minute,
    Second,
}

/// Where a field's digits sit inside the template.
#[derive(Debug, Clone, Copy)]
struct Placed {
    field: Field,
    at: usize,
    width: usize,
}

/// A format compiled to fixed-width slots plus the positions of its fields.
#[derive(Debug, Clone)]
struct Template {
    slots: Box<[Slot]>,
    /// Per slot, the lowest byte it accepts (`0` for a digit)…
    low: Box<[u8]>,
    /// …and how far above it the accepted bytes go (`9` for a digit, `0` for a literal):
    /// a window matches when every `byte - low` (wrapping) is at most `span`, which the
    /// compiler checks for all slots at once without a branch per slot.
    span: Box<[u8]>,
    fields: Box<[Placed]>,
    /// The index of the first digit slot; every format has one (its year).
    anchor: usize,
}

impl Template {
    /// Compiles `format`; the error is a human-readable reason.
    fn compile(format: &str) -> Result<Template, String> {
        if format.is_empty() {
            return Err(
                "the format is empty; give a strftime-style format such as `%Y%m%dT%H%M%SZ`"
                    .to_owned(),
            );
        }
        let mut slots = Vec::new();
        let mut fields: Vec<Placed> = Vec::new();
        let mut place = |field: Field, width: usize, slots: &mut Vec<Slot>| {
            if fields.iter().any(|p| p.field == field) {
                return Err(format!("{} appears twice", field.describe()));
            }
            fields.push(Placed {
                field,
                at: slots.len(),
                width,
            });
            slots.extend(std::iter::repeat_n(Slot::Digit, width));
            Ok(())
        };
        let mut bytes = format.bytes();
        while let Some(b) = bytes.next() {
            if b != b'%' {
                slots.push(Slot::Byte(b));
                continue;
            }
            let Some(directive) = bytes.next() else {
                return Err(
                    "the format ends with a lone `%`; write `%%` for a literal `%`".to_owned(),
                );
            };
            match directive {
                b'Y' => place(Field::Year, 4, &mut slots)?,
                b'y' => place(Field::YearOfCentury, 2, &mut slots)?,
                b'm' => place(Field::Month, 2, &mut slots)?,
                b'd' => place(Field::Day, 2, &mut slots)?,
                b'j' => place(Field::DayOfYear, 3, &mut slots)?,
                b'H' => place(Field::Hour, 2, &mut slots)?,
                b'M' => place(Field::Minute, 2, &mut slots)?,
                b'S' => place(Field::Second, 2, &mut slots)?,
                b'F' => {
                    place(Field::Year, 4, &mut slots)?;
                    slots.push(Slot::Byte(b'-'));
                    place(Field::Month, 2, &mut slots)?;
                    slots.push(Slot::Byte(b'-'));
                    place(Field::Day, 2, &mut slots)?;
                }
                b'T' => {
                    place(Field::Hour, 2, &mut slots)?;
                    slots.push(Slot::Byte(b':'));
                    place(Field::Minute, 2, &mut slots)?;
                    slots.push(Slot::Byte(b':'));
                    place(Field::Second, 2, &mut slots)?;
                }
                b'%' => slots.push(Slot::Byte(b'%')),
                other => {
                    // `other` may be the first byte of a multi-byte character;
                    // show the character, not the byte.
                    let shown = format[format.len() - bytes.len() - 1..]
                        .chars()
                        .next()
                        .unwrap_or(char::from(other));
                    return Err(format!(
                        "`%{shown}` is not supported: only the fixed-width numeric directives \
                         %Y %y %m %d %j %H %M %S %F %T (and %% for a literal `%`) can be \
                         located inside a file name"
                    ));
                }
            }
        }
        let has = |field: Field| fields.iter().any(|p| p.field == field);
        if !has(Field::Year) && !has(Field::YearOfCentury) {
            return Err("the format has no year; add `%Y` (or `%y`)".to_owned());
        }
        if has(Field::Year) && has(Field::YearOfCentury) {
            return Err("the format gives the year twice (`%Y` and `%y`); keep one".to_owned());
        }
        let month_day = has(Field::Month) && has(Field::Day);
        if has(Field::DayOfYear) && (has(Field::Month) || has(Field::Day)) {
            return Err(
                "the format gives the day twice (`%j` and `%m`/`%d`); keep `%m%d` or `%j`"
                    .to_owned(),
            );
        }
        if !month_day && !has(Field::DayOfYear) {
            return Err("the format has no day; add `%m` and `%d` (or `%j`)".to_owned());
        }
        let anchor = fields.iter().map(|p| p.at).min().unwrap_or(0);
        let (low, span) = slots
            .iter()
            .map(|slot| match *slot {
                Slot::Digit => (b'0', 9),
                Slot::Byte(b) => (b, 0),
            })
            .unzip::<u8, u8, Vec<u8>, Vec<u8>>();
        Ok(Template {
            low: low.into_boxed_slice(),
            span: span.into_boxed_slice(),
            slots: slots.into_boxed_slice(),
            fields: fields.into_boxed_slice(),
            anchor,
        })
    }

    /// The first valid timestamp at any offset of `name`.
    fn find(&self, name: &[u8]) -> Option<Timestamp> {
        let width = self.slots.len();
        let last = name.len().checked_sub(width)?;
        let anchor = self.anchor;
        let mut start = 0;
        while start <= last {
            // A window can only match where its anchor slot sees a digit: jump
            // straight to the next such offset with a plain byte scan.
            let skip = name[start + anchor..=last + anchor]
                .iter()
                .position(u8::is_ascii_digit)?;
            start += skip;
            let window = &name[start..start + width];
            if self.matches(window)
                && let Some(stamp) = self.decode(window)
            {
                return Some(stamp);
            }
            start += 1;
        }
        None
    }

    /// Whether every slot accepts the byte of `window` at its position.
    #[inline]
    fn matches(&self, window: &[u8]) -> bool {
        // Every slot is tested (`fold` with `&`, no early exit): branch-free, and the
        // window is a few dozen bytes at most.
        window
            .iter()
            .zip(self.low.iter().zip(self.span.iter()))
            .fold(true, |ok, (&b, (&low, &span))| {
                ok & (b.wrapping_sub(low) <= span)
            })
    }

    /// The fields of a matching window, with every time field in range; `None` if
    /// one is out of range.
    fn fields(&self, window: &[u8]) -> Option<Fields> {
        let mut out = Fields {
            year: 0,
            month: 1,
            day: 1,
            day_of_year: None,
            hour: 0,
            minute: 0,
            second: 0,
        };
        for placed in &self.fields {
            // Every byte is an ASCII digit (checked by `matches`) and widths are
            // at most 4, so the value is at most 9999.
            let value = window[placed.at..placed.at + placed.width]
                .iter()
                .fold(0u16, |acc, &b| acc * 10 + u16::from(b - b'0'));
            match placed.field {
                Field::Year => out.year = value,
                Field::YearOfCentury => out.year = if value >= 69 { 1900 } else { 2000 } + value,
                Field::Month => out.month = value,
                Field::Day => out.day = value,
                Field::DayOfYear => out.day_of_year = Some(value),
                Field::Hour => out.hour = value,
                Field::Minute => out.minute = value,
                Field::Second => out.second = value,
            }
        }
        // As jiff's `Time::new`: no leap second.
        (out.hour <= 23 && out.minute <= 59 && out.second <= 59).then_some(out)
    }

    /// Decodes the fields of a matching window; `None` if they form no valid
    /// date or time.
    ///
    /// (Doing the calendar arithmetic here instead of through jiff's `Date` and
    /// `DateTime` was tried in issue 17 and measured slower.)
    fn decode(&self, window: &[u8]) -> Option<Timestamp> {
        let f = self.fields(window)?;
        let date = match f.day_of_year {
            Some(n) => Date::new(i16::try_from(f.year).ok()?, 1, 1)
                .ok()?
                .with()
                .day_of_year(i16::try_from(n).ok()?)
                .build()
                .ok()?,
            None => Date::new(
                i16::try_from(f.year).ok()?,
                i8::try_from(f.month).ok()?,
                i8::try_from(f.day).ok()?,
            )
            .ok()?,
        };
        let time = Time::new(
            i8::try_from(f.hour).ok()?,
            i8::try_from(f.minute).ok()?,
            i8::try_from(f.second).ok()?,
            0,
        )
        .ok()?;
        Offset::UTC
            .to_timestamp(DateTime::from_parts(date, time))
            .ok()
    }
}

/// The decoded fields of one timestamp (at most 9999 each: four digits).
#[derive(Debug, Clone, Copy)]
struct Fields {
    year: u16,
    month: u16,
    day: u16,
    day_of_year: Option<u16>,
    hour: u16,
    minute: u16,
    second: u16,
}

impl Field {
    fn describe(self) -> &'static str {
        match self {
            Field::Year => "the year (`%Y`, also inside `%F`)",
            Field::YearOfCentury => "the year of the century (`%y`)",
            Field::Month => "the month (`%m`, also inside `%F`)",
            Field::Day => "the day (`%d`, also inside `%F`)",
            Field::DayOfYear => "the day of the year (`%j`)",
            Field::Hour => "the hour (`%H`, also inside `%T`)",
            Field::Minute => "the minute (`%M`, also inside `%T`)",
            Field::Second => "the second (`%S`, also inside `%T`)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("test timestamp is valid")
    }

    #[test]
    fn finds_the_timestamp_anywhere_in_the_name() {
        let t = Template::compile("%Y%m%dT%H%M%SZ").unwrap();
        assert_eq!(
            t.find(b"consensus-upgrade-20260415T143000Z-v0.75.0.jsonl"),
            Some(ts("2026-04-15T14:30:00Z"))
        );
        assert_eq!(
            t.find(b"20260415T143000Z"),
            Some(ts("2026-04-15T14:30:00Z"))
        );
    }

    #[test]
    fn skips_a_digit_run_that_is_not_a_valid_date() {
        let t = Template::compile("%Y%m%d").unwrap();
        // 2026-13-45 is no date; the scan goes on to the real one.
        assert_eq!(
            t.find(b"x-20261345-20240229"),
            Some(ts("2024-02-29T00:00:00Z"))
        );
        assert_eq!(t.find(b"x-20230229"), None);
    }

    #[test]
    fn reads_composite_and_day_of_year_directives() {
        let t = Template::compile("%F_%T").unwrap();
        assert_eq!(
            t.find(b"log.2024-03-01_10:11:12.gz"),
            Some(ts("2024-03-01T10:11:12Z"))
        );
        let t = Template::compile("%Y.%j").unwrap();
        assert_eq!(t.find(b"a-2024.060"), Some(ts("2024-02-29T00:00:00Z")));
        let t = Template::compile("%y%m%d").unwrap();
        assert_eq!(t.find(b"r-991231"), Some(ts("1999-12-31T00:00:00Z")));
        assert_eq!(t.find(b"r-680101"), Some(ts("2068-01-01T00:00:00Z")));
        let t = Template::compile("T%H%M%S_%Y%m%d").unwrap();
        assert_eq!(
            t.find(b"9T1-T101112_20240101"),
            Some(ts("2024-01-01T10:11:12Z"))
        );
        let t = Template::compile("100%%-%Y%m%d").unwrap();
        assert_eq!(t.find(b"100%-20240101"), Some(ts("2024-01-01T00:00:00Z")));
    }

    #[test]
    fn rejects_formats_that_cannot_be_located() {
        for (format, needle) in [
            ("", "empty"),
            ("%Y%m%d%", "lone `%`"),
            ("%b %d %Y", "`%b` is not supported"),
            ("%-d%m%Y", "`%-` is not supported"),
            ("%s", "`%s` is not supported"),
            ("%m%d", "no year"),
            ("%Y%m", "no day"),
            ("%Y%m%d%Y", "appears twice"),
            ("%Y%j%m%d", "the day twice"),
            ("%Y%y%m%d", "the year twice"),
            ("%Y%m%d%é", "`%é` is not supported"),
        ] {
            let err = Template::compile(format).unwrap_err();
            assert!(err.contains(needle), "{format:?}: {err}");
        }
    }
}

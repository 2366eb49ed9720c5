//! Go's duration format, used by the state strings (`backoff:1m20s`) and log fields.

use std::time::Duration;

/// Formats a duration the way Go's `time.Duration.String` does: `5s`, `1m20s`, `5m0s`,
/// `1.5s`, `250ms`, `1h0m0s`, `0s`.
///
/// The `backoff:<d>` state strings depend on it, so Go tooling that parses them with
/// `time.ParseDuration` keeps working.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use daemonkit::status::go_duration;
///
/// assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
/// assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
/// assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
/// assert_eq!(go_duration(Duration::from_millis(250)), "250ms");
/// ```
pub fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    // Below one second Go picks the largest unit that keeps an integer part.
    if nanos < 1_000_000_000 {
        let (unit, scale) = match nanos {
            n if n < 1_000 => return format!("{n}ns"),
            n if n < 1_000_000 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        return format!("{}{unit}", fraction(nanos, scale));
    }
    let total_secs = nanos / 1_000_000_000;
    let sub = nanos % 1_000_000_000;
    let (h, m, s) = (total_secs / 3600, (total_secs / 60) % 60, total_secs % 60);
    let secs = fraction(s * 1_000_000_000 + sub, 1_000_000_000);
    if h > 0 {
        format!("{h}h{m}m{secs}s")
    } else if m > 0 {
        format!("{m}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

/// `value / scale` printed with the shortest exact decimal fraction, as Go does.
fn fraction(value: u128, scale: u128) -> String {
    let (int, mut frac) = (value / scale, value % scale);
    if frac == 0 {
        return int.to_string();
    }
    let mut digits = scale.ilog10() as usize;
    while frac % 10 == 0 {
        frac /= 10;
        digits -= 1;
    }
    format!("{int}.{frac:0digits$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_duration_matches_go() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(5), "5s"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_secs(40), "40s"),
            (Duration::from_secs(80), "1m20s"),
            (Duration::from_secs(160), "2m40s"),
            (Duration::from_secs(300), "5m0s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_nanos(1500), "1.5µs"),
            (Duration::from_nanos(7), "7ns"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_millis(61_250), "1m1.25s"),
            (Duration::from_nanos(1_000_000_001), "1.000000001s"),
        ];
        for (d, want) in cases {
            assert_eq!(go_duration(d), want, "{d:?}");
        }
    }
}

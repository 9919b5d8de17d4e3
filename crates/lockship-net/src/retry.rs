//! When and how long to wait before sending a request again: exponential backoff with jitter,
//! `Retry-After` honoured (delta seconds or an HTTP date), and a bound on the total wait, so a
//! flaky network costs seconds and a dead one fails in bounded time.

use std::time::{Duration, SystemTime};

/// How persistent to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The first backoff; each later one doubles, up to `cap`.
    pub base: Duration,
    pub cap: Duration,
    /// The longest `Retry-After` lockship waits for; a server asking for more gets an error.
    pub max_retry_after: Duration,
    /// The most time spent waiting between the attempts of one request.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(250),
            cap: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
            budget: Duration::from_secs(120),
        }
    }
}

/// Whether a failed attempt may be repeated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Permanent (a 404, a bad request, a refused credential): repeating cannot help.
    Fatal,
    /// Transient (a 5xx, a 429, a dropped connection, a stall); the server may say when.
    Retry { after: Option<Duration> },
}

/// The verdict on an HTTP status that is not a success.
pub fn status_verdict(status: u16, retry_after: Option<Duration>) -> Verdict {
    match status {
        408 | 429 | 500 | 502 | 503 | 504 => Verdict::Retry { after: retry_after },
        _ => Verdict::Fatal,
    }
}

impl RetryPolicy {
    /// The wait before attempt `next` (1 for the first retry): backoff with "equal jitter"
    /// (half fixed, half random, so concurrent clients spread out but never retry at once), or
    /// what the server asked for if that is longer. None when the policy says stop: attempts
    /// used up, the server asks for longer than `max_retry_after`, or `waited` would exceed the
    /// budget.
    pub fn wait(
        &self,
        next: u32,
        server_asked: Option<Duration>,
        waited: Duration,
    ) -> Option<Duration> {
        if next >= self.attempts {
            return None;
        }
        if server_asked.is_some_and(|d| d > self.max_retry_after) {
            return None;
        }
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(next - 1).unwrap_or(u32::MAX))
            .min(self.cap);
        let half = exp / 2;
        let jitter = Duration::from_nanos(fastrand::u64(0..=half.as_nanos() as u64));
        let wait = (half + jitter).max(server_asked.unwrap_or_default());
        (waited + wait <= self.budget).then_some(wait)
    }
}

/// A `Retry-After` value: delta seconds, or an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`)
/// measured against `now`. Dates in the past mean "now".
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or_default())
}

/// Parses the IMF-fixdate form of an HTTP date (RFC 9110 §5.6.7), the one servers must send.
fn parse_http_date(text: &str) -> Option<SystemTime> {
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let rest = text.split_once(", ")?.1;
    let mut parts = rest.split(' ');
    let day: u32 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':');
    let hour: u64 = hms.next()?.parse().ok()?;
    let minute: u64 = hms.next()?.parse().ok()?;
    let second: u64 = hms.next()?.parse().ok()?;
    if parts.next()? != "GMT" || parts.next().is_some() || hms.next().is_some() {
        return None;
    }
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 || year < 1970 {
        return None;
    }
    let days = days_from_civil(year, month, day)?;
    let secs = u64::try_from(days).ok()? * 86_400 + hour * 3600 + minute * 60 + second;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> Option<i64> {
    if year > 9999 {
        return None;
    }
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(month) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_statuses_are_retried() {
        assert_eq!(status_verdict(503, None), Verdict::Retry { after: None });
        let after = Some(Duration::from_secs(2));
        assert_eq!(status_verdict(429, after), Verdict::Retry { after });
        for fatal in [400, 401, 403, 404, 409, 501] {
            assert_eq!(status_verdict(fatal, None), Verdict::Fatal, "{fatal}");
        }
    }

    #[test]
    fn waits_grow_are_jittered_and_bounded() {
        let policy = RetryPolicy::default();
        for _ in 0..200 {
            let first = policy.wait(1, None, Duration::ZERO).unwrap();
            assert!(first >= Duration::from_millis(125) && first <= Duration::from_millis(250));
            let fourth = policy.wait(4, None, Duration::ZERO).unwrap();
            assert!(fourth >= Duration::from_secs(1) && fourth <= Duration::from_secs(2));
        }
        assert_eq!(
            policy.wait(5, None, Duration::ZERO),
            None,
            "attempts used up"
        );
        let asked = Some(Duration::from_secs(3));
        assert!(policy.wait(1, asked, Duration::ZERO).unwrap() >= Duration::from_secs(3));
        assert_eq!(
            policy.wait(1, Some(Duration::from_secs(3600)), Duration::ZERO),
            None,
            "a server asking for an hour gets an error, not a hang"
        );
        assert_eq!(
            policy.wait(2, None, Duration::from_secs(120)),
            None,
            "the total wait is bounded"
        );
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        // 784111777 is Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110's example).
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        for bad in [
            "",
            "soon",
            "-1",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 31 Nov 1994 25:00:00 GMT",
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad}");
        }
    }
}

//! Rate-limited messages (Linux `___ratelimit`, `printk_ratelimited`): at
//! most `burst` messages per `interval`; the first message of the next
//! interval reports how many were suppressed ("N callbacks suppressed").

/// Linux `DEFAULT_RATELIMIT_INTERVAL` (5 s) and `DEFAULT_RATELIMIT_BURST`.
pub const DEFAULT_INTERVAL_MS: u64 = 5000;
pub const DEFAULT_BURST: u32 = 10;

pub struct RateLimit {
    interval: u64,
    burst: u32,
    /// Start of the current interval (None: no message yet).
    begin: Option<u64>,
    printed: u32,
    missed: u32,
}

/// The verdict on one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Print it; first say that `suppressed` (if > 0) were not printed.
    Print {
        suppressed: u32,
    },
    Suppress,
}

impl RateLimit {
    pub const fn new(interval: u64, burst: u32) -> Self {
        RateLimit { interval, burst, begin: None, printed: 0, missed: 0 }
    }

    /// May a message print at time `now` (same unit as the interval)?
    pub fn check(&mut self, now: u64) -> Verdict {
        let mut suppressed = 0;
        if self.begin.is_none_or(|b| now.saturating_sub(b) >= self.interval) {
            suppressed = core::mem::take(&mut self.missed);
            self.begin = Some(now);
            self.printed = 0;
        }
        if self.printed < self.burst {
            self.printed += 1;
            Verdict::Print { suppressed }
        } else {
            self.missed += 1;
            Verdict::Suppress
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_per_interval_then_the_count_of_the_suppressed() {
        let mut r = RateLimit::new(100, 3);
        let first: Vec<Verdict> = (0..5).map(|i| r.check(i)).collect();
        assert_eq!(first[..3], [Verdict::Print { suppressed: 0 }; 3]);
        assert_eq!(first[3..], [Verdict::Suppress; 2]);
        assert_eq!(r.check(99), Verdict::Suppress);
        assert_eq!(r.check(100), Verdict::Print { suppressed: 3 });
        assert_eq!(r.check(101), Verdict::Print { suppressed: 0 });
    }
}
